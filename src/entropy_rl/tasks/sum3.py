"""Sum of three 2-digit numbers with a one-step scratchpad.

Prompt `23+45+67=`, correct response `068,135`: the partial sum a+b, a comma, then the total
a+b+c, each zero-padded to 3 digits (7 tokens, then eos). The reward checks the total only;
the scratchpad is not rewarded, but the response must have the exact form `ddd,ddd`.
"""

from __future__ import annotations

import re

import numpy as np

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks.base import EmbeddedTask, Problem, register_task

LOW, HIGH = 10, 99
"""Each operand is drawn uniformly from LOW..HIGH inclusive."""
_SPAN = HIGH - LOW + 1
_NUM_PROBLEMS = _SPAN**3
_RESPONSE = re.compile(r"[0-9]{3},[0-9]{3}")


def make_problem(a: int, b: int, c: int) -> Problem:
    """The problem a+b+c with its correct response."""
    return Problem(prompt=f"{a}+{b}+{c}=", answer=f"{a + b:03d},{a + b + c:03d}")


def _index_to_problem(index: int) -> Problem:
    """Problems are numbered 0.._NUM_PROBLEMS-1 by their operands (a, b, c)."""
    a, rest = divmod(int(index), _SPAN * _SPAN)
    b, c = divmod(rest, _SPAN)
    return make_problem(LOW + a, LOW + b, LOW + c)


@register_task
class Sum3Task(EmbeddedTask):
    """`a+b+c=` -> `ddd,ddd` (partial sum, total); reward 1 iff the total is right."""

    name = "sum3"
    alphabet = "0123456789+=,"
    max_prompt_tokens = len("99+99+99=")
    base_model_fields = ("seed", "val_size", "trap_rate")
    """trap_rate (sum3_trap's) stays in sum3's cache key, which covered it before tasks
    declared their fields, so that the base models already made keep their keys; it does not
    change sum3's base model."""
    inert_fields = ("trap_rate",)
    """So sum3_trap at any trap_rate fine-tunes the one sum3 base model (of trap_rate 0.9)."""
    max_response_tokens = len("000,000")

    def __init__(self, config: TaskConfig) -> None:
        if config.val_size > _NUM_PROBLEMS // 2:
            raise ConfigError(
                f"task.val_size must be <= {_NUM_PROBLEMS // 2} for sum3, got {config.val_size}"
            )
        rng = np.random.default_rng(config.seed)
        self._val_indices = rng.choice(_NUM_PROBLEMS, size=config.val_size, replace=False)  # (N,)
        self._val_problems = tuple(_index_to_problem(i) for i in self._val_indices)

    def validation_problems(self) -> list[Problem]:
        return list(self._val_problems)

    def sample_problems(self, n: int, rng: np.random.Generator) -> list[Problem]:
        indices = rng.integers(0, _NUM_PROBLEMS, size=n)  # (n,)
        held_out = np.isin(indices, self._val_indices)  # (n,)
        while held_out.any():
            indices[held_out] = rng.integers(0, _NUM_PROBLEMS, size=int(held_out.sum()))
            held_out = np.isin(indices, self._val_indices)
        return [_index_to_problem(i) for i in indices]

    def final_answer(self, response: str) -> str:
        """The total (after the comma) of a well-formed response; else the whole response."""
        return response.partition(",")[2] if _RESPONSE.fullmatch(response) else response

    def reward(self, problem: Problem, response: str) -> float:
        """`response` excludes eos. 1.0 iff it is `ddd,ddd` and its last three digits are
        the zero-padded total; the partial sum before the comma is not checked."""
        if len(response) != len(problem.answer) or not _RESPONSE.fullmatch(response):
            return 0.0
        total = response.partition(",")[2]
        return 1.0 if total == problem.answer.partition(",")[2] else 0.0
