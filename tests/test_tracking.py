"""TensorBoard and Weights & Biases beside metrics.jsonl: read back with their own readers."""

import json
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from entropy_rl.config import ConfigError, load_config
from entropy_rl.runs import tracking
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner


def _tensorboard(run_dir) -> dict[str, dict[int, float]]:
    """Every scalar of the run's TensorBoard log, read with TensorBoard's own reader."""
    events = EventAccumulator(str(run_dir / tracking.TENSORBOARD_DIR), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def _expected(records) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for record in records:
        for key, value in tracking.scalars(record).items():
            out.setdefault(key, {})[record["step"]] = value
    return out


def test_scalars_flatten_lists_and_drop_missing_values():
    record = {"step": 3, "a": 1, "b": None, "c": [0.5, None, 2.0], "d": float("nan"), "e": True}
    assert tracking.scalars(record) == {"a": 1.0, "c/0": 0.5, "c/2": 2.0}


def test_tensorboard_log_holds_every_metric_of_every_row(tmp_path, tiny_config, easy_reward):
    run = tmp_path / "run"
    runner.train(tiny_config("log.tensorboard=true"), run, show_progress=False)
    logged, expected = _tensorboard(run), _expected(read_records(run / "metrics.jsonl"))
    assert {"entropy/mean", "val/acc", "val/pass_at_k", "entropy/by_position/0"} <= set(logged)
    assert logged.keys() == expected.keys()
    for key, by_step in expected.items():
        assert logged[key].keys() == by_step.keys(), key
        for step, value in by_step.items():
            assert logged[key][step] == pytest.approx(value, rel=1e-6, abs=1e-6), (key, step)
    assert sorted(logged["val/acc"]) == [0, 2, 4, 6]


class _Killed(Exception):
    pass


def test_a_resumed_run_has_each_step_once_in_tensorboard(
    tmp_path, tiny_config, easy_reward, monkeypatch
):
    real_step, calls = runner.run_step, []

    def dying_step(*args, **kwargs):  # killed during step 5, after the step-4 checkpoint
        calls.append(1)
        if len(calls) == 6:
            raise _Killed
        return real_step(*args, **kwargs)

    run, config = tmp_path / "run", tiny_config("log.tensorboard=true")
    monkeypatch.setattr(runner, "run_step", dying_step)
    with pytest.raises(_Killed):
        runner.train(config, run, show_progress=False)
    monkeypatch.setattr(runner, "run_step", real_step)
    runner.train(None, run, resume=True, show_progress=False)
    logged, expected = _tensorboard(run), _expected(read_records(run / "metrics.jsonl"))
    assert sorted(logged["entropy/mean"]) == list(range(7))
    for step, value in expected["time/step_s"].items():  # differs between the two attempts
        assert logged["time/step_s"][step] == pytest.approx(value, rel=1e-6)


def test_wandb_offline_run_holds_the_metrics(tmp_path, tiny_config, easy_reward, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    config = tiny_config("log.wandb=true", "log.wandb_mode=offline", "train.steps=2")
    runner.train(config, run, show_progress=False)
    records = read_records(run / "metrics.jsonl")
    history = _wandb_history(run)
    assert [h["_step"] for h in history] == [r["step"] for r in records]
    for row, record in zip(history, records, strict=True):
        for key, value in tracking.scalars(record).items():
            assert row[key] == pytest.approx(value, rel=1e-9), key
    assert "val/acc" in history[0] and "entropy/by_position/0" in history[0]
    assert (run / tracking.WANDB_ID_FILE).read_text().strip() in str(
        next((run / "wandb").glob("offline-run-*"))
    )


def _wandb_history(run) -> list[dict]:
    """The history records of the run's offline W&B log, read with W&B's own reader."""
    (log,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def test_a_missing_package_is_one_line_before_any_work(tmp_path, monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name)
    )
    with pytest.raises(ConfigError, match=r"log\.wandb=true needs the wandb package"):
        runner.train(load_config(None, ["log.wandb=true"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"log\.wandb_mode"):
        load_config(None, ["log.wandb_mode=cloud"])
