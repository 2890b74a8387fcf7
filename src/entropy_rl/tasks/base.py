"""What every verifiable task provides: prompts from a seed, a reward by parsing, demonstrations."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from entropy_rl.registry import Registry

if TYPE_CHECKING:
    from entropy_rl.config import TaskConfig

DIGITS = "0123456789"


@dataclass(frozen=True)
class Problem:
    """One task instance: the prompt text and a correct response (end-of-sequence excluded).

    `messages`, when not empty, is the prompt as chat messages (role, content); `prompt` is
    then their contents joined by newlines, for rewards and tokenizers without a chat template.
    """

    prompt: str
    answer: str
    messages: tuple[tuple[str, str], ...] = ()


class Task(abc.ABC):
    """A verifiable task: what every task has.

    The caller decodes the generated tokens and strips eos (and anything after it) before
    `reward`. A task the embedded model is pretrained on is an `EmbeddedTask`.
    """

    name: str
    """Registry name of the task."""
    max_response_tokens: int
    """Most tokens a response may take, eos excluded (a generated task: a correct response's
    length)."""
    notes: tuple[str, ...] = ()
    """Lines a run prints when it starts: what the task chose that the config did not say."""
    needs_model: bool = True
    """Whether a run needs the user's model (`model.path`): every task but an `EmbeddedTask`,
    which has an embedded base model pretrained on it."""

    @classmethod  # noqa: B027 (a hook: nothing to check by default)
    def check(cls, config: TaskConfig) -> None:
        """Raise ConfigError, naming the field, for settings of `config` this task cannot run
        with; called before the task is built (no data read, no prompts generated)."""

    @classmethod
    def val_prompts(cls, config: TaskConfig) -> int | None:
        """How many validation problems the task has for `config`, when the config alone says
        (reports state each accuracy's standard error with it); None: it depends on data."""
        return None

    @abc.abstractmethod
    def validation_problems(self) -> list[Problem]:
        """The held-out validation problems: the same for the same task config."""

    @abc.abstractmethod
    def sample_problems(self, n: int, rng: np.random.Generator) -> list[Problem]:
        """`n` training problems drawn with `rng`; never one of the validation prompts."""

    @abc.abstractmethod
    def reward(self, problem: Problem, response: str) -> float:
        """1.0 for a correct response, 0.0 otherwise (a malformed response is wrong)."""

    def final_answer(self, response: str) -> str:
        """The part of a response its reward judges, to count distinct answers (`entropy-rl
        eval`'s answer entropy); by default the whole response, stripped."""
        return response.strip()


TaskClass = TypeVar("TaskClass", bound=type[Task])
TASKS: Registry[type[Task]] = Registry("task")
"""The task classes by `Task.name` (`task.name`), read-only; add one with `register_task`."""


def register_task(cls: TaskClass) -> TaskClass:
    """Class decorator: add the task `cls` to `TASKS` under `cls.name` (ValueError if taken)."""
    TASKS.add(cls.name, cls)
    return cls


class EmbeddedTask(Task):
    """A task the embedded model learns from scratch (its base model, `entropy_rl.training.pretrain`):
    a character alphabet for its tokenizer, a bound on prompt length, demonstrations, and the
    task fields that shape its base model (part of the base model's cache key).

    Responses are strings over `alphabet` without the end-of-sequence token.
    """

    needs_model = False
    alphabet: str
    """Every character that can appear in a prompt or a response, in tokenizer order."""
    max_prompt_tokens: int
    """Length of the longest prompt in tokens (one per character; bos excluded)."""
    base_task: str | None = None
    """Registry name of the task whose base model this task's base model is fine-tuned from,
    on this task's demonstrations (`pretrain.finetune_steps`); None: trained from scratch."""
    base_model_fields: tuple[str, ...] = ("seed", "val_size")
    """The `TaskConfig` fields that shape the base model, besides `name`: the base-model
    cache key (`entropy_rl.tasks.base_models`) covers them and no other task field."""
    inert_fields: tuple[str, ...] = ()
    """Fields of `base_model_fields` that do not in fact change this task's base model (kept
    in the key so that existing keys stay valid): when a fine-tuned task asks for this task's
    base model as its parent, they take their defaults, so that the parent is shared."""

    @classmethod
    def val_prompts(cls, config: TaskConfig) -> int | None:
        return config.val_size  # generated from the seed, val_size of them

    def demonstration(self, problem: Problem, rng: np.random.Generator, noise: float) -> str:
        """A correct response whose digits are each replaced, with probability `noise`, by a
        uniformly random digit (which may equal the original). Other characters are kept."""
        return noisy_digits(problem.answer, rng, noise)


def noisy_digits(text: str, rng: np.random.Generator, noise: float) -> str:
    """`text` with each digit replaced by a uniform random digit with probability `noise`.

    Draws the same amount of randomness for any `noise`, so streams stay aligned across runs.
    """
    flips = rng.random(len(text)) < noise  # (L,)
    digits = rng.integers(0, 10, size=len(text))  # (L,)
    return "".join(
        DIGITS[d] if flip and c in DIGITS else c
        for c, flip, d in zip(text, flips, digits, strict=True)
    )
