"""Verifiable tasks, by name: `make_task(config.task)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks.base import Problem, Task
from entropy_rl.tasks.sum3 import Sum3Task
from entropy_rl.tasks.sum3_trap import Sum3TrapTask


def _registry() -> Mapping[str, Callable[[TaskConfig], Task]]:
    return MappingProxyType({"sum3": Sum3Task, "sum3_trap": Sum3TrapTask})


TASKS: Mapping[str, Callable[[TaskConfig], Task]] = _registry()
"""Task constructors by name (read-only); add a task in `_registry`."""


def make_task(config: TaskConfig) -> Task:
    """The task named `config.name`; ConfigError listing the known names otherwise."""
    try:
        factory = TASKS[config.name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise ConfigError(f"task.name must be one of {known}, got {config.name!r}") from None
    return factory(config)


__all__ = ["TASKS", "Problem", "Task", "make_task"]
