"""Other frameworks' logs, written by the frameworks' own writers, read by `entropy_rl.analysis.readers`:
each gives the law of the numbers that were logged, as the same numbers in JSON lines do."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropy_rl.analysis.law import fit_entropy_law
from entropy_rl.analysis.readers import LogFormatError, open_log, read_entropy_reward
from entropy_rl.commands.cli import main

STEPS = range(0, 60, 5)


def _numbers(seed=0):
    """(step, H, R) of a collapsing run on the law R = -0.5 exp(H) + 1.45, with noise."""
    rng = np.random.default_rng(seed)
    out = []
    for step in STEPS:
        h = 0.2 + 0.8 * math.exp(-step / 12) + rng.normal(0, 0.01)
        out.append((step, h, -0.5 * math.exp(h) + 1.45 + rng.normal(0, 0.005)))
    return out


def _assert_same_law(series, numbers, rel=1e-6):
    """The series holds the numbers (float32 where the writer stores float32), and its law
    is theirs."""
    steps, h, r = (np.array(x) for x in zip(*numbers, strict=True))
    np.testing.assert_array_equal(series.steps, steps)
    np.testing.assert_allclose(series.entropy, h, rtol=rel)
    np.testing.assert_allclose(series.reward, r, rtol=rel)
    got, expected = fit_entropy_law(series.entropy, series.reward), fit_entropy_law(h, r)
    for name in ("a", "b", "ceiling"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=100 * rel)


WANDB_WRITER = """
import json, sys
import wandb
numbers = json.loads(sys.argv[1])
run = wandb.init(project="verl_grpo", dir=sys.argv[2], mode="offline",
                 settings=wandb.Settings(console="off"))
for step in range(60):
    record = {"actor/entropy": 1.0 - step / 100, "critic/score/mean": step / 100}
    for s, h, r in numbers:
        if s == step:
            record.update({"actor/entropy": h, "val-core/openai/gsm8k/acc/mean@1": r})
    run.log(record, step=step)
run.finish()
"""


def test_a_wandb_offline_run_gives_the_law_of_its_numbers(tmp_path):
    """wandb itself writes the run (verl's key names, as its W&B backend logs them)."""
    numbers = _numbers()
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    args = [sys.executable, "-c", WANDB_WRITER, json.dumps(numbers), str(tmp_path)]
    subprocess.run(args, check=True, env=env, timeout=120)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    for path in (tmp_path / "wandb", run_dir, next(run_dir.glob("*.wandb"))):
        series = read_entropy_reward(path)
        assert (series.kind, series.preset, series.step_key) == ("wandb", "verl", "_step")
        assert series.reward_key == "val-core/openai/gsm8k/acc/mean@1"
        _assert_same_law(series, numbers, rel=1e-12)  # W&B keeps float64


def test_a_tensorboard_log_and_its_jsonl_give_the_same_law(tmp_path):
    """TensorBoard's writer stores float32: the same law to float32 precision."""
    from tensorboard.summary import Writer

    numbers = _numbers(seed=1)
    writer = Writer(str(tmp_path / "tb"))
    for step, h, r in numbers:
        writer.add_scalar("entropy/mean", h, step)
        writer.add_scalar("val/acc", r, step)
    writer.close()
    _assert_same_law(read_entropy_reward(tmp_path / "tb"), numbers, rel=1e-6)


def test_folders_are_searched_for_their_log(tmp_path):
    (tmp_path / "a" / "runs" / "x").mkdir(parents=True)
    (tmp_path / "a" / "runs" / "y").mkdir()
    for name in ("x", "y"):
        (tmp_path / "a" / "runs" / name / "events.out.tfevents.1.host").write_bytes(b"")
    with pytest.raises(LogFormatError, match=r"2 folders of TensorBoard events \(runs/x, runs/y\)"):
        open_log(tmp_path / "a")
    for n in (10, 200):  # a TRL output folder without events: its newest checkpoint's state
        state = tmp_path / "b" / f"checkpoint-{n}" / "trainer_state.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"log_history": [{"step": n, "entropy": 0.5}]}))
    table = open_log(tmp_path / "b")
    assert table.kind == "trainer_state" and table.path.parent.name == "checkpoint-200"
    (tmp_path / "c").mkdir()
    with pytest.raises(LogFormatError, match="no log in it"):
        open_log(tmp_path / "c")


def test_trainer_state_entries_of_one_step_are_merged(tmp_path):
    """TRL logs a step's training metrics and its evaluation as two log_history entries."""
    history = []
    for step, h, r in _numbers():
        history += [{"step": step, "entropy": h, "reward": 0.1}, {"step": step, "eval_reward": r}]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"log_history": history}))
    series = read_entropy_reward(path)
    assert (series.preset, series.reward_key) == ("trl", "eval_reward")
    _assert_same_law(series, _numbers(), rel=1e-12)


def test_console_lines_after_a_ray_prefix_and_colour_codes(tmp_path):
    lines = ["Training from scratch", "\x1b[36m(TaskRunner pid=811)\x1b[0m starting"]
    for step, h, r in _numbers():
        lines.append(
            f"\x1b[36m(TaskRunner pid=811)\x1b[0m step:{step} - actor/entropy:{h!r} - "
            f"val-core/openai/gsm8k/acc/mean@1:{r!r} - timing_s/gen:1.5"
        )
    path = tmp_path / "verl.log"
    path.write_text("\n".join(lines) + "\n")
    series = read_entropy_reward(path)
    assert (series.kind, series.preset) == ("verl_console", "verl")
    _assert_same_law(series, _numbers(), rel=1e-12)


def test_several_data_sources_are_listed_and_one_can_be_named(tmp_path, capsys):
    path = tmp_path / "verl.jsonl"
    rows = [
        {"step": s, "data": {"actor/entropy": h, **{f"val-core/{d}/acc/mean@4": r for d in "xy"}}}
        for s, h, r in _numbers()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["fit", str(path), "--out", str(tmp_path / "fit")]) == 2
    err = capsys.readouterr().err
    assert "matches several columns ('val-core/x/acc/mean@4', 'val-core/y/acc/mean@4')" in err
    args = ["fit", str(path), "--reward-key", "val-core/y/*", "--out", str(tmp_path / "fit")]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["keys"]["reward"] == "val-core/y/acc/mean@4" and summary["preset"] == "verl"


FIXTURES = Path(__file__).parent / "fixtures"
"""Logs written by verl's and OpenRLHF's own logging code (scripts/fixtures/
make_framework_logs.py names the versions and how to make them again)."""


def _fixture_numbers(framework):
    rows = [
        json.loads(x) for x in (FIXTURES / framework / "numbers.jsonl").read_text().splitlines()
    ]
    return [(r["step"], r["entropy"], r["val"]) for r in rows if r["entropy"] is not None]


@pytest.mark.parametrize(
    ("framework", "log", "kind", "rel"),
    [
        ("verl", "console.log", "verl_console", 1e-12),
        ("verl", "verl_grpo_example_gsm8k/qwen2_7b_function_rm.jsonl", "jsonl", 1e-12),
        ("verl", "tensorboard_log", "tensorboard", 1e-6),
        ("openrlhf", "tensorboard", "tensorboard", 1e-6),
        ("openrlhf", "wandb", "wandb", 1e-6),  # steps in train/ or eval/global_step
    ],
)
def test_framework_logs_give_the_law_of_their_numbers(framework, log, kind, rel):
    series = read_entropy_reward(FIXTURES / framework / log)
    assert (series.kind, series.preset) == (kind, framework)
    expected = {
        "verl": "val-core/openai/gsm8k/reward/mean@4",
        "openrlhf": "eval/eval_gsm8k_pass1",
    }[framework]
    assert series.reward_key == expected
    _assert_same_law(series, _fixture_numbers(framework), rel=rel)


def test_trl_fixture_events_and_trainer_state_give_one_law():
    """TRL's tiny run (scripts/fixtures/make_trl_logs.py): its TensorBoard events (float32),
    its W&B run and its trainer_state.json (float64) hold the same evaluations."""
    events = read_entropy_reward(FIXTURES / "trl" / "runs")
    state = read_entropy_reward(FIXTURES / "trl")
    assert (events.preset, events.kind, state.kind) == ("trl", "tensorboard", "trainer_state")
    assert events.reward_key == "eval/reward" and state.reward_key == "eval_reward"
    numbers = list(zip(state.steps.tolist(), state.entropy, state.reward, strict=True))
    _assert_same_law(events, numbers, rel=1e-6)
    run = read_entropy_reward(FIXTURES / "trl" / "wandb")  # Hugging Face's WandbCallback
    assert (run.kind, run.preset, run.step_key) == ("wandb", "trl", "train/global_step")
    _assert_same_law(run, numbers, rel=1e-12)
