"""Advantage estimators for outcome rewards, one scalar per response.

Rewards come as (P, G): P prompts, G sampled responses each. Every estimator returns (P, G),
and a group whose rewards are all equal gets advantage exactly 0 (never NaN): such a group
carries no learning signal. The trainer copies each response's advantage to its tokens.
Estimators are registered by name in `ADVANTAGE_ESTIMATORS` (`train.advantage`); add one with
`register_advantage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from entropy_rl.registry import Registry

DEFAULT_EPS = 1e-6
AdvantageFn = Callable[[torch.Tensor, float], torch.Tensor]
"""(rewards (P, G), eps) -> advantages (P, G); a group with equal rewards gets exactly 0."""


def _check_groups(rewards: torch.Tensor, min_group: int = 1) -> torch.Tensor:
    if rewards.dim() != 2 or rewards.shape[1] < min_group:
        raise ValueError(
            f"rewards must have shape (prompts, group_size) with group_size >= {min_group}, "
            f"got {tuple(rewards.shape)}"
        )
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    return rewards.amax(-1, keepdim=True) == rewards.amin(-1, keepdim=True)  # (P, 1) degenerate


@dataclass(frozen=True)
class AdvantageEstimator:
    """One entry of `ADVANTAGE_ESTIMATORS`."""

    fn: AdvantageFn
    min_group: int = 1
    """The smallest group size it learns from. 2 for a group-relative estimator, whose baseline
    is the mean of the prompt's own group (GRPO, Dr. GRPO, REINFORCE++ here): a group of one
    response gets advantage 0, and the step would train nothing; RLOO's leave-one-out
    baseline is undefined below 2. The config refuses a smaller `train.group_size`."""


ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator")
"""The estimators `compute_advantages` accepts by name (`train.advantage`), read-only."""


def register_advantage(name: str, fn: AdvantageFn | None = None, min_group: int = 1):
    """Add the estimator `fn`, defined for groups of `min_group` or more responses, under
    `name` (ValueError if the name is taken); returns `fn`. Without `fn`, a decorator that
    registers the function it decorates."""
    register = ADVANTAGE_ESTIMATORS.register(name, partial(AdvantageEstimator, min_group=min_group))
    return register if fn is None else register(fn)


def unregister_advantage(name: str) -> None:
    """Remove an estimator added with `register_advantage` (tests)."""
    ADVANTAGE_ESTIMATORS.remove(name)


GROUP_RELATIVE = 2
"""`min_group` of a group-relative estimator: all four built-in ones are."""


@register_advantage("grpo", min_group=GROUP_RELATIVE)
def grpo_advantages(
    rewards: torch.Tensor, eps: float = DEFAULT_EPS, scale_by_std: bool = True
) -> torch.Tensor:
    """GRPO: A = (r - mean_group) / (std_group + eps) (Shao et al., 2024).

    std is the unbiased sample std of the group (as in GRPO's reference code). With
    `scale_by_std=False` this is Dr. GRPO's A = r - mean_group (Liu et al., 2025).
    """
    degenerate = _check_groups(rewards)
    centered = rewards - rewards.mean(-1, keepdim=True)  # (P, G)
    if scale_by_std and rewards.shape[1] > 1:
        centered = centered / (rewards.std(-1, keepdim=True) + eps)
    return centered.masked_fill(degenerate, 0.0)


@register_advantage("dr_grpo", min_group=GROUP_RELATIVE)
def dr_grpo_advantages(rewards: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Dr. GRPO: A = r - mean_group, GRPO without the std (Liu et al., 2025)."""
    return grpo_advantages(rewards, eps, scale_by_std=False)


@register_advantage("rloo", min_group=GROUP_RELATIVE)
def rloo_advantages(rewards: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """RLOO: A_i = r_i - mean_{j != i} r_j, the leave-one-out baseline (Ahmadian et al., 2024);
    `eps` is unused (no division by a spread)."""
    degenerate = _check_groups(rewards, min_group=2)
    g = rewards.shape[1]
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (g - 1)  # (P, G)
    return (rewards - baseline).masked_fill(degenerate, 0.0)


@register_advantage("reinforce_pp", min_group=GROUP_RELATIVE)
def reinforce_pp_advantages(rewards: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """REINFORCE++ with a group baseline: (r - mean_group) / (std_batch + eps).

    Departures from REINFORCE++ (Hu, 2025), which whitens returns over the whole batch:
    1. The group mean is subtracted first (the "-baseline" variant for outcome rewards), so
       that a group with equal rewards gets exactly 0.
    2. Only the scale is normalised over the batch; the batch mean of the group-centred
       rewards is already 0.
    """
    degenerate = _check_groups(rewards)
    centered = (rewards - rewards.mean(-1, keepdim=True)).masked_fill(degenerate, 0.0)
    scale = centered.std() if centered.numel() > 1 else centered.new_tensor(0.0)
    return centered / (scale + eps)


def compute_advantages(rewards: torch.Tensor, estimator: str, eps: float = DEFAULT_EPS):
    """The registered estimator `estimator`: 'grpo', 'dr_grpo' (GRPO without the std, Liu et
    al. 2025), 'rloo' or 'reinforce_pp'. rewards (P, G) -> (P, G)."""
    return ADVANTAGE_ESTIMATORS.check(estimator, "estimator").fn(rewards, eps)
