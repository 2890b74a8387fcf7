"""A log as a table: records in order, each a dict of key -> value, and where it came from.

Every reader of the package (text files, TensorBoard, Weights & Biases) produces a `Table`;
keys are then resolved on it (`readers.keys`) whatever the format. Standard library and
numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class LogFormatError(ValueError):
    """A log that cannot be read as asked; the message names the file and, where known, the
    record (a line, a `log_history` entry, a step)."""


class LogIncomplete(LogFormatError):
    """A log that may yet become readable as it grows: it does not exist yet, holds no
    record, or lacks (so far) the keys or the points asked for. `entropy-rl watch` waits on
    it; everyone else reports it as any LogFormatError."""


@dataclass(frozen=True)
class Table:
    """A parsed log.

    Attributes:
        path: The file or directory read (for a directory: the one holding the events).
        kind: The format, as `readers.FORMATS` names it ("jsonl", "csv", "tensorboard", ...).
        columns: Keys in first-seen order.
        rows: (where, record) per record, in order; `where` names the record in an error
            ("line 12", "log_history entry 3", "step 40").
        step_key: The key of each record's step when the format has one of its own (a
            TensorBoard event's step, W&B's `_step`), else None (looked up by name).
    """

    path: Path
    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, dict[str, object]], ...]
    step_key: str | None = None


def first_seen(key_lists: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Union of keys in first-seen order."""
    return tuple(dict.fromkeys(key for keys in key_lists for key in keys))


def make_table(
    path: Path, kind: str, rows: list[tuple[str, dict[str, object]]], step_key: str | None = None
) -> Table:
    """A Table whose columns are the rows' keys in first-seen order."""
    return Table(path, kind, first_seen(r.keys() for _, r in rows), tuple(rows), step_key)


def column(table: Table, key: str) -> np.ndarray:
    """Values of `key` as floats, NaN where a record lacks it; one entry per record.

    Raises:
        LogFormatError: A value present but not a number, or infinite.
    """
    return np.array(
        [number(record.get(key), table.path, where, key) for where, record in table.rows],
        dtype=float,
    )


def number(value: object, path: Path, where: str, key: str) -> float:
    """A logged value as a float: NaN for a missing one (None, NaN, an empty or "nan" text);
    numbers as they are, text parsed (CSV cells, console lines); anything else an error."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return math.nan
        try:
            value = float(text)
        except ValueError as err:
            raise LogFormatError(
                f"{path}: {where}: value of {key!r} is not a number: {text[:40]!r}"
            ) from err
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = json.dumps(value, default=str)[:40]
        raise LogFormatError(f"{path}: {where}: value of {key!r} is not a number: {shown}")
    if math.isinf(value):
        raise LogFormatError(f"{path}: {where}: value of {key!r} is infinite")
    return float(value)
