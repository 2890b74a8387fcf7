"""Prompts and ground-truth answers read from local files; responses graded by math-verify.

Rows come from a JSON-lines (.jsonl / .json) file or a JSON list of objects (read with the
standard library, so errors name the line), or a Parquet (.parquet) file (read with the
`datasets` library). `task.prompt_key` names the prompt: a non-empty string, or a non-empty
list of chat messages `{"role": ..., "content": ...}` (verl's layout). `task.answer_key`
names the ground truth (a string or a number); dots reach into nested fields, so verl's
`reward_model.ground_truth` works as it is. Every row is checked when the task is made,
before any training: the first bad one stops loading with an error naming file and row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.runs.jsonl import JsonlError, jsonl_lines
from entropy_rl.tasks.base import Problem, Task, register_task

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""File suffix -> format (JSON: the standard library; Parquet: `datasets`)."""


class DataError(ConfigError):
    """A data file that cannot be used; the message names the file and, if any, the row."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a .jsonl/.json/.parquet file as a dict (DataError if it cannot be read).

    JSON is parsed with the standard library, so an error names the file's physical line (a
    file of JSON lines) or the entry of a top-level list; Parquet is read with `datasets`.
    An empty file is an error of its own.
    """
    path = Path(path)
    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        known = ", ".join(FORMATS)
        raise DataError(f"{path}: unknown data format {path.suffix!r} (use one of {known})")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    return _json_rows(path) if builder == "json" else _parquet_rows(path)


def _json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, or of one JSON document: a list of objects, or one object."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as text ({err})") from None
    if not text.strip():
        raise DataError(f"{path} is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return _json_lines(path, text)
    if isinstance(document, list):
        for number, row in enumerate(document, start=1):
            if not isinstance(row, dict):
                kind = type(row).__name__
                raise DataError(f"{path}, row {number}: expected a JSON object, got {kind}")
        return document
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected JSON objects, got a {type(document).__name__}")
    return [document]


def _json_lines(path: Path, text: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; an error names the physical line (1-based)."""
    try:
        return [row for _, _, row in jsonl_lines(text, path)]
    except JsonlError as err:
        raise DataError(str(err)) from None


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset("parquet", data_files=str(path), split="train")
    except Exception as err:  # pyarrow and datasets raise many types for malformed files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"{path}: cannot be read as parquet: {first}") from None
    return list(table)


def _field(row: dict[str, Any], key: str) -> Any:
    """The value at dotted `key` in a row; KeyError if a part is missing or None."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            raise KeyError(part)
        value = value[part]
    return value


def _messages(value: list[Any]) -> tuple[tuple[str, str], ...]:
    if not value:
        raise ValueError("an empty list of messages")
    messages = []
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError("a chat message without a string 'content'")
        if not isinstance(message.get("role"), str):
            raise ValueError("a chat message without a string 'role'")
        messages.append((message["role"], message["content"]))
    if not any(content.strip() for _, content in messages):
        raise ValueError("chat messages with empty contents")
    return tuple(messages)


def _answer(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a string or a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be finite, got {value}")
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    return text


def row_problem(row: dict[str, Any], prompt_key: str, answer_key: str) -> Problem:
    """The problem of one row; ValueError saying what is wrong with it."""
    try:
        prompt = _field(row, prompt_key)
    except KeyError:
        raise ValueError(f"no prompt field {prompt_key!r}") from None
    try:
        answer = _answer(_field(row, answer_key))
    except KeyError:
        raise ValueError(f"no answer field {answer_key!r}") from None
    except ValueError as err:
        raise ValueError(f"answer field {answer_key!r} {err}") from None
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(f"prompt field {prompt_key!r} is empty")
        return Problem(prompt=prompt, answer=answer)
    if isinstance(prompt, list):
        try:
            messages = _messages(prompt)
        except ValueError as err:
            raise ValueError(f"prompt field {prompt_key!r} has {err}") from None
        return Problem("\n".join(c for _, c in messages), answer, messages)
    raise ValueError(
        f"prompt field {prompt_key!r} must be a string or a list of chat messages, "
        f"got {type(prompt).__name__}"
    )


def load_problems(path: str | Path, prompt_key: str, answer_key: str) -> list[Problem]:
    """Every row of a data file as a problem; DataError naming file and row (1-based) at the
    first bad one."""
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    problems = []
    for number, row in enumerate(rows, start=1):
        try:
            problems.append(row_problem(row, prompt_key, answer_key))
        except ValueError as err:
            raise DataError(f"{path}, row {number}: {err}") from None
    return problems


@register_task
class DatasetTask(Task):
    """Math prompts from files; reward 1.0 iff math-verify finds the final answer correct."""

    name = "dataset"

    @classmethod
    def check(cls, config: TaskConfig) -> None:
        if not config.train_file:
            raise ConfigError("task.name=dataset needs task.train_file (a .jsonl or .parquet file)")

    def __init__(self, config: TaskConfig, problems: list[Problem] | None = None) -> None:
        """The rows of config.train_file (and val_file); `problems` given instead, they are
        the validation problems, all of them, and nothing is read (`entropy-rl eval --data`).
        Without val_file, min(val_size, rows // 2) rows of train_file, drawn with
        config.seed, are held out for validation and never trained on (`notes` says so)."""
        self.max_response_tokens = config.max_response_tokens
        if problems is not None:
            self._train = self._val = list(problems)
            return
        train = load_problems(config.train_file, config.prompt_key, config.answer_key)
        if config.val_file:
            val = load_problems(config.val_file, config.prompt_key, config.answer_key)
            self._val = val[: config.val_size]
            self._train = train
        else:
            if len(train) < 2:
                raise DataError(f"{config.train_file}: need 2 rows or more to hold some out")
            n_val = min(config.val_size, len(train) // 2)
            order = np.random.default_rng(config.seed).permutation(len(train))  # (N,)
            held_out = set(order[:n_val].tolist())
            self._val = [train[i] for i in sorted(held_out)]
            self._train = [p for i, p in enumerate(train) if i not in held_out]
            self.notes = (
                f"task.val_file not set: holding out {n_val} of {len(train)} rows of "
                f"{Path(config.train_file).name} for validation (task.val_size={config.val_size}"
                f", at most half the rows), training on the other {len(self._train)}",
            )

    def validation_problems(self) -> list[Problem]:
        return list(self._val)

    def sample_problems(self, n: int, rng: np.random.Generator) -> list[Problem]:
        """`n` rows drawn without replacement within a call (with it when n > rows)."""
        indices = rng.choice(len(self._train), size=n, replace=n > len(self._train))  # (n,)
        return [self._train[i] for i in indices]

    def reward(self, problem: Problem, response: str) -> float:
        from entropy_rl.tasks.rewards import math_reward

        return math_reward(response, problem.answer)

    def final_answer(self, response: str) -> str:
        from entropy_rl.tasks.rewards import math_final_answer

        return math_final_answer(response)

    def demonstration(self, problem: Problem, rng: np.random.Generator, noise: float) -> str:
        raise NotImplementedError("dataset tasks train a given model; there is no pretraining")
