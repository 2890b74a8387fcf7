"""Token entropy, token log-probabilities and Lemma 1's first-order entropy change.

All three work on logits of shape (..., V) and reduce over the last axis. Inputs in
bf16/fp16/float32 are computed and returned in float32; float64 stays float64 (for
reference checks). With `chunk_size`, rows are processed a chunk at a time, so the extra
memory is a few `(chunk_size, V)` float32 buffers rather than `(B*T, V)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _map_rows(
    fn: Callable[..., torch.Tensor], tensors: list[torch.Tensor], chunk_size: int | None
) -> torch.Tensor:
    """Apply `fn` to row chunks of tensors flattened to (N, ...) and join the (N,) results."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    lead_shape = tensors[0].shape[:-1]
    flat = [
        t.reshape(-1, t.shape[-1]) if t.dim() == tensors[0].dim() else t.reshape(-1)
        for t in tensors
    ]
    n_rows = flat[0].shape[0]
    if chunk_size is None or chunk_size >= n_rows:
        return fn(*flat).reshape(lead_shape)
    parts = [fn(*(t[i : i + chunk_size] for t in flat)) for i in range(0, n_rows, chunk_size)]
    return torch.cat(parts).reshape(lead_shape)


def _entropy_rows(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1, dtype=_compute_dtype(logits))  # (N, V), no copy
    p = logp.exp()  # (N, V)
    if logp.requires_grad:
        return -(p * logp).sum(-1)
    return -p.mul_(logp).sum(-1)  # in place: one fewer (N, V) buffer when no grad is needed


def token_entropy(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Per-position entropy H = -sum_a pi(a) log pi(a) in nats, pi = softmax(logits).

    logits: (..., V). Returns (...,) in float32 (float64 for float64 input).
    """
    return _map_rows(_entropy_rows, [logits], chunk_size)


def _log_prob_rows(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    x = logits.to(_compute_dtype(logits))  # (N, V)
    picked = x.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # (N,)
    return picked - torch.logsumexp(x, dim=-1)


def token_log_probs(
    logits: torch.Tensor, tokens: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """log pi(y_t) for the given tokens. logits: (B, T, V), tokens: (B, T) -> (B, T)."""
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(
            f"tokens shape {tuple(tokens.shape)} must match logits shape without the "
            f"vocabulary axis {tuple(logits.shape[:-1])}"
        )
    return _map_rows(_log_prob_rows, [logits, tokens], chunk_size)


def _lemma1_rows(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    dtype = _compute_dtype(before)
    z0 = before.to(dtype)  # (N, V)
    logp = torch.log_softmax(z0, dim=-1)  # (N, V)
    p = logp.exp()  # (N, V)
    dz = after.to(dtype) - z0  # (N, V)
    mean_logp = (p * logp).sum(-1, keepdim=True)  # (N, 1) = -H
    mean_dz = (p * dz).sum(-1, keepdim=True)  # (N, 1)
    return -(p * (logp - mean_logp) * (dz - mean_dz)).sum(-1)


def entropy_change_first_order(
    logits_before: torch.Tensor, logits_after: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Lemma 1 of Cui et al. (2025): the first-order entropy change at each position.

    H(pi') - H(pi) ~= -Cov_{a~pi}(log pi(a), dz(a))
                    = -sum_a pi(a) (log pi(a) - E_pi[log pi]) (dz(a) - E_pi[dz]),
    with pi = softmax(logits_before) and dz = logits_after - logits_before, computed
    exactly over the full vocabulary (the paper's statement; nothing is sampled).
    The error against the true change is second order in dz.

    logits_before, logits_after: (..., V). Returns (...,).
    """
    if logits_before.shape != logits_after.shape:
        raise ValueError(
            f"logits_before {tuple(logits_before.shape)} and logits_after "
            f"{tuple(logits_after.shape)} must have the same shape"
        )
    return _map_rows(_lemma1_rows, [logits_before, logits_after], chunk_size)
