"""The law, live: evaluation rows carry the law fitted on the run so far (`law/*`), a fit that
cannot be made leaves them out, train.stop_at_saturation stops a run with its checkpoint and
summary and a resume goes past the stop only when asked (every rank of a torchrun job at the
same row: tests/test_distributed.py), `entropy-rl watch` stops where the trainer does, and
scripts/saturation_replay.py replays the trainer's rule."""

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropy_rl.analysis import law, live_law
from entropy_rl.analysis.watch import Follower, Options, Rules, watch
from entropy_rl.config import load_config
from entropy_rl.errors import ConfigError
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner

LAW_KEYS = {
    "law/a",
    "law/b",
    "law/ceiling",
    "law/ceiling_ci_lo",
    "law/ceiling_ci_hi",
    "law/r2",
    "law/n",
}
ROOT = Path(__file__).parents[1]


def _rows(points):
    return [{"entropy/mean": h, "val/acc": r} for h, r in points]


def _fold(rows, min_gain=None):
    """live_law over rows in order: each row's keys and verdict."""
    points, out = [], []
    for row in rows:
        points, keys, verdict = live_law.live_law(points, row, min_gain)
        out.append((keys, verdict))
    return out


def _law_keys_of(fit):
    return {
        "law/a": fit.a,
        "law/b": fit.b,
        "law/ceiling": fit.ceiling,
        "law/ceiling_ci_lo": fit.ceiling_ci[0],
        "law/ceiling_ci_hi": fit.ceiling_ci[1],
        "law/r2": fit.r2,
        "law/n": fit.n,
    }


def test_law_keys_need_enough_points_and_equal_the_law_fit():
    rng = np.random.default_rng(0)
    h = np.linspace(1.0, 0.3, 8)
    r = 0.9 - 0.4 * np.exp(h) + rng.normal(0, 0.01, 8)
    rows = _rows(zip(h.tolist(), r.tolist(), strict=True))
    rows.insert(3, {"entropy/mean": 0.7, "val/acc": None})  # a null R is skipped, not fitted
    out = _fold(rows)
    assert [bool(keys) for keys, _ in out] == [False] * 5 + [True] * 4
    for i, (keys, verdict) in enumerate(out[5:], start=6):
        kept = [(x["entropy/mean"], x["val/acc"]) for x in rows[:i] if x["val/acc"] is not None]
        fit = law.fit_entropy_law(*map(np.array, zip(*kept, strict=True)))
        assert keys == pytest.approx(_law_keys_of(fit), rel=1e-12)
        assert verdict is None  # no min_gain: the rule is off


@pytest.mark.parametrize(
    "entropy", [[0.5] * 6, [0.5, 0.4, 0.3, 0.2, 800.0, 0.1]], ids=["constant", "overflow"]
)
def test_a_fit_that_cannot_be_made_leaves_the_keys_out(entropy):
    rows = _rows(zip(entropy, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], strict=True))
    assert _fold(rows, min_gain=1e9) == [({}, None)] * 6


def test_saturation_needs_a_reliable_fit_and_a_gain_below_the_threshold():
    h = np.linspace(1.0, 0.1, 6)
    r = (0.9 - 0.4 * np.exp(h) + np.array([0.01, -0.01] * 3)).tolist()
    fit = law.fit_entropy_law(h, r)
    points = list(zip(h.tolist(), r, strict=True))
    gain = fit.ceiling_ci[1] - max(r)
    assert fit.reliable and gain > 0
    assert live_law.saturation(fit, points, gain) is None  # gain < min_gain is strict
    verdict = live_law.saturation(fit, points, gain * 1.01)
    assert verdict["gain_left"] == pytest.approx(gain)
    assert verdict["reason"].startswith(f"forecast gain left {gain:.3f} < ")
    noisy = [x + (0.3 if i % 2 else -0.3) for i, x in enumerate(r)]
    assert not law.fit_entropy_law(h, noisy).reliable
    assert _fold(_rows(zip(h.tolist(), noisy, strict=True)), min_gain=1e9)[-1][1] is None


@pytest.mark.parametrize("value", ["0", "-0.1", "nan"])
def test_a_bad_min_gain_is_one_config_error(value):
    with pytest.raises(ConfigError, match=r"^train.saturation_min_gain must be"):
        load_config(None, [f"train.saturation_min_gain={value}"])


def _deterministic(run):
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in read_records(run / "metrics.jsonl")
    ]


def test_eval_rows_carry_the_law_fitted_on_the_run_so_far(tmp_path, tiny_config, easy_reward):
    config = tiny_config("eval.every=1", "train.steps=7")
    summary = runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert [bool(LAW_KEYS & r.keys()) for r in records] == [False] * 4 + [True] * 4
    for i in range(4, 8):
        h = [r["entropy/mean"] for r in records[: i + 1]]
        r = [r["val/acc"] for r in records[: i + 1]]
        assert {k: records[i][k] for k in LAW_KEYS} == _law_keys_of(law.fit_entropy_law(h, r))
    end = summary["law"]
    assert records[-1]["law/ceiling_ci_hi"] == end["ceiling_ci"][1]
    assert records[-1]["law/a"] == end["a"] and records[-1]["law/n"] == end["n"] == 8


def test_a_run_whose_fit_fails_trains_on_without_the_keys(
    tmp_path, tiny_config, easy_reward, monkeypatch
):
    def fails(*args, **kwargs):
        raise ValueError("entropy is constant")

    monkeypatch.setattr(live_law, "fit_entropy_law", fails)
    config = tiny_config("eval.every=1", "train.stop_at_saturation=true")
    summary = runner.train(config, tmp_path / "run", show_progress=False)
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 7 and summary["steps"] == 6 and "stopped_early" not in summary
    assert not any(LAW_KEYS & r.keys() for r in records)


@pytest.fixture
def always_reliable(monkeypatch):
    """Every fit of 5 points or more is reliable, whatever its R²: a tiny run's noisy accuracy
    would otherwise keep the stop rule from ever firing."""
    monkeypatch.setattr(law, "RELIABLE_MIN_R2", -math.inf)


def test_stop_at_saturation_stops_checkpoints_and_resumes_past_the_stop_when_asked(
    tmp_path, tiny_config, easy_reward, always_reliable, capsys
):
    common = ["eval.every=1", "train.steps=8", "train.saturation_min_gain=1e9"]
    runner.train(tiny_config(*common), tmp_path / "full", show_progress=False)
    run = tmp_path / "run"
    summary = runner.train(
        tiny_config(*common, "train.stop_at_saturation=true"), run, show_progress=False
    )
    err = capsys.readouterr().err
    assert "stopped early at step 4, saturated: forecast gain left" in err
    stop = summary["stopped_early"]
    assert stop["step"] == 4 and stop["reason"].startswith("forecast gain left")
    assert json.loads((run / "summary.json").read_text())["stopped_early"] == stop
    records = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4] and summary["steps"] == 4
    assert "ppo/clip_frac" in records[3] and "ppo/clip_frac" not in records[4]  # only measures
    assert records[4].keys() >= LAW_KEYS
    assert (run / "checkpoint-000004" / "manifest.json").is_file()
    assert not (run / "checkpoint-000005").exists()
    # entropy-rl watch, on the full run's log, stops at the same row with the same reason
    out, notes = io.StringIO(), []
    options = Options(Rules(min_gain=1e9), exit_on=("saturation",), once=True)
    assert watch([Follower(tmp_path / "full", {})], options, out, notes.append) == 5
    assert out.getvalue().splitlines()[-1].startswith("step 4 ")
    assert notes[-1] == f"saturation at step 4: {stop['reason']}"

    more_steps = (run / "config.yaml").read_text().replace("steps: 8", "steps: 9")
    (run / "config.yaml").write_text(more_steps)
    again = runner.train(None, run, resume=True, show_progress=False)
    assert again == summary and len(read_records(run / "metrics.jsonl")) == 5
    assert "already stopped at saturation at step 4" in capsys.readouterr().err

    edited = more_steps.replace("steps: 9", "steps: 8").replace(
        "stop_at_saturation: true", "stop_at_saturation: false"
    )
    (run / "config.yaml").write_text(edited)
    resumed = runner.train(None, run, resume=True, show_progress=False)
    assert "going on past it" in capsys.readouterr().err
    assert "stopped_early" not in resumed and resumed["steps"] == 8
    assert _deterministic(run) == _deterministic(tmp_path / "full")


def _synthetic_run(path, steps=40, every=2, seed=0):
    """A metrics.jsonl whose entropy falls and whose accuracy follows the law, with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(steps + 1):
        h = 1.2 * math.exp(-step / 10) + 0.02
        row = {"step": step, "entropy/mean": h}
        if step % every == 0 or step == steps:
            row["val/acc"] = 1.2 - 0.3 * math.exp(h) + float(rng.normal(0, 0.005))
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _reference_stop(rows, min_gain):
    """The rule, written out: the first evaluation row before the last with >= 5 points, R²
    >= 0.8 and (upper end of the ceiling's interval) - (best val/acc) < min_gain."""
    evals = [r for r in rows if "val/acc" in r]
    for i, row in enumerate(evals[:-1]):
        if i + 1 < 5:
            continue
        h, r = zip(*[(x["entropy/mean"], x["val/acc"]) for x in evals[: i + 1]], strict=True)
        fit = law.fit_entropy_law(h, r)
        if fit.r2 >= 0.8 and fit.ceiling_ci[1] - max(r) < min_gain:
            return row
    return None


def test_the_replay_script_finds_where_the_rule_stops_a_synthetic_run(tmp_path):
    path = tmp_path / "task" / "model" / "grpo" / "seed0" / "metrics.jsonl"
    rows = _synthetic_run(path)
    stop = _reference_stop(rows, 0.05)
    assert stop is not None and 10 < stop["step"] < 40
    final = rows[-1]["val/acc"]
    script = ROOT / "scripts" / "saturation_replay.py"
    result = subprocess.run(
        [sys.executable, str(script), str(path), "--min-gain", "0.05", "1e-9"],
        capture_output=True,
        text=True,
        check=True,
    )
    saved = round(100 * (40 - stop["step"]) / 40)
    expected = (
        f"| task/model/grpo/seed0 | {stop['step']} | {saved} | {final:.3f} | "
        f"{stop['val/acc']:.3f} | {final - stop['val/acc']:+.3f} |"
    )
    assert expected in result.stdout.splitlines()
    never = f"| task/model/grpo/seed0 | - | 0 | {final:.3f} | {final:.3f} | +0.000 |"
    assert never in result.stdout.splitlines()


def test_the_progress_line_shows_the_ceiling_of_the_row_keys():
    from rich.console import Console

    display = runner._Display(10, 0, Console(quiet=True), enabled=False)
    row = {"reward/mean": 0.5, "entropy/mean": 0.4, "val/acc": 0.6}
    display.update(row)
    fitted = {**row, "law/ceiling": 0.875, "law/n": 5, "law/r2": 0.5}
    display.update(fitted)
    display.update({"reward/mean": 0.5, "entropy/mean": 0.3})  # the ceiling stays shown
    status = display.progress.tasks[0].fields["status"]
    assert status.endswith("val/acc 0.600  ceiling 0.875 (unreliable: R² 0.50 < 0.8)")
