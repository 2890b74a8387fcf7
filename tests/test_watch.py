"""`entropy-rl watch`: a log another process appends to, the alarms and their exit codes, the
law's scalars in TensorBoard, and the saturation rule shared with the trainer."""

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropy_rl.analysis import live_law
from entropy_rl.analysis.readers import read_entropy_reward
from entropy_rl.analysis.watch import EXIT_CODES, Follower, Options, Rules, watch
from entropy_rl.commands.cli import main

A, B = 0.5, 1.45  # the law's a and b behind the synthetic runs


def _run(kind: str, n: int = 30, every: int = 5, seed: int = 0) -> list[dict]:
    """Metrics rows of a synthetic run, an evaluation every `every` steps: `collapsing`
    (entropy 0.7 -> ~0.01, accuracy to the law's ceiling), `healthy` (entropy held near 0.5
    by an intervention, accuracy still rising) or `exploding` (entropy climbing from 0.5)."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(n * every):
        t = step / (n * every)
        h = {
            "collapsing": 0.01 + 0.69 * math.exp(-6 * t),
            "healthy": 0.45 + 0.25 * math.exp(-6 * t),
            "exploding": 0.5 + 1.5 * t**2,
        }[kind]
        row = {"step": step, "entropy/mean": h + rng.normal(0, 0.003)}
        if step % every == 0:
            row["val/acc"] = -A * math.exp(h) + B + rng.normal(0, 0.004)
        rows.append(row)
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _watch(paths, **options):
    out, notes = io.StringIO(), []
    followers = [Follower(p, {}) for p in paths]
    code = watch(followers, Options(**options), out, notes.append, sleep=lambda s: None)
    return code, out.getvalue().splitlines(), notes


def test_collapse_fires_on_a_collapsing_run_and_not_on_a_healthy_one(tmp_path):
    collapsing = _write(tmp_path / "grpo.jsonl", _run("collapsing"))
    healthy = _write(tmp_path / "clip_cov.jsonl", _run("healthy"))
    code, lines, notes = _watch([collapsing, healthy], once=True)
    assert code == 0 and len(lines) == 60  # every evaluation of both logs, one line each
    grpo = [x for x in lines if x.startswith(str(collapsing))]
    assert "COLLAPSE" in grpo[-1] and not any("COLLAPSE" in x for x in grpo[:5])
    assert not any("COLLAPSE" in x or "EXPLOSION" in x for x in lines if str(healthy) in x)
    assert any(n.startswith(f"{collapsing}: collapse at step") for n in notes)
    code, lines, _ = _watch([collapsing], once=True, exit_on=("collapse",))
    assert code == EXIT_CODES["collapse"] == 3
    assert lines[-1].endswith("COLLAPSE") or "COLLAPSE" in lines[-1]
    assert len(lines) < 30  # stopped at the first evaluation where it fired


def test_explosion_fires_on_rising_entropy(tmp_path):
    log = _write(tmp_path / "run.jsonl", _run("exploding"))
    code, lines, notes = _watch([log], once=True, exit_on=("explosion",))
    assert code == EXIT_CODES["explosion"] == 4
    assert "EXPLOSION" in lines[-1] and not any("EXPLOSION" in x for x in lines[:-1])
    assert any("explosion at step" in n for n in notes)


def test_alarm_rules_state_their_reason():
    fit = live_law.fit_so_far([(h, -A * math.exp(h) + B) for h in (0.7, 0.5, 0.3, 0.1, 0.02)])
    points = [(h, -A * math.exp(h) + B) for h in (0.7, 0.5, 0.3, 0.1, 0.02)]
    assert "97% of the start entropy 0.700 spent" in live_law.collapse(fit, points)
    assert live_law.collapse(fit, points, spent=0.99) is None
    assert live_law.collapse(None, points) is None  # no reliable fit, no alarm
    rising = [(0.8, 0), (0.3, 0), (0.31, 0), (0.33, 0), (0.36, 0), (0.4, 0), (0.42, 0)]
    assert "rose at each of the last 5" in live_law.explosion(rising)
    assert live_law.explosion(rising[:-1]) is None  # 4 rises only
    assert live_law.explosion([*rising[:-2], (0.37, 0), (0.375, 0)]) is None  # by 0.075 < 0.08
    assert "over 1.1 x the start" in live_law.explosion([(0.5, 0), (0.4, 0), (0.56, 0)])


WRITER = """
import json, math, sys, time
path = sys.argv[1]
with open(path, "a") as f:
    for i in range(30):
        h = 0.01 + 0.69 * math.exp(-6 * i / 30)
        line = json.dumps({"step": 5 * i, "entropy/mean": h, "val/acc": -0.5 * math.exp(h) + 1.45})
        f.write(line[:10]); f.flush(); time.sleep(0.02)  # half a line, then the rest
        f.write(line[10:] + "\\n"); f.flush(); time.sleep(0.02)
"""


def test_watch_follows_a_log_another_process_appends_to(tmp_path):
    log = tmp_path / "live" / "metrics.jsonl"
    log.parent.mkdir()
    cmd = [sys.executable, "-m", "entropy_rl", "watch", str(log), "--interval", "0.05"]
    watcher = subprocess.Popen(
        [*cmd, "--exit-on", "collapse", "--idle-timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = watcher.stderr.readline()  # watch is running, and waits for the log
    assert first.startswith("waiting:") and "no such file" in first
    writer = subprocess.run([sys.executable, "-c", WRITER, str(log)], timeout=60)
    out, err = watcher.communicate(timeout=60)
    assert writer.returncode == 0
    assert watcher.returncode == 3, err
    lines = out.splitlines()
    assert [int(x.split()[1]) for x in lines] == list(range(0, 5 * len(lines), 5))
    assert "COLLAPSE" in lines[-1] and len(lines) < 30
    assert "collapse at step" in err and "Traceback" not in err


def test_json_lines_and_the_law_in_tensorboard(tmp_path, capsys):
    log = _write(tmp_path / "run.jsonl", _run("collapsing", n=8))
    board = tmp_path / "board"
    assert main(["watch", str(log), "--once", "--json", "--tensorboard", str(board)]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["evaluations"] for r in records] == list(range(1, 9))
    assert records[3]["law"] is None and records[4]["law"]["n"] == 5
    series = read_entropy_reward(log)
    fit = live_law.fit_so_far(list(zip(series.entropy, series.reward, strict=True)))
    assert records[-1]["law"]["ceiling"] == pytest.approx(fit.ceiling)
    assert records[-1]["status"] == ["ok"] or set(records[-1]["status"]) <= set(EXIT_CODES)
    logged = read_entropy_reward(board / log.name, "law/ceiling", "law/a")
    assert logged.steps.tolist() == [r["step"] for r in records[4:]]
    np.testing.assert_allclose(logged.entropy, [r["law"]["ceiling"] for r in records[4:]], 1e-6)


def test_new_tensorboard_events_are_picked_up(tmp_path):
    from tensorboard.summary import Writer

    rows = [r for r in _run("collapsing", n=10) if "val/acc" in r]
    writer = Writer(str(tmp_path / "tb"))
    follower, rules = Follower(tmp_path / "tb", {}), Rules()
    for part in (rows[:4], rows[4:]):
        for row in part:
            for key in ("entropy/mean", "val/acc"):
                writer.add_scalar(key, row[key], row["step"])
        writer.flush()
        new = follower.poll(rules)
        assert [e.step for e in new] == [r["step"] for r in part]
    writer.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--exit-on", "collapse,boom"], "--exit-on takes collapse,explosion,saturation"),
        (["--collapse-spent", "1.5"], "--collapse-spent must be in (0, 1]"),
        (["--interval", "nan"], "--interval must be a finite number >= 0"),
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, capsys, args, words):
    assert main(["watch", str(tmp_path / "x.jsonl"), "--once", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_malformed_log_is_one_line_exit_2(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    log.write_text('{"step": 0, "entropy/mean": 0.5, "val/acc": 0.1}\n{oops\n{"step": 1}\n')
    assert main(["watch", str(log), "--once"]) == 2
    assert "line 2: invalid JSON" in capsys.readouterr().err


def test_idle_timeout_stops_following(tmp_path):
    log = _write(tmp_path / "run.jsonl", _run("healthy", n=3))
    ticks = iter(range(0, 10_000, 10))
    out, notes = io.StringIO(), []
    options = Options(interval=10.0, idle_timeout=25.0)
    follower = Follower(log, {})
    code = watch([follower], options, out, notes.append, lambda s: None, lambda: next(ticks))
    assert code == 0 and len(out.getvalue().splitlines()) == 3
    assert notes[-1] == "no new evaluation for 25 s: stopping"


def test_each_log_has_its_own_tensorboard_folder(tmp_path):
    from entropy_rl.analysis.watch import _board_names

    paths = [tmp_path / "a" / "grpo" / "metrics.jsonl", tmp_path / "b" / "grpo", tmp_path / "x.log"]
    assert _board_names(paths) == ["grpo", "grpo-2", "x.log"]


DEMO_RUNS = Path(__file__).resolve().parents[1] / "docs" / "results" / "demo"


def test_watch_stops_where_the_trainers_rule_stops_on_the_committed_demo_runs():
    """The demo's three runs (docs/results/demo), replayed at several thresholds: watch
    stops at the row where train.stop_at_saturation's rule does (saturation_replay.replay
    calls the trainer's function), and never where it does not, but at the last row (the
    trainer does not decide on its last row, which only measures)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from saturation_replay import replay

    stops = 0
    for log in sorted(DEMO_RUNS.glob("*.jsonl")):
        records = [json.loads(x) for x in log.read_text().splitlines()]
        last = max(r["step"] for r in records if "val/acc" in r)
        for gain in (0.01, 0.1, 0.15, 0.2, 0.3, 0.4):
            expected = replay(records, gain)["stop_step"]
            options = Options(Rules(min_gain=gain), exit_on=("saturation",), once=True)
            out = io.StringIO()
            code = watch([Follower(log, {})], options, out, lambda _: None)
            step = int(out.getvalue().splitlines()[-1].split()[1])
            if expected is None:
                assert code == 0 or step == last, (log.name, gain)
            else:
                assert (code, step) == (EXIT_CODES["saturation"], expected), (log.name, gain)
                stops += 1
    assert stops >= 6  # the rule fires on every run at the loosest thresholds
