"""Logs that are text files: JSON lines, CSV, a trainer state, console output.

- JSON lines: one JSON object per line, blank lines skipped; `null` and NaN count as
  missing. verl's file logger writes {"step": s, "data": {...}} per line: the data is read
  as the record, with its step. With `partial_tail`, a last line not yet ended by a newline
  that does not parse is left for later (a log being written), not an error.
- CSV: a header row, then one row per record; empty cells (and `nan`) count as missing.
  Weights & Biases exports write "run-name - actor/entropy" columns next to "__MIN" and
  "__MAX" companions; `readers.keys` matches the former.
- A Hugging Face / TRL `trainer_state.json`: one JSON object whose `log_history` list holds
  the records (TRL's GRPOTrainer logs `entropy`, `reward`, `eval_reward`, ...).
- Console text of verl's console logger: lines `step:N - key:value - key:value ...`,
  possibly after a prefix (Ray's "(TaskRunner pid=...)", colour codes); other lines are
  skipped. A value printed inside its type (verl prints numpy's `np.float64(0.08)`) is the
  number inside.

Errors name the file and the physical line (1-based; a CSV header is line 1; in a trainer
state, the entry of `log_history`). Standard library only.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from entropy_rl.analysis.readers.table import LogFormatError, LogIncomplete, Table, make_table
from entropy_rl.runs.jsonl import JsonlError, jsonl_lines

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CONSOLE_LINE = re.compile(r"(?:^|\s)step:(\d+)((?: - [^\s:][^:]*:\S+)+)\s*$")
"""A line of verl's console logger, from its `step:N` on: `step:3 - actor/entropy:0.51 - ...`."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WRAPPED = re.compile(r"^(?:np|numpy|torch)?\.?\w+\(([^()]*)\)$")
"""A number printed inside its type, as verl's console prints numpy values: np.float64(0.5)."""


def read_text_log(path: Path, partial_tail: bool = False) -> Table:
    """The table of a text log, its format chosen by suffix, else by content: a first
    non-blank character `{` is JSON lines, a line of verl's console logger makes console
    text, anything else is CSV."""
    text = _read(path)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return parse_csv(path, text)
    if suffix == ".json":
        state = trainer_state(path, text)
        if state is not None:
            return state
    if suffix in JSONL_SUFFIXES or text.lstrip().startswith("{"):
        return parse_jsonl(path, text, partial_tail)
    if any(CONSOLE_LINE.search(_ANSI.sub("", line)) for line in text.splitlines()):
        return parse_console(path, text)
    return parse_csv(path, text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LogFormatError(f"{path}: not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise LogFormatError(f"{path}: cannot read ({err.strerror or err})") from err


def trainer_state(path: Path, text: str) -> Table | None:
    """The `log_history` of a Hugging Face / TRL `trainer_state.json`, or None when `text` is
    not such a file."""
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        return None
    rows: list[tuple[str, dict[str, object]]] = []
    for number, record in enumerate(state["log_history"], start=1):
        where = f"log_history entry {number}"
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise LogFormatError(f"{path}: {where}: expected an object, got {kind}")
        rows.append((where, record))
    return make_table(path, "trainer_state", rows)


def parse_jsonl(path: Path, text: str, partial_tail: bool = False) -> Table:
    """One JSON object per non-blank line (verl's {"step", "data"} records unwrapped)."""
    try:
        rows = [
            (f"line {line_no}", _unwrap_verl(record))
            for line_no, _, record in jsonl_lines(text, path, partial_tail=partial_tail)
        ]
    except JsonlError as err:
        raise LogFormatError(str(err)) from err
    return make_table(path, "jsonl", rows)


def _unwrap_verl(record: dict[str, object]) -> dict[str, object]:
    """verl's file logger record {"step": s, "data": {...}} as {"step": s, **data}."""
    data = record.get("data")
    if set(record) == {"step", "data"} and isinstance(data, dict):
        return {"step": record["step"], **data}
    return record


def parse_csv(path: Path, text: str) -> Table:
    """A header row, then records; blank lines skipped, empty cells left out of the record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[str, dict[str, object]]] = []
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
            rows.append((f"line {reader.line_num}", record))
    except csv.Error as err:
        raise LogFormatError(f"{path}: line {reader.line_num}: {err}") from err
    if header is None:
        raise LogIncomplete(f"{path}: empty CSV file (no header row)")
    return Table(path, "csv", tuple(header), tuple(rows))


def parse_console(path: Path, text: str) -> Table:
    """The `step:N - key:value - ...` lines of verl's console logger, other lines skipped.
    A value that is not a number stays text, and is an error only if its key is used."""
    rows: list[tuple[str, dict[str, object]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        match = CONSOLE_LINE.search(_ANSI.sub("", line))
        if match is None:
            continue
        record: dict[str, object] = {"step": match.group(1)}
        for pair in match.group(2).split(" - ")[1:]:
            key, _, value = pair.rpartition(":")
            wrapped = _WRAPPED.match(value)
            record[key] = wrapped.group(1) if wrapped else value
        rows.append((f"line {line_no}", record))
    return make_table(path, "verl_console", rows)
