"""Policy-gradient losses: PPO's clipped surrogate, Clip-Cov and KL-Cov (Cui et al., 2025, Sec. 4).

Per-token losses, with ratio r = exp(logp - old_logp) and advantage A:
- ppo:      L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))   (clip_high > clip_low is
            "clip-higher").
- clip_cov: the ppo loss, except for n = min(max(floor(clip_cov_ratio N), 1), #candidates)
            tokens drawn uniformly among the candidates (valid, not clipped by PPO,
            clip_cov_lb < cov_t < clip_cov_ub), whose loss is multiplied by 0: their gradient
            is exactly zero and they stay in the aggregation's denominator.
- kl_cov:   L = -A r for every token (no PPO clip); the k = max(1, floor(kl_cov_ratio N))
            tokens with the largest cov_t get + kl_cov_coef |logp - old_logp|.
N is the number of valid tokens and cov_t the per-token covariance of `token_covariance`.

Departures from the paper and its reference code:
1. The selection is a separate function, `select_high_covariance_tokens`, and `policy_loss`
   accepts a precomputed selection. A trainer can then select once over the whole rollout
   batch (the paper's description) and apply the selection micro-batch by micro-batch; the
   reference code selects inside each micro-batch, which its authors call an approximation.
   Without a precomputed selection, `policy_loss` selects over the tensors it is given.
2. The KL-Cov penalty is zero at the first update of a rollout batch (logp = old_logp); it
   acts from the second mini-batch update on.
3. Optional `entropy_coef` adds the entropy-bonus baseline the paper compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from entropy_rl.core.covariance import token_covariance
from entropy_rl.core.masked import as_float, as_token_advantages, masked_mean

LOSS_MODES = ("ppo", "clip_cov", "kl_cov")
AGG_MODES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum")


def _require_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PolicyLossConfig:
    """The policy loss and its entropy-control options. Validated on construction."""

    mode: str = "ppo"
    """Loss: 'ppo' (clipped surrogate), 'clip_cov' (Clip-Cov) or 'kl_cov' (KL-Cov)."""
    clip_low: float = 0.2
    """PPO clip range below 1: the ratio is clipped at 1 - clip_low."""
    clip_high: float = 0.2
    """PPO clip range above 1: the ratio is clipped at 1 + clip_high (> clip_low is clip-higher)."""
    clip_cov_ratio: float = 2e-4
    """Clip-Cov: fraction of valid tokens whose gradient is detached (paper: 2e-4)."""
    clip_cov_lb: float = 1.0
    """Clip-Cov: lower bound of the covariance window for candidates (exclusive)."""
    clip_cov_ub: float = 5.0
    """Clip-Cov: upper bound of the covariance window for candidates (exclusive)."""
    kl_cov_ratio: float = 2e-3
    """KL-Cov: fraction of valid tokens, those of largest covariance, that get the KL penalty."""
    kl_cov_coef: float = 1.0
    """KL-Cov: coefficient of the |logp - old_logp| penalty on the selected tokens."""
    agg: str = "token_mean"
    """Aggregation: 'token_mean', 'seq_mean_token_mean' or 'seq_mean_token_sum'."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient (a baseline in the paper; 0 disables it)."""

    def __post_init__(self) -> None:
        if self.mode not in LOSS_MODES:
            raise ValueError(f"mode must be one of {', '.join(LOSS_MODES)}; got {self.mode!r}")
        if self.agg not in AGG_MODES:
            raise ValueError(f"agg must be one of {', '.join(AGG_MODES)}; got {self.agg!r}")
        for name in ("clip_low", "clip_high", "kl_cov_coef", "entropy_coef"):
            if _require_number(name, getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            if not 0.0 <= _require_number(name, getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        lb = _require_number("clip_cov_lb", self.clip_cov_lb)
        if lb >= _require_number("clip_cov_ub", self.clip_cov_ub):
            raise ValueError(
                f"clip_cov_lb must be < clip_cov_ub, got {self.clip_cov_lb!r} >= {self.clip_cov_ub!r}"
            )


def _random_subset(candidates: torch.Tensor, n: int, generator: torch.Generator | None):
    """Flat indices of n of the True entries of `candidates`, drawn uniformly."""
    idx = candidates.flatten().nonzero().squeeze(1)  # (C,)
    device = generator.device if generator is not None else idx.device
    perm = torch.randperm(idx.numel(), generator=generator, device=device)
    return idx[perm[:n].to(idx.device)]


def select_high_covariance_tokens(
    cov: torch.Tensor,
    mask: torch.Tensor,
    config: PolicyLossConfig,
    generator: torch.Generator | None = None,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """The tokens Clip-Cov detaches or KL-Cov penalises, as a bool mask (B, T).

    cov: (B, T) from `token_covariance`; mask: (B, T). `eligible` (B, T) further restricts
    Clip-Cov's candidates (policy_loss passes the tokens PPO did not clip). Clip-Cov draws
    with `generator`; KL-Cov's top-k is deterministic up to ties.
    """
    valid = mask.bool()
    n_valid = int(valid.sum())
    chosen = torch.zeros(cov.numel(), dtype=torch.bool, device=cov.device)
    if n_valid == 0:
        return chosen.view_as(valid)
    if config.mode == "clip_cov":
        candidates = valid & (cov > config.clip_cov_lb) & (cov < config.clip_cov_ub)
        if eligible is not None:
            candidates &= eligible.bool()
        n = min(max(math.floor(config.clip_cov_ratio * n_valid), 1), int(candidates.sum()))
        chosen[_random_subset(candidates, n, generator)] = True
    elif config.mode == "kl_cov":
        k = max(1, math.floor(config.kl_cov_ratio * n_valid))
        scores = cov.masked_fill(~valid, float("-inf")).flatten()  # (B*T,)
        chosen[torch.topk(scores, k).indices] = True
    else:
        raise ValueError(f"token selection needs mode 'clip_cov' or 'kl_cov', got {config.mode!r}")
    return chosen.view_as(valid)


def aggregate_loss(
    values: torch.Tensor,
    mask: torch.Tensor,
    agg: str,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-token values (B, T) to a scalar over the valid tokens.

    - token_mean: sum of all valid values / number of valid tokens.
    - seq_mean_token_mean: mean over sequences of each sequence's mean over its tokens.
    - seq_mean_token_sum: mean over sequences of each sequence's sum over its tokens.
    Sequences without valid tokens are left out. `num_tokens` / `num_seqs` replace the local
    denominators with global ones (all micro-batches and ranks), so that summing the
    micro-batch losses gives the full-batch loss exactly.
    """
    m = mask.to(values.dtype)  # (B, T)
    if agg == "token_mean":
        denom = m.sum().clamp(min=1) if num_tokens is None else num_tokens
        return (values * m).sum() / denom
    seq_tokens = m.sum(-1)  # (B,)
    seq_values = (values * m).sum(-1)  # (B,)
    if agg == "seq_mean_token_mean":
        seq_values = seq_values / seq_tokens.clamp(min=1)
    elif agg != "seq_mean_token_sum":
        raise ValueError(f"agg must be one of {', '.join(AGG_MODES)}; got {agg!r}")
    present = (seq_tokens > 0).to(values.dtype)  # (B,)
    denom = present.sum().clamp(min=1) if num_seqs is None else num_seqs
    return (seq_values * present).sum() / denom


def policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: PolicyLossConfig,
    generator: torch.Generator | None = None,
    *,
    selection: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The policy loss of `config.mode` and its metrics (detached 0-dim tensors).

    log_probs, old_log_probs, mask: (B, T); advantages: (B,) or (B, T).
    selection: optional precomputed bool mask (B, T) from `select_high_covariance_tokens`
        (clip_cov / kl_cov only); without it, tokens are selected over this batch.
    entropy: per-token entropy (B, T), required when config.entropy_coef > 0.
    num_tokens, num_seqs: global denominators for the aggregation (see `aggregate_loss`).
    Metrics are means over this batch's valid tokens.
    """
    valid = mask.bool()
    m = mask.to(as_float(log_probs).dtype)  # (B, T)
    adv = as_token_advantages(advantages, mask).to(m.dtype)  # (B, T)
    log_ratio = as_float(log_probs) - as_float(old_log_probs)  # (B, T)
    ratio = log_ratio.exp()
    surrogate = -adv * ratio  # (B, T)
    clipped_surrogate = -adv * ratio.clamp(1 - config.clip_low, 1 + config.clip_high)
    clipped = (clipped_surrogate > surrogate) & valid
    per_token = (
        surrogate if config.mode == "kl_cov" else torch.maximum(surrogate, clipped_surrogate)
    )

    metrics = {
        "ppo/clip_frac": masked_mean(clipped.to(m.dtype), m).detach(),
        "ppo/approx_kl": masked_mean(ratio - 1 - log_ratio, m).detach(),
    }
    if config.mode == "ppo":
        if selection is not None:
            raise ValueError("a token selection was given but config.mode is 'ppo'")
    else:
        if selection is None:
            cov = token_covariance(log_probs, adv, mask)  # (B, T)
            eligible = ~clipped if config.mode == "clip_cov" else None
            selection = select_high_covariance_tokens(cov, mask, config, generator, eligible)
        selection = selection.bool() & valid
        sel = selection.to(m.dtype)
        metrics[f"{config.mode}/frac"] = masked_mean(sel, m).detach()
        if config.mode == "clip_cov":
            per_token = per_token * (1 - sel)
        else:
            per_token = per_token + config.kl_cov_coef * log_ratio.abs() * sel
            metrics["kl_cov/abs_kl"] = masked_mean(log_ratio.abs(), sel).detach()

    loss = aggregate_loss(per_token, mask, config.agg, num_tokens, num_seqs)
    if config.entropy_coef > 0:
        if entropy is None:
            raise ValueError("config.entropy_coef > 0 needs the per-token entropy")
        loss = loss - config.entropy_coef * aggregate_loss(
            entropy, mask, config.agg, num_tokens, num_seqs
        )
    metrics["loss/policy"] = loss.detach()
    return loss, metrics
