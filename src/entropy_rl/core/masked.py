"""Masked reductions shared by the core's functions."""

from __future__ import annotations

import torch


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of `values` over the positions where `mask` is nonzero."""
    return (values * mask).sum()


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is nonzero; 0 when there are none."""
    count = mask.sum()
    return masked_sum(values, mask) / count.clamp(min=1)


def as_token_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sequence advantages (B,) to tokens (B, T); pass (B, T) through."""
    if advantages.dim() == mask.dim() - 1:
        return advantages.unsqueeze(-1).expand_as(mask)
    if advantages.shape != mask.shape:
        raise ValueError(
            f"advantages must have shape (B,) or (B, T) = {tuple(mask.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    return advantages


def as_float(x: torch.Tensor) -> torch.Tensor:
    """float32 for any floating input except float64, which stays float64."""
    return x if x.dtype == torch.float64 else x.float()
