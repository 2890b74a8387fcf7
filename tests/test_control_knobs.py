"""A controller that knows its knobs: a knob stuck with the entropy below the target is
declared inert after `control_patience` steps, in one line saying why, and the controller
moves to the next knob of `loss.entropy_control`'s list; the explosion guard; the list's
checks."""

import math
import re

import pytest

from entropy_rl.core import PolicyLossConfig, check_loss_config
from entropy_rl.core.control import (
    ControlState,
    control_knob,
    control_knobs,
    control_review,
    control_step,
    limit_reason,
)
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner

LIST = "clip_cov_ratio,entropy_coef"


def _config(**fields):
    base = {
        "mode": "clip_cov",
        "clip_cov_ratio": 0.03,
        "entropy_coef": 0.01,
        "entropy_target": 0.45,
        "entropy_control": LIST,
        "control_patience": 3,
    }
    return PolicyLossConfig(**{**base, **fields})


def _step(config, state, entropy, achieved):
    decision = control_step(config, state, entropy, 0, 100)
    state, line = control_review(config, decision.state, decision.metrics, achieved)
    return decision, state, line


def test_a_knob_selecting_too_few_tokens_is_inert_and_the_next_takes_over():
    config = _config()
    state, lines = ControlState(reached=True), []
    for _ in range(3):  # the window holds 0.1% of the tokens, far under what is asked
        decision, state, line = _step(config, state, 0.2, achieved=0.001)
        assert decision.loss.entropy_coef == 0.0  # the later knob is off until its turn
        lines.append(line)
    assert lines[:2] == [None, None] and lines[2].startswith(
        "entropy control: clip_cov_ratio is inert: its tokens were 0.10% of the batch, short"
    )
    assert lines[2].endswith("for 3 steps; moving to entropy_coef")
    assert state.knob == 1 and state.integral == 0.0 and state.stuck == 0
    decision, state, line = _step(config, state, 0.2, achieved=0.001)
    assert decision.metrics["control/knob"] == 1 and line is None
    assert decision.loss.entropy_coef > 0.01  # the bonus, from its configured value, raised
    assert decision.loss.clip_cov_ratio == config.clip_cov_ratio  # the inert knob: configured
    assert control_knob(config, state).name == "entropy_coef"


def test_a_knob_that_works_is_never_inert():
    config = _config()
    state = ControlState(reached=True)
    for _ in range(20):  # below the target, but the knob gets the tokens it asks for
        decision, state, line = _step(config, state, 0.4, achieved=None)
        assert line is None
        value = decision.metrics["control/value"]
        decision, state, line = _step(config, state, 0.5, achieved=value)  # and above
        assert line is None and state.knob == 0


def test_the_reasons_a_knob_is_at_its_limit():
    config = _config(entropy_control="clip_cov_ratio")
    at_bound = {"control/error": 0.1, "control/value": 0.5, "control/integral": math.log(100)}
    assert "100x its configured value" in limit_reason(config, ControlState(), at_bound, None)
    capped = {**at_bound, "control/value": 1.0, "control/integral": 0.0}
    assert "cap of 1" in limit_reason(config, ControlState(), capped, None)
    free = {**at_bound, "control/integral": 0.0}
    assert limit_reason(config, ControlState(), free, 0.46) is None  # 92% of it: rounding
    assert "short of the 50.00% asked" in limit_reason(config, ControlState(), free, 0.44)


def test_steps_above_the_target_neither_count_nor_reset():
    config = _config()
    state = ControlState(reached=True)
    for entropy in (0.4, 0.4, 0.5, 0.5, 0.5):  # short of its ask throughout
        _, state, line = _step(config, state, entropy, achieved=0.001)
        assert line is None
    assert state.stuck == 2
    _, state, line = _step(config, state, 0.4, achieved=0.001)
    assert line is not None and state.knob == 1


def test_the_last_knob_inert_says_so_once_and_stays():
    config = _config(entropy_control="clip_cov_ratio")
    state, lines = ControlState(reached=True), []
    for _ in range(6):
        _, state, line = _step(config, state, 0.2, achieved=0.0)
        lines.append(line)
    assert [line is not None for line in lines] == [False, False, True, False, False, False]
    assert "no other knob to move to" in lines[2]
    assert state.knob == 0


def test_the_explosion_guard_backs_off_once_the_target_was_reached():
    config = _config(entropy_control="clip_cov_ratio", control_kp=0.0)
    high = ControlState(integral=math.log(50), reached=True)
    decision = control_step(config, high, 0.45 * 1.6, 0, 100)  # 60% above the target
    assert decision.metrics["control/scale"] <= 1.0  # at most the configured strength
    mild = control_step(config, high, 0.45 * 1.2, 0, 100)  # 20% above: the integral decays
    assert mild.metrics["control/scale"] > 1.0
    early = control_step(config, ControlState(integral=math.log(50)), 0.9, 0, 100)
    assert early.metrics["control/scale"] > 1.0  # not reached yet: no guard


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ("clip_cov_ratio,clip_cov_ratio", "lists a knob twice"),
        ("clip_cov_ratio,kl_cov_coef", "entropy_control='kl_cov_coef' acts in mode 'kl_cov'"),
        ("clip_cov_ratio,temp", "or a comma-separated list of them); got 'temp'"),
    ],
)
def test_a_bad_list_is_refused(control, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_loss_config(_config(entropy_control=control))


def test_every_knob_of_the_list_needs_a_starting_strength():
    with pytest.raises(ValueError, match="entropy_coef must be > 0 with entropy_target"):
        check_loss_config(_config(entropy_coef=0.0))
    assert [k.name for k in control_knobs(_config())] == ["clip_cov_ratio", "entropy_coef"]


def test_a_run_moves_off_an_empty_window(tmp_path, tiny_config, easy_reward, capsys):
    """Clip-Cov's window set where no token's covariance lies: the ratio selects nothing,
    is declared inert after control_patience steps, and the bonus takes over."""
    config = tiny_config(
        "loss.mode=clip_cov",
        "loss.clip_cov_lb=1000",
        "loss.clip_cov_ub=2000",
        "loss.entropy_coef=0.01",
        "loss.entropy_target=10",
        f"loss.entropy_control={LIST}",
        "loss.control_patience=2",
        "train.steps=4",
    )
    runner.train(config, tmp_path / "run", show_progress=False)
    rows = read_records(tmp_path / "run" / "metrics.jsonl")
    assert [r["control/knob"] for r in rows] == [0, 0, 1, 1, 1]
    assert [r["control/stuck"] for r in rows] == [1, 0, 0, 0, 0]  # reset when it moves
    assert all(r["clip_cov/frac"] == 0 for r in rows[:-1])
    out = capsys.readouterr()
    line = "entropy control: clip_cov_ratio is inert: its tokens were 0.00% of the batch"
    assert line in out.out + out.err and "moving to entropy_coef" in out.out + out.err
