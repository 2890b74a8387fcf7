"""TRL's fixed-step adaptive entropy rule (`use_adaptive_entropy`, Skywork-OR1's) as the
controller rule `fixed_step`: against a transcription of TRL 1.16's rule
(`GRPOTrainer._compute_loss`), in the trainer, through a crash, and its settings."""

import math
import random

import pytest

from conftest import TINY, full_killed_resumed
from entropy_rl.config import load_config
from entropy_rl.core import PolicyLossConfig, check_loss_config
from entropy_rl.core.control import ControlState
from entropy_rl.core.fixed_step import FIXED_STEP_KEYS, fixed_step_start, fixed_step_update
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training.run_state import RunState


def trl_applied_coefficients(entropies, coef, target, delta, low, high):
    """TRL 1.16's rule, one optimizer step per entropy: the coefficient each step applies
    (`apply_coef`), then its update from that step's window entropy."""
    last, applied = float("inf"), []
    for entropy in entropies:
        applied.append(coef if last <= target else 0.0)
        coef = min(coef + delta, high) if entropy <= target else max(coef - delta, low)
        last = entropy
    return applied


@pytest.mark.parametrize("seed", range(4))
def test_the_rule_applies_trls_coefficients_step_for_step(seed):
    """Rollout steps of 3 optimizer steps each, the state carried across them (and through
    a checkpoint's dict) as the trainer carries it."""
    rng = random.Random(seed)
    config = PolicyLossConfig(
        entropy_coef=rng.choice([0.0, 0.01]),
        entropy_target=0.4,
        control_rule="fixed_step",
        control_step_size=0.005,
        control_min=0.0,
        control_max=0.02,
    )
    entropies = [0.4 + rng.uniform(-0.1, 0.1) for _ in range(30)]
    state, applied = ControlState(), []
    for start in range(0, 30, 3):
        step = start // 3
        decision = fixed_step_start(config, state, entropies[start] + 0.01, step, 10)
        loss = decision.loss
        for entropy in entropies[start : start + 3]:
            applied.append(loss.entropy_coef)
            decision = fixed_step_update(config, state, entropy, step, 10)
            state, loss = decision.state, decision.loss
        saved = RunState.fresh(0)
        saved.control = state
        state = RunState.from_dict(saved.to_dict()).control
    expected = trl_applied_coefficients(entropies, config.entropy_coef, 0.4, 0.005, 0.0, 0.02)
    assert applied == pytest.approx(expected, abs=1e-15)
    assert 0.0 in applied and any(a > 0 for a in applied)  # gated off and on


def test_the_first_step_is_gated_off_and_the_start_decision_names_its_keys():
    config = PolicyLossConfig(entropy_coef=0.01, entropy_target=0.5, control_rule="fixed_step")
    decision = fixed_step_start(config, ControlState(), 0.3, 0, 10)
    assert decision.loss.entropy_coef == 0.0  # TRL's last entropy starts at +inf
    assert decision.loss.entropy_target is None  # the step's loss has no controller
    assert set(decision.metrics) == set(FIXED_STEP_KEYS)
    assert decision.metrics["control/error"] == pytest.approx(0.2)
    assert math.isinf(decision.state.last_entropy)


def test_any_knob_moves_by_the_rule():
    config = PolicyLossConfig(
        mode="kl_cov",
        entropy_target=0.5,
        control_rule="fixed_step",
        control_step_size=0.5,
        control_max=10.0,
    )  # auto: KL-Cov's coefficient, configured 1.0
    decision = fixed_step_update(config, ControlState(), 0.2, 0, 10)
    assert decision.state.value == 1.5 and decision.loss.kl_cov_coef == 1.5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"control_step_size": 0.0}, "control_step_size must be > 0"),
        ({"control_min": -0.1}, "control_min must be >= 0"),
        ({"control_min": 0.5, "control_max": 0.2}, "control_max must be >= control_min"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        PolicyLossConfig(control_rule="fixed_step", **fields)


def test_the_rule_is_checked_by_name_and_needs_no_starting_strength():
    ok = PolicyLossConfig(entropy_target=0.5, control_rule="fixed_step")  # entropy_coef 0
    assert check_loss_config(ok) is ok
    with pytest.raises(ValueError, match="entropy_coef must be > 0 with entropy_target"):
        check_loss_config(PolicyLossConfig(entropy_target=0.5))  # 'pi' scales its start
    with pytest.raises(ValueError, match="control_rule must be one of pi, entropic, fixed_step"):
        check_loss_config(PolicyLossConfig(entropy_target=0.5, control_rule="fixed"))


@pytest.fixture(scope="module")
def fixed_step_run(tmp_path_factory, base_cache):
    """The bonus under the fixed-step rule with a target above any entropy the run has: it
    rises by the step size at every optimizer step (2 per rollout step); the same run
    killed during step 5, then resumed."""
    root = tmp_path_factory.mktemp("fixed_step")
    config = load_config(
        None,
        [
            *TINY,
            f"pretrain.cache_dir={base_cache}",
            "loss.entropy_target=10",
            "loss.control_rule=fixed_step",
            "loss.control_step_size=0.01",
        ],
    )
    full_killed_resumed(config, root)
    return root, config


def _rows(run):
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in read_records(run / "metrics.jsonl")
    ]


def test_the_trainer_moves_the_bonus_each_optimizer_step(fixed_step_run):
    root, config = fixed_step_run
    rows = _rows(root / "full")
    updates = config.train.mini_batches * config.train.ppo_epochs  # 2 per rollout step
    # step 0: gated off (no entropy measured yet); then 0.01 per optimizer step so far
    expected = [0.0] + [0.01 * updates * step for step in range(1, len(rows))]
    assert [row["control/value"] for row in rows] == pytest.approx(expected)
    for row in rows[:-1]:  # the last row only measures
        assert set(FIXED_STEP_KEYS) <= row.keys()
        assert 0 < row["control/update_entropy"] < 10


def test_a_fixed_step_run_killed_mid_step_resumes_bit_exact(fixed_step_run):
    root, _ = fixed_step_run
    assert _rows(root / "resumed") == _rows(root / "full")
