"""Advantage estimators against hand computations."""

import pytest
import torch

from entropy_rl.core import (
    compute_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def test_grpo_hand_computed():
    out = grpo_advantages(REWARDS, eps=0.0)
    std0 = torch.tensor([1.0, 0.0, 0.0, 1.0]).std()
    torch.testing.assert_close(out[0], (REWARDS[0] - 0.5) / std0)
    assert (out[1] == 0).all()
    std2 = torch.tensor([0.0, 0.0, 0.0, 1.0]).std()
    torch.testing.assert_close(out[2], (REWARDS[2] - 0.25) / std2)


def test_dr_grpo_has_no_std():
    torch.testing.assert_close(
        grpo_advantages(REWARDS, scale_by_std=False),
        REWARDS - REWARDS.mean(-1, keepdim=True),
    )


def test_dr_grpo_by_name_is_the_group_centred_reward():
    """Slow reference: each reward minus its group's mean, one at a time."""
    out = compute_advantages(REWARDS, "dr_grpo")
    for p in range(3):
        mean = sum(REWARDS[p].tolist()) / 4
        for i in range(4):
            assert out[p, i].item() == pytest.approx(REWARDS[p, i].item() - mean)


def test_rloo_leave_one_out():
    out = rloo_advantages(REWARDS)
    for p in range(3):
        for i in range(4):
            others = [REWARDS[p, j] for j in range(4) if j != i]
            assert out[p, i].item() == pytest.approx(REWARDS[p, i].item() - sum(others) / 3)


def test_reinforce_pp_group_baseline_batch_scale():
    out = reinforce_pp_advantages(REWARDS, eps=0.0)
    centered = REWARDS - REWARDS.mean(-1, keepdim=True)
    torch.testing.assert_close(out, centered / centered.std())


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo", "reinforce_pp"])
def test_equal_groups_are_exactly_zero_never_nan(estimator):
    rewards = torch.tensor([[0.1, 0.1, 0.1], [0.7, 0.7, 0.7]])
    out = compute_advantages(rewards, estimator)
    assert torch.equal(out, torch.zeros_like(out))
    mixed = torch.tensor([[0.1, 0.1, 0.1], [0.0, 1.0, 0.0]])
    out = compute_advantages(mixed, estimator)
    assert torch.isfinite(out).all() and torch.equal(out[0], torch.zeros(3))


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        grpo_advantages(torch.zeros(4))
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="NaN"):
        grpo_advantages(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="estimator"):
        compute_advantages(REWARDS, "ppo")
