"""Exclusive locks on the directories a command writes: a run, a demo or experiment
directory, a base model being made.

The lock is `fcntl.flock` on a lock file, which holds the holder's pid, host and start time
as JSON. The kernel releases a flock when its process dies however it dies (kill -9
included), so a lock left by a dead process is simply free: the next process takes it and
is told whose it was (the file still names the dead holder, since only a clean release
empties it). The lock file is never deleted: deleting it would let two processes lock two
different files of one name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from entropy_rl.errors import RunError
from entropy_rl.runs.layout import LOCK_FILE

_READ_TRIES = 20
"""A holder writes its details right after locking: wait up to 20 x 50 ms to read them."""


class LockHeld(RunError):
    """Another live process holds the lock; the message names it."""


def holder_text(info: dict) -> str:
    """'pid 123 on host h (started 2026-11-30 02:21:05)' from a lock file's content."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (started {started})"


def _read(fd: int) -> dict | None:
    """The holder details in the lock file: None when empty, {} when unreadable."""
    text = os.pread(fd, 4096, 0)
    if not text.strip():
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _write(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.fsync(fd)


def _acquire(fd: int, path: Path, what: str) -> dict | None:
    """Lock `fd` or raise LockHeld; returns what a dead holder left in the file, if anything."""
    for _ in range(_READ_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return _read(fd)
        except BlockingIOError:
            holder = _read(fd)
        if holder:
            break
        time.sleep(0.05)
    who = holder_text(holder) if holder else "another process"
    raise LockHeld(f"{what} is in use by {who}; wait for it to end (lock file {path})")


@contextlib.contextmanager
def locked(path: Path, what: str) -> Iterator[dict | None]:
    """Hold an exclusive lock on the lock file `path` (created, with its folder, if missing).

    `what` names the locked thing in the LockHeld message, e.g. "run directory runs/x".
    Yields the details of a previous holder that died holding it (None after a clean
    release), for the caller to report the takeover. The file is emptied on release.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        stale = _acquire(fd, path, what)
    except BaseException:
        os.close(fd)
        raise
    try:
        _write(fd)
        yield stale
    finally:
        with contextlib.suppress(OSError):  # never mask an error on the way out
            os.ftruncate(fd, 0)
        os.close(fd)


def lock_dir(directory: Path, what: str) -> contextlib.AbstractContextManager[dict | None]:
    """The lock of a run, demo or experiment directory: `locked` on directory/LOCK_FILE."""
    return locked(directory / LOCK_FILE, f"{what} {directory}")


def stale_note(stale: dict | None, directory: Path) -> str | None:
    """The line to print when a lock was taken over from a dead holder, else None."""
    if stale is None:
        return None
    who = holder_text(stale) if stale else "a process"
    return f"took over the lock of {directory} from {who}, which ended without releasing it"
