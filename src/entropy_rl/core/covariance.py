"""Per-token covariance between log-probability and advantage (Theorems 1 and 2).

The paper estimates the entropy dynamics from the sampled tokens of a batch. Theorem 2
(natural policy gradient) gives dH ~= -eta * Cov(log pi, A); Theorem 1 (vanilla policy
gradient) gives dH ~= -eta * Cov(log pi, pi * A). Over a batch, each valid token t
contributes the centered cross product

    cov_t = (w_t - mean(w)) * (logp_t - mean(logp)),   w = A (Thm 2) or pi * A (Thm 1),

with both means over the valid tokens of the tensors passed, or, when `sums` is given, over
a larger batch of which these tensors are a part (other ranks' rows): `centering_sums` of
each part, added up, gives the whole batch's means. The masked mean of cov_t is the batch
covariance. Departures from the paper's statement:
1. The paper's covariance is over the policy's distribution at one state; this is the
   sampled-token estimate over a whole batch of states, as the paper's method uses it.
2. Log-probabilities are detached: the covariance selects tokens, it is not optimised.
"""

from __future__ import annotations

import torch

from entropy_rl.core.masked import as_float, as_token_advantages, masked_mean


def _centered_product(
    log_probs: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    centers: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    m = mask.to(log_probs.dtype)  # (B, T)
    if centers is None:
        centers = (masked_mean(log_probs, m), masked_mean(weights, m))
    dlogp = log_probs - centers[0]  # (B, T)
    dw = weights - centers[1]  # (B, T)
    return dw * dlogp * m


def _inputs(log_probs, advantages, mask):
    logp = as_float(log_probs.detach())
    return logp, as_token_advantages(advantages, mask).detach().to(logp.dtype)


def centering_sums(
    log_probs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """(4,) = [sum logp, sum A, sum pi*A, number of valid tokens] over the valid tokens.

    Summed over the parts of a batch (e.g. over ranks), it is the `sums` argument of
    `token_covariance` and `token_covariance_pg` that centres each part with the whole
    batch's means. Same input shapes as `token_covariance`.
    """
    logp, adv = _inputs(log_probs, advantages, mask)
    m = mask.to(logp.dtype)  # (B, T)
    return torch.stack([(logp * m).sum(), (adv * m).sum(), (logp.exp() * adv * m).sum(), m.sum()])


def _centers(sums: torch.Tensor | None, weight_index: int):
    if sums is None:
        return None
    count = sums[3].clamp(min=1)
    return sums[0] / count, sums[weight_index] / count


def token_covariance(
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    sums: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token (A_t - mean A) * (logp_t - mean logp): Theorem 2's natural-gradient form.

    log_probs: (B, T); advantages: (B,) or (B, T); mask: (B, T), 1 for valid tokens.
    sums: (4,) `centering_sums` of the whole batch these rows belong to; None: these rows.
    Returns (B, T), 0 at padding. Its masked mean is Cov(log pi, A) over the batch.
    """
    logp, adv = _inputs(log_probs, advantages, mask)
    return _centered_product(logp, adv, mask, _centers(sums, 1))


def token_covariance_pg(
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    sums: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token (pi_t A_t - mean(pi A)) * (logp_t - mean logp): Theorem 1's vanilla-PG form.

    pi_t = exp(logp_t) is the probability of the sampled token. Same arguments as
    `token_covariance`; its masked mean is Cov(log pi, pi * A) over the batch.
    """
    logp, adv = _inputs(log_probs, advantages, mask)
    return _centered_product(logp, logp.exp() * adv, mask, _centers(sums, 2))
