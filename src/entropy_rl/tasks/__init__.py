"""Verifiable tasks, by name: `make_task(config.task)`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.rewards import MATH_REWARD, import_reward, math_reward
from entropy_rl.tasks.base import EmbeddedTask, Problem, Task
from entropy_rl.tasks.dataset import DataError, DatasetTask
from entropy_rl.tasks.sum3 import Sum3Task
from entropy_rl.tasks.sum3_trap import Sum3TrapTask

RewardFn = Callable[[Problem, str], float]
"""A reward as the trainer calls it: (problem, response text without eos) -> reward."""


def _registry() -> Mapping[str, Callable[[TaskConfig], Task]]:
    return MappingProxyType({"sum3": Sum3Task, "sum3_trap": Sum3TrapTask, "dataset": DatasetTask})


TASKS: Mapping[str, Callable[[TaskConfig], Task]] = _registry()
"""Task constructors by name (read-only); add a task in `_registry`."""


def _task_class(config: TaskConfig) -> Callable[[TaskConfig], Task]:
    try:
        return TASKS[config.name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise ConfigError(f"task.name must be one of {known}, got {config.name!r}") from None


def make_task(config: TaskConfig) -> Task:
    """The task named `config.name`; ConfigError listing the known names otherwise."""
    return _task_class(config)(config)


def base_task_of(config: TaskConfig) -> str | None:
    """The `Task.base_task` of the task named `config.name`, without building the task (no
    prompts generated, no data files read); ConfigError as `make_task` for an unknown name."""
    return getattr(_task_class(config), "base_task", None)


def base_model_fields(config: TaskConfig) -> tuple[str, ...]:
    """The task fields that shape the base model of the task named `config.name`, as the task
    declares them (`EmbeddedTask.base_model_fields`), without building the task. ConfigError
    for an unknown name or a task that the embedded model is not pretrained on."""
    cls = _task_class(config)
    if not (isinstance(cls, type) and issubclass(cls, EmbeddedTask)):
        raise ConfigError(
            f"task.name={config.name} has no embedded base model: give a model of your own "
            "(--model / model.path)"
        )
    return cls.base_model_fields


def inert_fields(config: TaskConfig) -> tuple[str, ...]:
    """The `EmbeddedTask.inert_fields` of the task named `config.name` (() for a task without
    an embedded base model), without building the task."""
    return getattr(_task_class(config), "inert_fields", ())


def _math(problem: Problem, response: str) -> float:
    return math_reward(response, problem.answer)


def _user(fn: Callable[[str, str, str], float], problem: Problem, response: str) -> float:
    return fn(problem.prompt, response, problem.answer)


def make_reward(config: TaskConfig, task: Task) -> RewardFn:
    """The reward `config.reward` names: the task's own, the math reward, or a user function
    by import path, called as fn(prompt, response, answer). ConfigError if it cannot be had."""
    if not config.reward:
        return task.reward
    if config.reward == MATH_REWARD:
        return _math
    try:
        return functools.partial(_user, import_reward(config.reward))
    except ValueError as err:
        raise ConfigError(f"task.reward: {err}") from None


__all__ = [
    "TASKS",
    "DataError",
    "EmbeddedTask",
    "Problem",
    "RewardFn",
    "Task",
    "base_model_fields",
    "base_task_of",
    "inert_fields",
    "make_reward",
    "make_task",
]
