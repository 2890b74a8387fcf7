"""The one reader of JSON-lines text: a run's metrics.jsonl, the JSONL logs of other tools
(`entropy_rl.analysis.readers`) and JSONL data files (`entropy_rl.tasks.dataset`).

A line is one JSON object; blank lines are skipped; lines are split at "\\n" (a "\\r" before
it is JSON whitespace) and numbered from 1 as an editor shows them. The first line that is
not a JSON object raises `JsonlError`, naming the file and the line, unless it is a
half-written last line (no newline after it yet) and the caller said it may be one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A line of a JSON-lines file that is not a JSON object: `path: line N: problem`."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        super().__init__(f"{path}: line {line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


def jsonl_lines(
    text: str, path: str | Path, *, partial_tail: bool = False
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, line, object) for each non-blank line of `text`, the contents of `path`
    (which only names it in errors). With `partial_tail`, a last line not ended by a newline
    that is not valid JSON is a line still being written: the records end before it."""
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if partial_tail and number == len(lines):
                return
            raise JsonlError(path, number, f"invalid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise JsonlError(path, number, f"expected a JSON object, got {kind}")
        yield number, line, record


def read_jsonl(path: Path, *, partial_tail: bool = False) -> list[dict[str, Any]]:
    """Every object of the JSON-lines file `path` (UTF-8), in order (see `jsonl_lines`)."""
    text = path.read_text(encoding="utf-8")
    return [record for _, _, record in jsonl_lines(text, path, partial_tail=partial_tail)]
