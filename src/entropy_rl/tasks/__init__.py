"""Verifiable tasks, by name (`TASKS`; add one with `register_task`): `make_task(config.task)`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from entropy_rl.config import ConfigError, TaskConfig
from entropy_rl.tasks import dataset, sum3, sum3_trap  # noqa: F401  (they register themselves)
from entropy_rl.tasks.base import TASKS, EmbeddedTask, Problem, Task, register_task
from entropy_rl.tasks.dataset import DataError
from entropy_rl.tasks.rewards import MATH_REWARD, import_reward, is_trl_style, math_reward

RewardFn = Callable[[Problem, str], float]
"""A reward as the trainer calls it: (problem, response text without eos) -> reward."""


def _task_class(config: TaskConfig) -> type[Task]:
    return TASKS.check(config.name, "task.name")


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


def _trl_kwargs(problem: Problem, response: str, answer_name: str) -> dict[str, list[Any]]:
    """What TRL's GRPOTrainer passes a reward function, for a batch of one response: a chat
    prompt as its messages and the completion as one assistant message, else plain text;
    the ground truth as `answer` and as the last part of task.answer_key."""
    if problem.messages:
        prompt: Any = [{"role": role, "content": text} for role, text in problem.messages]
        completion: Any = [{"role": "assistant", "content": response}]
    else:
        prompt, completion = problem.prompt, response
    answer = [problem.answer]
    return {"prompts": [prompt], "completions": [completion], "answer": answer, answer_name: answer}


def _trl(fn: Callable[..., Any], answer_name: str, problem: Problem, response: str) -> Any:
    rewards = fn(**_trl_kwargs(problem, response, answer_name))
    if isinstance(rewards, str) or not isinstance(rewards, Sequence) or len(rewards) != 1:
        raise ValueError(f"a TRL-style reward returned {rewards!r}, not a list of one reward")
    return rewards[0]


def _user_reward(spec: str, fn: Callable[..., Any], answer_key: str) -> RewardFn:
    """`fn` called once per response, as ours or as TRL's (`rewards.is_trl_style`);
    ValueError, before any call, when its signature does not take those arguments."""
    answer_name = answer_key.split(".")[-1]
    if is_trl_style(fn):
        kwargs = _trl_kwargs(Problem("", ""), "", answer_name)
        _check_call(spec, fn, f"TRL-style: called as fn({'=, '.join(kwargs)}=)", **kwargs)
        return functools.partial(_trl, fn, answer_name)
    _check_call(spec, fn, "called as fn(prompt, response, answer)", "", "", "")
    return functools.partial(_user, fn)


def _check_call(spec: str, fn: Callable[..., Any], how: str, *args: Any, **kwargs: Any) -> None:
    """ValueError saying `how` the reward is called when its signature does not take it."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except ValueError:  # no signature to read (some builtins): found out at the first call
        pass
    except TypeError as err:
        raise ValueError(f"reward {spec!r} ({how}): {err}") from None


def make_reward(config: TaskConfig, task: Task) -> RewardFn:
    """The reward `config.reward` names: the task's own, the math reward, or a user function
    by import path, ours or TRL's (see `TaskConfig.reward`). ConfigError if it cannot be had
    or does not take those arguments."""
    if not config.reward:
        return task.reward
    if config.reward == MATH_REWARD:
        return _math
    try:
        return _user_reward(config.reward, import_reward(config.reward), config.answer_key)
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
    "register_task",
]
