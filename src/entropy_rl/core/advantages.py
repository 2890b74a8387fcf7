"""Advantage estimators for outcome rewards, one scalar per response.

Rewards come as (P, G): P prompts, G sampled responses each. Every estimator returns (P, G),
and a group whose rewards are all equal gets advantage exactly 0 (never NaN): such a group
carries no learning signal. The trainer copies each response's advantage to its tokens.
"""

from __future__ import annotations

import torch

ADVANTAGE_ESTIMATORS = ("grpo", "dr_grpo", "rloo", "reinforce_pp")
"""Names `compute_advantages` accepts (`train.advantage`)."""
DEFAULT_EPS = 1e-6


def _check_groups(rewards: torch.Tensor, min_group: int = 1) -> torch.Tensor:
    if rewards.dim() != 2 or rewards.shape[1] < min_group:
        raise ValueError(
            f"rewards must have shape (prompts, group_size) with group_size >= {min_group}, "
            f"got {tuple(rewards.shape)}"
        )
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    return rewards.amax(-1, keepdim=True) == rewards.amin(-1, keepdim=True)  # (P, 1) degenerate


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


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: A_i = r_i - mean_{j != i} r_j, the leave-one-out baseline (Ahmadian et al., 2024)."""
    degenerate = _check_groups(rewards, min_group=2)
    g = rewards.shape[1]
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (g - 1)  # (P, G)
    return (rewards - baseline).masked_fill(degenerate, 0.0)


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
    """Dispatch by name: 'grpo', 'dr_grpo' (GRPO without the std, Liu et al. 2025), 'rloo'
    or 'reinforce_pp'. rewards (P, G) -> (P, G)."""
    if estimator == "grpo":
        return grpo_advantages(rewards, eps)
    if estimator == "dr_grpo":
        return grpo_advantages(rewards, eps, scale_by_std=False)
    if estimator == "rloo":
        return rloo_advantages(rewards)
    if estimator == "reinforce_pp":
        return reinforce_pp_advantages(rewards, eps)
    raise ValueError(
        f"estimator must be one of {', '.join(ADVANTAGE_ESTIMATORS)}; got {estimator!r}"
    )
