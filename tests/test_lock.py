"""The directory lock: one holder at a time, named to the others; a dead holder's lock is free."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from entropy_rl.runs.lock import LockHeld, lock_dir, locked, stale_note

HOLD = """
import sys, time
from pathlib import Path
from entropy_rl.runs.lock import locked
with locked(Path(sys.argv[1]), "thing"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path):
    """A process (no torch: it starts in a blink) that holds the lock on `path` until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    path = tmp_path / ".lock"
    proc = _holder(path)
    try:
        with pytest.raises(LockHeld) as caught, locked(path, "run directory x"):
            pass
    finally:
        proc.kill()
        proc.wait()
    message = str(caught.value)
    assert message.startswith(f"run directory x is in use by pid {proc.pid} on host ")
    assert socket.gethostname() in message and "(started 20" in message and str(path) in message


def test_the_lock_of_a_killed_process_is_taken_over_and_reported(tmp_path):
    path = tmp_path / ".lock"
    proc = _holder(path)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to release: the kernel drops the flock
    proc.wait()
    with locked(path, "thing") as stale:
        assert stale["pid"] == proc.pid
        assert json.loads(path.read_text())["pid"] == os.getpid()
        note = stale_note(stale, tmp_path)
    assert note.startswith(f"took over the lock of {tmp_path} from pid {proc.pid} on host ")
    assert path.read_text() == ""  # released cleanly: emptied, never deleted
    with locked(path, "thing") as stale:
        assert stale is None


def test_the_lock_is_exclusive_within_one_process_too_and_released_on_error(tmp_path):
    held = pytest.raises(LockHeld, match=f"pid {os.getpid()}")
    with lock_dir(tmp_path, "run directory"), held, locked(tmp_path / ".lock", "x"):
        pass
    with pytest.raises(KeyError), lock_dir(tmp_path, "run directory"):
        raise KeyError("boom")
    with lock_dir(tmp_path, "run directory") as stale:
        assert stale is None  # an error inside is a clean release, not a dead holder


def test_an_unwritable_lock_file_is_an_os_error_naming_it(tmp_path, monkeypatch):
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("entropy_rl.runs.lock.os.open", refuse)
    with pytest.raises(OSError) as caught, locked(tmp_path / ".lock", "x"):
        pass
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(tmp_path / ".lock")


def test_demo_experiment_and_a_base_model_being_made_are_locked(tmp_path, tiny_config):
    from rich.console import Console

    from entropy_rl.commands.demo import run_demo
    from entropy_rl.commands.experiment import Experiment, run_experiment
    from entropy_rl.training.pretrain import base_model_dir, pretrain

    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    proc = _holder(tmp_path / "demo" / ".lock")
    try:
        with pytest.raises(LockHeld, match=rf"^demo directory {tmp_path / 'demo'} is in use"):
            run_demo(tmp_path / "demo", ("grpo",), [], console)
    finally:
        proc.kill()
        proc.wait()
    proc = _holder(tmp_path / "exp" / ".lock")
    try:
        with pytest.raises(LockHeld, match=rf"^experiment directory {tmp_path / 'exp'} is in"):
            run_experiment(Experiment("x", tmp_path, ()), tmp_path / "exp", jobs=1, threads=1,
                           console=console)  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    config = tiny_config("pretrain.seed=12345")  # a base model nobody has made
    target = base_model_dir(config)
    proc = _holder(target.with_name(f".{target.name}.lock"))
    try:
        with pytest.raises(LockHeld, match=rf"^base model {target} is in use by pid {proc.pid}"):
            pretrain(config)
    finally:
        proc.kill()
        proc.wait()
    assert not target.exists()
