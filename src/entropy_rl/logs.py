"""Reading training logs (ours and other tools') into columns of numbers.

Three formats, chosen by suffix (`.csv` -> CSV; `.jsonl`, `.ndjson`, `.json` -> JSON lines,
or a trainer state; anything else by its first non-blank character: `{` -> JSON lines,
else CSV):

- JSON lines: one JSON object per line, blank lines skipped; `null` and NaN count as missing.
- CSV: a header row, then one row per record; empty cells (and `nan`) count as missing.
  Dashboard exports are understood: a column matches key K if its header is K or ends
  with " - K" (Weights & Biases writes "run-name - actor/entropy" next to
  "run-name - actor/entropy__MIN" and "__MAX" columns, which do not match).
- A Hugging Face / TRL `trainer_state.json`: a `.json` file holding one object whose
  `log_history` list holds the records (TRL's GRPOTrainer logs `entropy` and `reward`).

Errors name the file and the physical line (1-based; a CSV header is line 1; in a trainer
state, the entry of `log_history`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.atomic import write_atomic
from entropy_rl.errors import RunError, os_errors_of
from entropy_rl.law import MIN_POINTS
from entropy_rl.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC

ENTROPY_KEYS = ("entropy", ENTROPY_MEAN, "actor/entropy")
"""Keys tried in order for the policy entropy H when none is named."""
REWARD_KEYS = ("reward", VAL_ACC)
"""Keys tried in order for the performance R when none is named."""
STEP_KEYS = ("step", "Step", "_step", "global_step")
"""Keys tried in order for the training step; the record index is used when none is present."""
MAX_LISTED_KEYS = 15
"""Available keys listed in a missing-key error."""

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_CSV_SUFFIXES = (".csv",)
_WANDB_COMPANIONS = ("__MIN", "__MAX")


class LogFormatError(ValueError):
    """A log that cannot be read as asked; the message names the file and, where known, the line."""


@dataclass(frozen=True, eq=False)
class LogSeries:
    """Records of a log that hold both the entropy and the reward, in file order.

    Compared by identity (`eq=False`): it holds arrays.

    Attributes:
        steps: Training step of each record, shape (n,); the record index (0-based, over
            all non-blank records) when the log has no step key.
        entropy: Policy entropy H, shape (n,).
        reward: Performance R, shape (n,).
        entropy_key: Key the entropy was read from.
        reward_key: Key the reward was read from.
        step_key: Key the steps were read from, or None for the record index.
    """

    steps: np.ndarray
    entropy: np.ndarray
    reward: np.ndarray
    entropy_key: str
    reward_key: str
    step_key: str | None


@dataclass(frozen=True)
class _Table:
    """A parsed log: column names in first-seen order, and (line, record) per record."""

    path: Path
    is_csv: bool
    columns: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, object]], ...]


def read_log_columns(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """One float array per key, one entry per record of the log, NaN where a record lacks it.

    Raises:
        LogFormatError: Unreadable or malformed file, a key in no record, or a value present
            but not a number.
    """
    table = _load(Path(path))
    return {key: _column(table, _resolve(table, key)) for key in keys}


def read_entropy_reward(
    path: str | Path,
    entropy_key: str | None = None,
    reward_key: str | None = None,
    step_key: str | None = None,
) -> LogSeries:
    """The (step, H, R) series of a log, keeping records where both H and R are numbers.

    Training logs record validation accuracy every few steps only, so most records lack R;
    they are skipped. A key left as None is the first of ENTROPY_KEYS / REWARD_KEYS /
    STEP_KEYS present in the log (no step key: the record index).

    Raises:
        LogFormatError: As `read_log_columns`, a kept record without a step, or fewer than
            MIN_POINTS records with both H and R.
    """
    table = _load(Path(path))
    e_key, e_col = _choose(table, entropy_key, ENTROPY_KEYS, "entropy")
    r_key, r_col = _choose(table, reward_key, REWARD_KEYS, "reward")
    entropy, reward = _column(table, e_col), _column(table, r_col)
    keep = ~np.isnan(entropy) & ~np.isnan(reward)
    n_both = int(keep.sum())
    if n_both < MIN_POINTS:
        raise LogFormatError(
            f"{table.path}: only {n_both} record(s) have both {e_key!r} "
            f"({int((~np.isnan(entropy)).sum())} records) and {r_key!r} "
            f"({int((~np.isnan(reward)).sum())} records); need at least {MIN_POINTS}"
        )
    s_key = _choose_step(table, step_key)
    steps = _steps(table, s_key, keep)
    return LogSeries(
        steps=steps,
        entropy=entropy[keep],
        reward=reward[keep],
        entropy_key=e_key,
        reward_key=r_key,
        step_key=s_key,
    )


def _load(path: Path) -> _Table:
    """Parse the file at `path` as JSON lines or CSV (see the module docstring)."""
    if not path.exists():
        raise LogFormatError(f"{path}: no such file")
    if path.is_dir():
        raise LogFormatError(f"{path}: is a directory, not a log file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LogFormatError(f"{path}: not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise LogFormatError(f"{path}: cannot read ({err.strerror or err})") from err
    if _is_csv(path, text):
        return _parse_csv(path, text)
    state = _trainer_state_history(path, text)
    if state is not None:
        return state
    return _parse_jsonl(path, text)


def _trainer_state_history(path: Path, text: str) -> _Table | None:
    """The `log_history` of a Hugging Face / TRL `trainer_state.json`, if `text` is one.

    Its records are numbered from 1 in place of line numbers, so an error's "line N" is the
    N-th entry of `log_history`. Returns None when the text is not such a file.
    """
    if path.suffix.lower() != ".json":
        return None
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        return None
    rows: list[tuple[int, dict[str, object]]] = []
    for number, record in enumerate(state["log_history"], start=1):
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise LogFormatError(
                f"{path}: log_history entry {number}: expected an object, got {kind}"
            )
        rows.append((number, record))
    return _Table(path, False, _first_seen(r.keys() for _, r in rows), tuple(rows))


def _is_csv(path: Path, text: str) -> bool:
    """CSV by suffix, JSON lines by suffix, else sniffed from the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return True
    if suffix in _JSONL_SUFFIXES:
        return False
    return not text.lstrip().startswith("{")


def _parse_jsonl(path: Path, text: str) -> _Table:
    """One JSON object per non-blank line."""
    rows: list[tuple[int, dict[str, object]]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise LogFormatError(f"{path}: line {line_no}: invalid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise LogFormatError(f"{path}: line {line_no}: expected a JSON object, got {kind}")
        rows.append((line_no, record))
    return _Table(path, False, _first_seen(r.keys() for _, r in rows), tuple(rows))


def _parse_csv(path: Path, text: str) -> _Table:
    """A header row, then records; blank lines skipped, empty cells left out of the record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, object]]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            if len(cells) != len(header):
                raise LogFormatError(
                    f"{path}: line {reader.line_num}: {len(cells)} cells, header has {len(header)}"
                )
            record = {k: v.strip() for k, v in zip(header, cells, strict=True) if v.strip()}
            rows.append((reader.line_num, record))
    except csv.Error as err:
        raise LogFormatError(f"{path}: line {reader.line_num}: {err}") from err
    if header is None:
        raise LogFormatError(f"{path}: empty CSV file (no header row)")
    return _Table(path, True, tuple(header), tuple(rows))


def _first_seen(key_lists: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Union of keys in first-seen order."""
    return tuple(dict.fromkeys(key for keys in key_lists for key in keys))


def _matches(column: str, key: str) -> bool:
    """True if `column` is `key` or a dashboard export's "<run> - key"."""
    return column == key or column.endswith(f" - {key}")


def _find(table: _Table, key: str) -> str | None:
    """The column holding `key`: an exact match, else the single " - key" column, else None."""
    if key in table.columns:
        return key
    found = [c for c in table.columns if _matches(c, key)]
    if len(found) > 1:
        raise LogFormatError(
            f"{table.path}: key {key!r} matches several columns ({', '.join(found)}); "
            "name one of them exactly"
        )
    return found[0] if found else None


def _resolve(table: _Table, key: str) -> str:
    """The column holding `key`, or LogFormatError listing the available keys."""
    column = _find(table, key)
    if column is None:
        raise LogFormatError(f"{table.path}: no key {key!r} in any record; {_available(table)}")
    return column


def _choose(
    table: _Table, key: str | None, candidates: Sequence[str], what: str
) -> tuple[str, str]:
    """(key, column) for the named key, or for the first candidate found in the log."""
    if key is not None:
        return key, _resolve(table, key)
    for candidate in candidates:
        column = _find(table, candidate)
        if column is not None:
            return candidate, column
    raise LogFormatError(
        f"{table.path}: no {what} key found (tried {', '.join(candidates)}); "
        f"name one explicitly; {_available(table)}"
    )


def _choose_step(table: _Table, key: str | None) -> str | None:
    """The named step key (must exist), else the first of STEP_KEYS found, else None."""
    if key is not None:
        _resolve(table, key)
        return key
    return next((k for k in STEP_KEYS if _find(table, k) is not None), None)


def _available(table: _Table) -> str:
    """'available keys: ...', at most MAX_LISTED_KEYS, without __MIN/__MAX companions."""
    keys = [c for c in table.columns if not c.endswith(_WANDB_COMPANIONS)]
    if not keys:
        return "the log has no keys"
    shown = ", ".join(repr(k) for k in keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"available keys: {shown}" + (f" and {more} more" if more > 0 else "")


def _column(table: _Table, column: str) -> np.ndarray:
    """Values of `column` as floats, NaN where missing; one entry per record."""
    parse = _parse_cell if table.is_csv else _parse_json_value
    return np.array(
        [parse(record.get(column), table.path, line, column) for line, record in table.rows],
        dtype=float,
    )


def _steps(table: _Table, step_key: str | None, keep: np.ndarray) -> np.ndarray:
    """Step of each kept record: from `step_key`, or the record index when it is None."""
    if step_key is None:
        return np.flatnonzero(keep).astype(float)
    steps = _column(table, _resolve(table, step_key))
    missing = keep & np.isnan(steps)
    if missing.any():
        line = table.rows[int(np.flatnonzero(missing)[0])][0]
        raise LogFormatError(
            f"{table.path}: line {line}: record has entropy and reward but no {step_key!r}"
        )
    return steps[keep]


def _parse_json_value(value: object, path: Path, line: int, key: str) -> float:
    """A JSON value as a float: NaN for null (or NaN); numbers as is; anything else an error."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LogFormatError(
            f"{path}: line {line}: value of {key!r} is not a number: {json.dumps(value)[:40]}"
        )
    return _finite_or_nan(float(value), path, line, key)


def _parse_cell(value: object, path: Path, line: int, key: str) -> float:
    """A CSV cell as a float: NaN for an empty or `nan` cell; an error if not a number."""
    if value is None:
        return math.nan
    try:
        number = float(str(value))
    except ValueError as err:
        raise LogFormatError(
            f"{path}: line {line}: value of {key!r} is not a number: {str(value)[:40]!r}"
        ) from err
    return _finite_or_nan(number, path, line, key)


def _finite_or_nan(number: float, path: Path, line: int, key: str) -> float:
    """NaN passes (missing); +/-inf is an error, since no metric of the law is infinite."""
    if math.isinf(number):
        raise LogFormatError(f"{path}: line {line}: value of {key!r} is infinite")
    return number


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
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return rows, f"line {line_no} is not a whole JSON row"
        step = record.get(STEP) if isinstance(record, dict) else None
        if step != len(rows):
            return rows, f"line {line_no} holds step {step!r} where step {len(rows)} belongs"
        rows.append(line)
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
    """All records of a metrics.jsonl written by MetricsWriter."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
