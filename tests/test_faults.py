"""`entropy-rl train` under faults, as a user meets them: a second process on the run
directory, a full disk, a read-only directory, Ctrl-C during start-up, and kill -9 at random
moments. Each ends with one line and a clear exit code, or resumes to the uninterrupted
run's metrics."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from entropy_rl.commands import cli
from entropy_rl.config import load_config
from entropy_rl.runs.checkpoint import find_checkpoint, list_checkpoints
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner

HOLD = """
import sys, time
from pathlib import Path
from entropy_rl.runs.lock import lock_dir
with lock_dir(Path(sys.argv[1]), "run directory"):
    print("held", flush=True)
    time.sleep(60)
"""


def _env():
    """The subprocesses use the test process's thread count, so their floats match it."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _spawn(*args, **kwargs):
    """A child whose Ctrl-C is not ignored (it would be under a shell's background job)."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        text=True,
        **kwargs,
    )


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _deterministic(run):
    rows = read_records(run / "metrics.jsonl")
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_a_second_process_on_a_run_directory_is_told_who_holds_it(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    holder = _spawn("-c", HOLD, str(run), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = cli.main(["train", "--quiet", "--run-dir", str(run), *tiny_overrides])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code == 2 and len(_lines(err)) == 1, err
    assert f"error: run directory {run} is in use by pid {holder.pid} on host " in err
    assert not (run / "config.yaml").exists()


def test_a_full_disk_is_one_line_and_the_last_checkpoint_survives(
    tmp_path, tiny_overrides, capsys, monkeypatch
):
    from safetensors import SafetensorError
    from transformers import modeling_utils

    real_save = modeling_utils.safe_save_file

    def fills_up(tensors, filename, *args, **kwargs):
        if ".checkpoint-000004." in str(filename):  # the disk fills at the second checkpoint
            raise SafetensorError("Error while serializing: I/O error: No space left (os error 28)")
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_save_file", fills_up)
    run = tmp_path / "run"
    code = cli.main(["train", "--quiet", "--run-dir", str(run), *tiny_overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = [x for x in _lines(err) if "error" in x]
    assert line.startswith(f"entropy-rl train: error: {run}/.checkpoint-000004.")
    assert line.endswith(f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}")
    assert "Traceback" not in err
    assert [c.path.name for c in list_checkpoints(run)] == ["checkpoint-000002"]
    assert find_checkpoint(run) == run / "checkpoint-000002"
    monkeypatch.setattr(modeling_utils, "safe_save_file", real_save)  # space freed
    assert cli.main(["train", "--quiet", "--resume", str(run)]) == 0
    assert [r["step"] for r in read_records(run / "metrics.jsonl")] == list(range(7))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_run_directory_is_one_line(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train: {}\n")
    run.chmod(0o555)
    try:
        code = cli.main(["train", "--quiet", "--resume", str(run)])
    finally:
        run.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and len(_lines(err)) == 1
    assert f"{run}/.lock: [Errno {errno.EACCES}]" in err


def test_an_io_error_anywhere_is_one_line_naming_the_path(tmp_path, tiny_overrides, capsys):
    """A read-only filesystem, simulated (the tests may run as root): the metrics file."""
    from entropy_rl.runs import metrics_log as logs

    class ReadOnly(logs.MetricsWriter):
        def write(self, record):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.path))

    run = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "MetricsWriter", ReadOnly)
        code = cli.main(["train", "--quiet", "--run-dir", str(run), *tiny_overrides])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert _lines(err)[-1] == (
        f"entropy-rl train: error: {run}/metrics.jsonl: [Errno {errno.EROFS}] "
        f"{os.strerror(errno.EROFS)}"
    )


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    proc = _spawn("-m", "entropy_rl", "train", "--run-dir", str(run), *tiny_overrides,
                  stderr=subprocess.PIPE)  # fmt: skip
    time.sleep(1.0)  # importing torch and transformers
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # the command's own line, or the program's when the Ctrl-C came before the command line
    # was read (`-m entropy_rl` still importing it: a loaded machine is slower than 1 s)
    assert _lines(err) in (["entropy-rl train: interrupted"], ["entropy-rl: interrupted"])


KILLS = 3
"""kill -9 moments per run of the test, drawn from a seeded generator."""


def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_metrics(
    tmp_path, tiny_overrides
):
    args = [*tiny_overrides, "train.steps=10", "loss.entropy_coef=0.01"]  # every step learns
    runner.train(load_config(None, args), tmp_path / "reference", show_progress=False)
    run, rng = tmp_path / "run", random.Random(13)
    command = ["-m", "entropy_rl", "train", "--quiet", "--run-dir", str(run), *args]
    for _ in range(KILLS):
        proc = _spawn(*command, stderr=subprocess.PIPE)
        proc.stderr.readline()  # started: the base model found, or the resume's first line
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        command = ["-m", "entropy_rl", "train", "--quiet", "--resume", str(run)]
    runner.train(None, run, resume=True, show_progress=False)
    assert _deterministic(run) == _deterministic(tmp_path / "reference")


def test_ctrl_c_before_the_command_line_is_read_names_no_command(monkeypatch, capsys):
    from entropy_rl.commands import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["train"]) == 130
    assert _lines(capsys.readouterr().err) == ["entropy-rl: interrupted"]
