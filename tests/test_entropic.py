"""EntroPIC (arXiv 2511.15248) as mode 'entropic' and rule 'entropic': the loss and the
rule against slow, written-out references, the checks of their settings, and a training run
in which the rule steers alpha."""

import math
import random

import pytest
import torch

from entropy_rl.config import load_config
from entropy_rl.core import PolicyLossConfig, check_loss_config, policy_loss
from entropy_rl.core.control import ControlState
from entropy_rl.core.entropic import ENTROPIC_KEYS, entropic_start, entropic_update
from entropy_rl.core.losses import TokenScores, select_tokens
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training.runner import train


def _slow_loss(log_probs, old_log_probs, adv, mask, alpha, prob, clip=0.2):
    """Token by token: PPO's clipped loss, a mean over the valid tokens, plus alpha times the
    mean of -(r |A|) over those whose probability under the sampling policy exceeds `prob`."""
    ppo, extra, count, high = 0.0, 0.0, 0, 0
    for i in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            if not mask[i, t]:
                continue
            r = math.exp(log_probs[i][t] - old_log_probs[i][t])
            a = float(adv[i])
            ppo, count = ppo + max(-a * r, -a * min(max(r, 1 - clip), 1 + clip)), count + 1
            if math.exp(old_log_probs[i][t]) > prob:
                extra, high = extra - r * abs(a), high + 1
    return ppo / count + alpha * extra / high


@pytest.mark.parametrize("alpha", [-0.7, 0.0, 0.4])
def test_the_loss_matches_the_slow_reference(alpha):
    g = torch.Generator().manual_seed(0)
    old = torch.log(torch.rand(6, 5, generator=g) * 0.6 + 0.4)  # (B, T) p in [0.4, 1)
    new = old + 0.2 * torch.randn(6, 5, generator=g)
    adv = torch.randn(6, generator=g)  # (B,)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[2, 3:] = False
    config = PolicyLossConfig(mode="entropic", entropic_alpha=alpha, entropic_prob=0.8)
    cov = torch.zeros(6, 5)
    selection = select_tokens(TokenScores(cov, None, old), mask, config, None)
    loss, metrics = policy_loss(new, old, adv, mask, config, selection=selection)
    reference = _slow_loss(new.tolist(), old.tolist(), adv.tolist(), mask, alpha, 0.8)
    assert loss.item() == pytest.approx(reference, rel=1e-6)
    share = float(((old.exp() > 0.8) & mask).sum() / mask.sum())
    assert metrics["entropic/frac"].item() == pytest.approx(share)
    assert 0 < share < 1


def _slow_rule(entropies, alpha, target, kp, ki):
    """EntroPIC's rule written out: each optimizer step's alpha, then its update."""
    integral, applied = 0.0, []
    for h in entropies:
        applied.append(alpha)
        alpha = min(max(kp * (h - target) + ki * integral, -1.0), 1.0)
        integral += h - target
    return applied


@pytest.mark.parametrize("seed", range(3))
def test_the_rule_matches_the_slow_reference(seed):
    rng = random.Random(seed)
    entropies = [rng.uniform(0.1, 0.9) for _ in range(40)]
    config = PolicyLossConfig(
        mode="entropic", entropy_target=0.45, control_rule="entropic", entropic_kp=3.0
    )
    state, applied = ControlState(), []
    for step, h in enumerate(entropies):
        decision = entropic_start(config, state, h, step, 40)
        assert set(decision.metrics) == set(ENTROPIC_KEYS)
        applied.append(decision.loss.entropic_alpha)
        assert decision.loss.entropy_target is None  # the step's loss has no controller
        state = entropic_update(config, decision.state, h, step, 40).state
    assert applied == pytest.approx(_slow_rule(entropies, 0.0, 0.45, 3.0, 0.01))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"entropic_alpha": 1.5}, r"entropic_alpha must be in \[-1, 1\]"),
        ({"entropic_prob": 1.0}, r"entropic_prob must be in \(0, 1\)"),
        ({"entropic_ki": -0.1}, "entropic_ki must be >= 0"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        PolicyLossConfig(mode="entropic", **fields)


def test_the_mode_is_steered_by_its_own_rule_only():
    ok = PolicyLossConfig(mode="entropic", entropy_target=0.4, control_rule="entropic")
    assert check_loss_config(ok) is ok
    with pytest.raises(ValueError, match="needs control_rule='entropic'"):
        check_loss_config(PolicyLossConfig(mode="entropic", entropy_target=0.4))


def test_the_trainer_steers_alpha_to_lower_an_entropy_above_its_target(tiny_overrides, tmp_path):
    """A target below any entropy the run has: alpha goes to +1 (sharpen) after the first
    optimizer step and stays there; every row names the rule's keys."""
    overrides = [
        *tiny_overrides,
        "loss.mode=entropic",
        "loss.entropy_target=0.001",
        "loss.control_rule=entropic",
        "loss.entropic_prob=0.05",  # the seconds-old model is unsure of every token
    ]
    train(load_config(None, overrides), tmp_path / "run", show_progress=False)
    rows = list(read_records(tmp_path / "run" / "metrics.jsonl"))
    values = [row["control/value"] for row in rows if "control/value" in row]
    assert values[0] == 0.0 and all(v == 1.0 for v in values[1:]), values
    for row in rows[:-1]:
        assert set(ENTROPIC_KEYS) <= row.keys()
        assert 0 < row["entropic/frac"] <= 1
    integrals = [row["control/integral"] for row in rows[:-1]]
    assert integrals[0] == 0 and integrals == sorted(integrals) and integrals[-1] > 0
