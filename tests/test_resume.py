"""Resuming a damaged run directory: a checkpoint that fails its checksums or would run code
is skipped for an older one, a damaged metrics row is recomputed or refused by line, an edit
of config.yaml is applied or refused, a finished run is left alone. Every resume that goes
on must end with the metrics of the uninterrupted run."""

import json
import shutil

import pytest

from conftest import TINY, _first_digit_even, train_killed_at
from entropy_rl.config import load_config
from entropy_rl.errors import RunError
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.tasks.sum3 import Sum3Task
from entropy_rl.training import runner

METRICS = "metrics.jsonl"


def _deterministic(run):
    return [
        {k: v for k, v in r.items() if not k.startswith("time/")}
        for r in read_records(run / METRICS)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, base_cache):
    """A finished run and the same run killed during step 5: checkpoints 2 and 4, rows 0-4."""
    root = tmp_path_factory.mktemp("resume")
    overrides = [*TINY, f"pretrain.cache_dir={base_cache}", "loss.mode=clip_cov"]
    config = load_config(None, [*overrides, "loss.clip_cov_ratio=0.2"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sum3Task, "reward", _first_digit_even)
        runner.train(config, root / "full", show_progress=False)
        train_killed_at(config, root / "partial", 6)
    names = sorted(p.name for p in (root / "partial").glob("checkpoint-*"))
    assert names == ["checkpoint-000002", "checkpoint-000004"]
    return root


@pytest.fixture
def run(runs, tmp_path, easy_reward):
    """A copy of the killed run to damage and resume."""
    return shutil.copytree(runs / "partial", tmp_path / "run")


def _resume(run, capsys):
    """The resumed run's summary, and what it printed: notices (stderr), then its summary
    table (stdout)."""
    summary = runner.train(None, run, resume=True, show_progress=False)
    out, err = capsys.readouterr()
    return summary, err + out


def _flip(path, offset=-64):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _files(run):
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_older_one(run, runs, capsys):
    weights = run / "checkpoint-000004" / "model" / "model.safetensors"
    _flip(weights)
    summary, err = _resume(run, capsys)
    assert f"skipping checkpoint-000004: {weights}: checksum mismatch" in err
    assert "at step 2 from checkpoint-000002" in err
    assert _deterministic(run) == _deterministic(runs / "full")
    assert summary["rows"] == 7 and "metrics rows used" in err


def test_a_state_that_would_run_code_is_skipped_and_never_run(run, runs, capsys):
    import hashlib

    import torch

    newest = run / "checkpoint-000004"
    marker = run.parent / "pwned"
    state = torch.load(newest / "trainer_state.pt", weights_only=True)
    state["extra"] = _Payload(marker)
    torch.save(state, newest / "trainer_state.pt")
    manifest = json.loads((newest / "manifest.json").read_text())
    data = (newest / "trainer_state.pt").read_bytes()  # a forged manifest: checksums match
    entry = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest["files"]["trainer_state.pt"] = entry
    (newest / "manifest.json").write_text(json.dumps(manifest))
    _, err = _resume(run, capsys)
    assert "trainer_state.pt: holds more than plain data, refused" in err
    assert not marker.exists()
    assert _deterministic(run) == _deterministic(runs / "full")


class _Payload:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_damaged_row_after_an_older_checkpoint_is_recomputed(run, runs, capsys):
    lines = (run / METRICS).read_text().splitlines(keepends=True)
    lines[3] = lines[3][:25] + "\n"  # step 3: between checkpoints 2 and 4
    (run / METRICS).write_text("".join(lines))
    _, err = _resume(run, capsys)
    assert f"{run / METRICS} line 4 is not a whole JSON row" in err
    assert "at step 2 from checkpoint-000002" in err
    assert _deterministic(run) == _deterministic(runs / "full")


def test_a_damaged_row_before_every_checkpoint_is_refused_by_line(run, capsys):
    lines = (run / METRICS).read_text().splitlines(keepends=True)
    lines[1] = lines[2]  # step 1 lost, step 2 twice: as two writers made it
    (run / METRICS).write_text("".join(lines))
    before = _files(run)
    with pytest.raises(RunError, match=r"metrics.jsonl line 2 holds step 2 where step 1 belongs"):
        runner.train(None, run, resume=True, show_progress=False)
    assert _files(run) == before  # nothing written, and the lock released


def test_no_checkpoint_that_verifies_is_one_error_naming_the_files(run):
    for name in ("checkpoint-000002", "checkpoint-000004"):
        _flip(run / name / "model" / "model.safetensors")
    with pytest.raises(RunError) as caught:
        runner.train(None, run, resume=True, show_progress=False)
    message = str(caught.value)
    assert message.startswith(f"no checkpoint of {run} verifies: ")
    assert "checkpoint-000004/model/model.safetensors: checksum mismatch" in message
    assert "checkpoint-000002/model/model.safetensors: checksum mismatch" in message


def test_an_applicable_config_edit_is_applied_and_said(run, runs, capsys):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 5.0e-05", "lr: 0.001"))
    _, err = _resume(run, capsys)
    assert "config.yaml was edited since checkpoint-000004: applying train.lr 5e-05 -> 0.001" in err
    resumed, full = _deterministic(run), _deterministic(runs / "full")
    assert resumed[:4] == full[:4] and resumed[4:] != full[4:]  # row 4 on: the new lr


def test_an_edit_that_would_mix_two_experiments_is_refused(run):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("mode: clip_cov", "mode: kl_cov"))
    with pytest.raises(RunError, match=r"\(loss.mode: 'clip_cov' -> 'kl_cov'\); a resume applies"):
        runner.train(None, run, resume=True, show_progress=False)


def test_a_finished_run_is_left_as_it_is(runs, tmp_path, capsys):
    run = shutil.copytree(runs / "full", tmp_path / "run")
    before = _files(run)
    summary, err = _resume(run, capsys)
    assert "is finished (summary.json is written): nothing to resume, nothing changed" in err
    assert summary == json.loads((run / "summary.json").read_text())
    assert _files(run) == before
