"""Calling reward functions safely: a raising or hanging call gives reward 0 and is counted.

Calls run one after another in a daemon worker thread; the caller waits at most `timeout_s`
for each. When a call hangs, its worker is abandoned (daemon threads never block exit) and a
fresh worker takes the remaining calls.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoredBatch:
    rewards: list[float]
    errors: int  # calls that raised, returned a non-finite or non-number value, or timed out


def _worker(fn: Callable[..., Any], calls: queue.Queue, results: queue.Queue) -> None:
    while True:
        item = calls.get()
        if item is None:
            return
        index, args = item
        try:
            results.put((index, fn(*args), None))
        except Exception as err:  # a user's reward function may raise anything
            results.put((index, None, err))


def _as_reward(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def score_all(fn: Callable[..., Any], args: Sequence[tuple], timeout_s: float) -> ScoredBatch:
    """Call fn(*a) for each a in args; failures and timeouts give reward 0 and are counted."""
    rewards, errors, start = [0.0] * len(args), 0, 0
    while start < len(args):
        calls, results = queue.Queue(), queue.Queue()
        for index in range(start, len(args)):
            calls.put((index, args[index]))
        calls.put(None)
        threading.Thread(target=_worker, args=(fn, calls, results), daemon=True).start()
        next_index = start
        while next_index < len(args):
            try:
                index, value, err = results.get(timeout=timeout_s)
            except queue.Empty:  # call `next_index` hangs: count it, restart after it
                errors += 1
                _drain(calls)
                break
            reward = None if err is not None else _as_reward(value)
            errors += reward is None
            rewards[index] = reward or 0.0
            next_index = index + 1
        start = next_index + 1 if next_index < len(args) else len(args)
    return ScoredBatch(rewards, errors)


def _drain(calls: queue.Queue) -> None:
    """Empty the abandoned worker's queue and leave it a stop signal."""
    while True:
        try:
            calls.get_nowait()
        except queue.Empty:
            break
    calls.put(None)


# ---- reward functions -----------------------------------------------------------------

MATH_REWARD = "math"
"""`task.reward` value of the math reward."""


def math_reward(response: str, ground_truth: str) -> float:
    """1.0 when the response's final answer equals `ground_truth` mathematically, else 0.0.

    The final answer is the last `\\boxed{...}` of the response, else its last number or
    expression (math-verify's LaTeX extraction, boxed first, then its expression
    extraction); the two are compared by `math_verify.verify`. math-verify's own timeouts
    use signals, which work only in the main thread, so they are off: the caller's
    per-call timeout (`score_all`, `train.reward_timeout_s`) bounds the call in any thread.
    """
    from math_verify import parse, verify

    _quiet_math_verify()
    gold = parse(f"${ground_truth}$", parsing_timeout=None)
    if not gold:
        gold = parse(ground_truth, parsing_timeout=None)
    answer = _parse_answer(response)
    if not gold or not answer:
        return 0.0
    return 1.0 if verify(gold, answer, timeout_seconds=None) else 0.0


def _parse_answer(response: str) -> list:
    """math-verify's parse of a response's final answer: the last \\boxed{...}, else its
    last number or expression ([] when there is none)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    extraction = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(response, extraction_config=extraction, parsing_timeout=None)


def math_final_answer(response: str) -> str:
    """The final answer `math_reward` judges, as text (its parsed string), "" when none."""
    _quiet_math_verify()
    parsed = _parse_answer(response)
    return str(parsed[-1]) if parsed else ""


def _quiet_math_verify() -> None:
    """math-verify warns once that its timeouts are off: they are, on purpose (see above)."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)


def import_reward(spec: str) -> Callable[..., Any]:
    """The function `package.module:function` names, imported from the installed packages or
    the working directory (on `sys.path` for this import only); ValueError naming it if it
    cannot be had."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {spec!r} must look like package.module:function")
    try:
        with _working_directory_importable():
            module = importlib.import_module(module_name)
    except Exception as err:  # any error while importing the user's module
        raise ValueError(f"reward {spec!r}: cannot import {module_name}: {err}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"reward {spec!r}: {module_name} has no function {attr!r}")
    return fn


@contextlib.contextmanager
def _working_directory_importable() -> Iterator[None]:
    """The working directory first on `sys.path` for the duration (the `entropy-rl` script,
    unlike `python -m`, does not put it there)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def is_trl_style(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is a reward written for TRL's `GRPOTrainer`, fn(completions, **kwargs) ->
    list[float]: it has a parameter named `completions`. Else it is ours, fn(prompt, response,
    answer) -> float."""
    try:
        return "completions" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return False
