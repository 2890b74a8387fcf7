"""End-to-end tests of `entropy-rl fit`: the first as a subprocess, as a user runs it, the
others through the same `main` in the test's process (a subprocess costs a second of
start-up each)."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "synthetic_grpo_log.jsonl"


def _subprocess(*args):
    return subprocess.run(
        [sys.executable, "-m", "entropy_rl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run(*args):
    """`entropy-rl ARGS` in this process: its exit code, stdout and stderr."""
    from entropy_rl.commands.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse: --help, a usage error
            code = stop.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def _assert_user_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("entropy-rl fit: error: ")
    for word in words:
        assert word in lines[0]


def test_fit_example_prints_table_and_writes_outputs(tmp_path):
    proc = _subprocess("fit", EXAMPLE, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "ceiling" in proc.stdout
    assert "held-out RMSE" in proc.stdout
    png, result = tmp_path / "out" / "entropy_law.png", tmp_path / "out" / "entropy_law.json"
    assert png.read_bytes().startswith(b"\x89PNG")
    summary = json.loads(result.read_text())
    assert summary["keys"] == {"entropy": "entropy/mean", "reward": "val/acc", "step": "step"}
    assert (summary["preset"], summary["format"]) == ("entropy_rl", "jsonl")
    assert summary["fit"]["n"] == 40
    low, high = summary["fit"]["ceiling_ci"]
    assert low < 0.92 < high  # the synthetic log's true ceiling b - a
    assert summary["forecast"]["n_fit"] == 6
    assert str(png) in proc.stdout
    assert str(result) in proc.stdout


def test_fit_json_to_stdout_and_default_out_dir(tmp_path):
    log = Path(shutil.copy(EXAMPLE, tmp_path / "run.jsonl"))
    proc = _run("fit", log, "--json", "--fit-fraction", "0.5", "--ci-level", "0.9")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["fit"]["ci_level"] == 0.9
    assert summary["forecast"]["n_fit"] == 20
    out = tmp_path / "run_fit"
    assert json.loads((out / "entropy_law.json").read_text()) == summary
    assert (out / "entropy_law.png").is_file()


def test_too_few_points_for_forecast_is_reported_not_fatal(tmp_path):
    log = tmp_path / "short.jsonl"
    log.write_text(
        "".join(json.dumps({"entropy": 0.1 * i, "reward": 0.2 * i}) + "\n" for i in range(3))
    )
    proc = _run("fit", log, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "too few points to forecast" in proc.stdout
    assert "unreliable: 3 points < 5" in " ".join(proc.stdout.split())
    saved = json.loads((tmp_path / "out" / "entropy_law.json").read_text())
    assert saved["fit"]["reliable"] is False and saved["fit"]["caveat"] == "3 points < 5"


def test_malformed_line_is_one_line_error(tmp_path):
    log = tmp_path / "broken.jsonl"
    lines = EXAMPLE.read_text().splitlines()
    lines[2] = lines[2][:-5]
    log.write_text("\n".join(lines) + "\n")
    _assert_user_error(_run("fit", log), "broken.jsonl", "line 3")


def test_missing_key_is_user_error(tmp_path):
    proc = _run("fit", EXAMPLE, "--reward-key", "val/nope", "--out", tmp_path)
    _assert_user_error(proc, "val/nope")


def test_nonexistent_file_is_user_error(tmp_path):
    _assert_user_error(_run("fit", tmp_path / "absent.jsonl"), "absent.jsonl")


@pytest.mark.parametrize("option", ["--fit-fraction", "--ci-level"])
def test_bad_level_is_user_error(option, tmp_path):
    proc = _run("fit", EXAMPLE, option, "1.5", "--out", tmp_path)
    _assert_user_error(proc, "must be in (0, 1)")


def test_help():
    proc = _run("fit", "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    assert "--entropy-key" in proc.stdout and "--from {entropy_rl,verl,trl,openrlhf}" in proc.stdout
    assert "val-core/*/acc/mean@*" in proc.stdout  # the presets' keys are listed
    assert "default: 0.15" in proc.stdout
    assert _run("--help").returncode == 0


def test_no_subcommand_is_usage_error():
    assert _subprocess().returncode == 2
