"""The entropy controller in the trainer: its decision reaches the step's loss and selection,
its keys are in every row, and its state survives a crash (bad settings: test_cli_train)."""

import pytest

from conftest import TINY, full_killed_resumed
from entropy_rl.config import load_config
from entropy_rl.core import authority
from entropy_rl.core.control import CONTROL_KEYS, ControlState
from entropy_rl.runs.checkpoint import list_checkpoints, read_state
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner
from entropy_rl.training.run_state import RunState


def _rows(run):
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in read_records(run / "metrics.jsonl")
    ]


@pytest.fixture(scope="module")
def controlled(tmp_path_factory, base_cache):
    """A KL-Cov run steering its selected fraction to an entropy far above any it has (so
    the fraction rises every step), with its gains set from the knob's authority once the
    fit has 3 steps; the same run killed during step 5, then resumed."""

    root = tmp_path_factory.mktemp("controlled")
    config = load_config(
        None,
        [
            *TINY,
            f"pretrain.cache_dir={base_cache}",
            "loss.mode=kl_cov",
            "loss.kl_cov_ratio=0.05",
            "loss.entropy_control=kl_cov_ratio",
            "loss.entropy_target=10",
            "loss.control_kp=0",  # the integral alone: the fraction rises by a known rule
            "loss.control_gains=auto",
        ],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(authority, "AUTHORITY_MIN_WEIGHT", 3.0)
        full_killed_resumed(config, root)
    return root, config


def test_every_row_has_the_control_keys_and_the_selection_follows_them(controlled):
    root, config = controlled
    rows = _rows(root / "full")
    assert len(rows) == config.train.steps + 1
    for row in rows:
        assert set(CONTROL_KEYS) <= row.keys()
        assert row["control/target"] == 10.0
        assert row["control/error"] == pytest.approx(10.0 - row["entropy/mean"])
    updated = rows[:-1]  # the last row only measures
    values = [row["control/value"] for row in updated]
    assert values[0] == pytest.approx(0.05)  # scale 1 (the configured value) at the start
    assert values == sorted(values) and values[-1] > values[0]
    for row in updated:  # the fraction KL-Cov penalised is the controller's (token rounding)
        assert row["kl_cov/frac"] == pytest.approx(row["control/value"], abs=0.02)


def test_the_authority_is_fitted_on_the_probe_and_sets_the_gains(controlled, monkeypatch):
    """Each row's authority and gains are those of the fit of the rows before it (the knob's
    value against the probe's entropy change), and the checkpoint holds that fit; kp stays 0
    (its range is 0 to 8 times 0)."""
    monkeypatch.setattr(authority, "AUTHORITY_MIN_WEIGHT", 3.0)
    root, config = controlled
    last = list_checkpoints(root / "full")[0]  # newest first
    rows, fit, fits = _rows(root / "full"), authority.AuthorityFit(), {}
    for row in rows:
        expected = fit.authority()
        got = row["control/authority"]
        assert (got is None) == (expected is None) and (got or 0) == pytest.approx(expected or 0)
        kp, ki = authority.loop_gains(0.9, 10.0, expected, 0.0, config.loss.control_ki)
        assert (row["control/kp"], row["control/ki"]) == pytest.approx((kp, ki))
        if "dynamics/dH_actual" in row:
            fit = fit.observe(row["control/value"], row["dynamics/dH_actual"])
        fits[row["step"] + 1] = fit  # what a checkpoint after this row holds
    saved = authority.AuthorityFit(**read_state(last)["run_state"]["control"]["authority"])
    assert saved.weight == pytest.approx(fits[last.step].weight) and saved.weight > 3
    assert saved.line() == pytest.approx(fits[last.step].line())


def test_a_controlled_run_killed_mid_step_resumes_bit_exact(controlled):
    root, _ = controlled
    assert _rows(root / "resumed") == _rows(root / "full")


def test_the_controller_state_is_saved_whole():
    state = RunState.fresh(0)
    fit = authority.AuthorityFit().observe(0.1, -0.004).observe(0.2, 0.001)
    state.control = ControlState(integral=0.7, reached=True, authority=fit)
    assert RunState.from_dict(state.to_dict()).control == state.control


def test_an_uncontrolled_run_has_no_control_keys(tiny_config, tmp_path, easy_reward):
    runner.train(tiny_config("train.steps=2"), tmp_path / "run", show_progress=False)
    assert all(not k.startswith("control/") for r in _rows(tmp_path / "run") for k in r)
