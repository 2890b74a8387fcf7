"""The entropy controller (`entropy_rl.core.control`): its rule against a slow reference,
its bounds, its schedule, its knobs, and its closed loop on a model of the entropy."""

import math
import random

import pytest

from entropy_rl.core import PolicyLossConfig
from entropy_rl.core.control import (
    CONTROL_KEYS,
    ControlState,
    check_loss_config,
    control_knob,
    control_step,
    entropy_target_at,
)


def _reference(config: PolicyLossConfig, entropies, total_steps):
    """The rule written out step by step: the scales and the knob values it sets."""
    log_scale, reached, out = 0.0, False, []
    knob = {"clip_cov": "clip_cov_ratio", "kl_cov": "kl_cov_coef"}.get(config.mode, "entropy_coef")
    lowest, highest = 1 / config.control_max_scale, config.control_max_scale
    for step, h in enumerate(entropies):
        target = config.entropy_target
        if config.entropy_target_end is not None:
            target += (config.entropy_target_end - target) * step / total_steps
        error = (target - h) / target
        if reached and error < -config.control_explosion:  # far above, once reached: back off
            log_scale = min(log_scale, 0.0)
        scale = math.exp(log_scale + config.control_kp * error)
        scale = min(max(scale, lowest), highest)
        if h <= target:
            reached = True
        if reached:
            log_scale = math.log(
                min(max(math.exp(log_scale + config.control_ki * error), lowest), highest)
            )
        value = scale * getattr(config, knob)
        out.append((scale, min(value, 1.0) if knob.endswith("_ratio") else value))  # a share
    return out


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "kl_cov", "kl_cov_coef": 2.0, "entropy_target": 0.5},
        {"mode": "clip_cov", "clip_cov_ratio": 0.03, "entropy_target": 0.4},
        {"mode": "ppo", "entropy_coef": 0.01, "entropy_target": 0.6, "entropy_target_end": 0.3},
        {"mode": "kl_cov", "entropy_target": 0.5, "control_kp": 0.0, "control_ki": 2.0},
    ],
)
def test_rule_matches_the_slow_reference(fields):
    config = PolicyLossConfig(**fields)
    rng = random.Random(0)
    entropies = [rng.uniform(0.05, 1.2) for _ in range(40)]
    state, got = ControlState(), []
    for step, h in enumerate(entropies):
        decision = control_step(config, state, h, step, 40)
        state = decision.state
        knob = control_knob(config).name
        got.append((decision.metrics["control/scale"], getattr(decision.loss, knob)))
        assert decision.metrics["control/value"] == getattr(decision.loss, knob)
        assert set(decision.metrics) == set(CONTROL_KEYS)
    reference = _reference(config, entropies, 40)
    for (scale, value), (ref_scale, ref_value) in zip(got, reference, strict=True):
        assert scale == pytest.approx(ref_scale, rel=1e-9)
        assert value == pytest.approx(ref_value, rel=1e-9)


def test_the_steps_loss_has_the_knob_set_and_no_controller():
    config = PolicyLossConfig(mode="kl_cov", kl_cov_coef=2.0, entropy_target=0.5)
    decision = control_step(config, ControlState(), 0.4, 0, 10)  # too low: stronger
    assert decision.loss.entropy_target is None and decision.loss.entropy_target_end is None
    assert decision.loss.kl_cov_coef > 2.0
    assert decision.loss.kl_cov_ratio == config.kl_cov_ratio  # only the knob moves
    weaker = control_step(config, ControlState(), 0.6, 0, 10)  # too high: weaker
    assert weaker.loss.kl_cov_coef < 2.0


def test_scale_and_integral_stay_in_bounds_and_do_not_wind_up():
    config = PolicyLossConfig(mode="kl_cov", entropy_target=0.5, control_max_scale=30.0)
    state = ControlState()
    for step in range(200):  # entropy far below the target for a long time
        decision = control_step(config, state, 0.01, step, 400)
        state = decision.state
        assert 1 / 30 - 1e-9 <= decision.metrics["control/scale"] <= 30.0 + 1e-9
    assert state.integral == pytest.approx(math.log(30.0))
    steps_to_let_go = 0
    while decision.metrics["control/scale"] > 1.0:  # then far above it
        decision = control_step(config, state, 2.0, 0, 400)
        state, steps_to_let_go = decision.state, steps_to_let_go + 1
    assert steps_to_let_go <= 2  # the integral was clamped, so no long wind-up to undo


def test_no_integral_until_the_entropy_first_reaches_the_target():
    config = PolicyLossConfig(mode="kl_cov", entropy_target=0.5)
    state = ControlState()
    for h in (0.7, 0.65, 0.6, 0.55):  # a run starting above its target: weaker, no wind-up
        decision = control_step(config, state, h, 0, 100)
        state = decision.state
        assert decision.metrics["control/scale"] < 1.0
        assert state.integral == 0.0 and not state.reached
    state = control_step(config, state, 0.45, 0, 100).state
    assert state.reached and state.integral > 0.0
    state = control_step(config, state, 0.6, 0, 100).state  # above again: now it integrates
    assert state.integral < 0.0


def test_ratio_knobs_are_capped_at_one():
    config = PolicyLossConfig(mode="clip_cov", clip_cov_ratio=0.5, entropy_target=1.0)
    decision = control_step(config, ControlState(integral=2.0), 0.1, 0, 10)
    assert decision.loss.clip_cov_ratio == 1.0


def test_linear_schedule():
    config = PolicyLossConfig(mode="kl_cov", entropy_target=0.6, entropy_target_end=0.2)
    assert entropy_target_at(config, 0, 100) == pytest.approx(0.6)
    assert entropy_target_at(config, 50, 100) == pytest.approx(0.4)
    assert entropy_target_at(config, 100, 100) == pytest.approx(0.2)
    assert entropy_target_at(config, 150, 100) == pytest.approx(0.2)
    constant = PolicyLossConfig(mode="kl_cov", entropy_target=0.6)
    assert entropy_target_at(constant, 70, 100) == 0.6


@pytest.mark.parametrize(
    ("mode", "control", "knob"),
    [
        ("clip_cov", "auto", "clip_cov_ratio"),
        ("kl_cov", "auto", "kl_cov_coef"),
        ("kl_cov", "kl_cov_ratio", "kl_cov_ratio"),
        ("ppo", "auto", "entropy_coef"),
        ("kl_cov", "entropy_coef", "entropy_coef"),
    ],
)
def test_knobs(mode, control, knob):
    config = PolicyLossConfig(
        mode=mode, entropy_coef=0.01, entropy_target=0.5, entropy_control=control
    )
    assert control_knob(config).name == knob


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "ppo", "entropy_target": 0.5}, "entropy_coef must be > 0 with entropy_target"),
        ({"mode": "ppo", "entropy_target": 0.5, "entropy_control": "kl_cov_coef"}, "acts in mode"),
        ({"mode": "kl_cov", "entropy_target": -0.1}, "entropy_target must be > 0"),
        ({"mode": "kl_cov", "entropy_target": float("nan")}, "finite"),
        ({"mode": "kl_cov", "entropy_target_end": 0.2}, "needs entropy_target"),
        ({"mode": "kl_cov", "entropy_target": 0.5, "entropy_control": "temp"}, "one of"),
        ({"mode": "kl_cov", "entropy_target": 0.5, "control_ki": -1.0}, "control_ki"),
        ({"mode": "kl_cov", "entropy_target": 0.5, "control_max_scale": 0.5}, "max_scale"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        check_loss_config(PolicyLossConfig(**fields))


@pytest.mark.parametrize("gain", [0.0003, 0.001, 0.005])
@pytest.mark.parametrize("pull", [0.012, 0.024])
@pytest.mark.parametrize("target", [0.5, 0.35])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_loop_holds_a_model_of_the_entropy_at_its_target(gain, pull, target, seed):
    """A model of an embedded run's entropy: each step the policy gradient lowers it by
    `pull` * H (GRPO's measured fall on the embedded task, about 0.009 a step at H = 0.6 and
    0.003 at 0.25, is a pull of 0.012-0.015), the knob raises it by `gain` per unit of scale
    (17x apart: holding the target needs a scale of 0.8 to 40), with noise of 0.01 a step.
    The default gains hold it near the target over the second half, with no tuning per
    case; the rule with its sign flipped would not."""
    config = PolicyLossConfig(mode="kl_cov", entropy_target=target)
    rng = random.Random(seed)
    state, h, late = ControlState(), 0.68, []
    for step in range(150):
        decision = control_step(config, state, h, step, 150)
        state = decision.state
        h += -pull * h + gain * decision.metrics["control/scale"] + rng.gauss(0.0, 0.01)
        h = max(h, 0.01)
        if step >= 75:
            late.append(h)
    assert abs(sum(late) / len(late) - target) < 0.025
    assert max(abs(x - target) for x in late) < 0.12
