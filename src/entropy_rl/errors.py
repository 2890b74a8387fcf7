"""Errors the command line reports in one line, without a traceback."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report a process SIGINT ended."""


class ConfigError(ValueError):
    """A user's configuration mistake; the message names the field (`entropy_rl.config`)."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. repeated non-finite losses); the message says why."""


class RunError(RuntimeError):
    """A run directory cannot be used as asked: another process holds it, no checkpoint of it
    verifies, a metrics row is damaged, its config.yaml was edited in a way a resume cannot
    apply. The message names the file and what to do; the command exits with code 2."""


def os_error_line(err: OSError) -> str:
    """'PATH: [Errno 28] No space left on device' (both paths of a failed rename)."""
    if err.errno is None or err.strerror is None:
        return " ".join(str(err).split()) or type(err).__name__
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    where = " -> ".join(paths) or "(no path)"
    return f"{where}: [Errno {err.errno}] {err.strerror}"


def with_path(err: OSError, path: object) -> OSError:
    """`err` with `path` as its file name when it names none (a write on an open handle)."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def as_os_error(err: Exception, path: object) -> OSError | None:
    """The OSError that a library's own exception reports in words, or None: safetensors
    writes "... No space left on device (os error 28)" in a SafetensorError."""
    if isinstance(err, OSError):
        return with_path(err, path)
    found = _OS_ERROR.search(str(err))
    if found is None:
        return None
    number = int(found.group(1))
    return OSError(number, os.strerror(number), str(path))


@contextlib.contextmanager
def os_errors_of(path: object) -> Iterator[None]:
    """Inside it, an OSError that names no file, or a library's error that reports an OS error
    only in words, is raised as an OSError naming `path`; anything else passes unchanged."""
    try:
        yield
    except Exception as err:
        translated = as_os_error(err, path)
        if translated is None or translated is err:
            raise
        raise translated from None
