"""Our own run's metrics.jsonl: writing it (one row per step, flushed), checking which rows
of it a resume can keep, and reading it back. Other tools' logs, and ours as one log among
them, are read by `entropy_rl.analysis.readers`."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.errors import RunError, os_errors_of
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.jsonl import JsonlError, jsonl_lines, read_jsonl
from entropy_rl.runs.metric_keys import STEP

# ---- writing ---------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """NaN/inf become null (JSON has neither); lists are converted element-wise."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def whole_rows(path: Path) -> tuple[list[str], str | None]:
    """The rows at the start of a run's metrics.jsonl that are whole and in order (row i is
    a JSON object with "step": i), and what is wrong with the first line after them (None
    when there is none). Blank lines are skipped; a missing file has no rows."""
    if not path.exists():
        return [], None
    rows: list[str] = []
    try:
        for line_no, line, record in jsonl_lines(path.read_text(errors="replace"), path):
            step = record.get(STEP)
            if step != len(rows):
                return rows, f"line {line_no} holds step {step!r} where step {len(rows)} belongs"
            rows.append(line)
    except JsonlError as err:
        return rows, f"line {err.line} is not a whole JSON row"
    return rows, None


class MetricsWriter:
    """Appends one JSON object per step to a JSONL file, flushed after every line.

    `keep_before`: the first rows, steps 0 .. keep_before - 1, are kept and everything after
    them dropped (a resumed run recomputes it), rewriting the file atomically. They must be
    whole (`whole_rows`): RunError otherwise, as a resume that kept a damaged or missing row
    would leave a silent gap. An OSError names the file.
    """

    def __init__(self, path: Path, keep_before: int = 0) -> None:
        self.path = path
        rows, problem = whole_rows(path) if keep_before else ([], None)
        if len(rows) < keep_before:
            raise RunError(f"{path}: {problem or 'rows missing'}, before step {keep_before}")
        write_atomic(path, "".join(line + "\n" for line in rows[:keep_before]))
        with os_errors_of(path):
            self._handle = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _json_safe(v) for k, v in record.items()})
        with os_errors_of(self.path):
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with os_errors_of(self.path):
            self._handle.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(OSError):  # a failed close must not mask the error raised
            self.close()


def record_columns(records: Sequence[dict[str, Any]], *keys: str) -> np.ndarray:
    """(n, len(keys)) floats from the records that hold every key with a non-null value."""
    rows = [[r[k] for k in keys] for r in records if all(r.get(k) is not None for k in keys)]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(keys))


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl written by MetricsWriter (`JsonlError`, naming the
    file and the line, for one that is not a JSON object)."""
    return read_jsonl(path)
