"""The rollout engines by name (`rollout.engine`): each an `Engine`, its factory and what it
offers (the sampling methods, LoRA adapters).

A built-in engine's factory is named by its import path ("module:function"), imported only
when the engine is built, so that checking `rollout.engine` imports neither transformers nor
vLLM. Add an engine with `register_engine` (a factory or its import path).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entropy_rl.registry import Registry

EngineFactory = Callable[[Any, Any, Path, Any], Any]
"""(config, policy, model_dir, dist) -> a `RolloutEngine` for `policy`, loaded from
`model_dir` (the policy's weights), on the ranks of `dist`."""

SAMPLING_METHODS = ("multinomial", "inverse_cdf")
"""How our sampler draws a token from softmax(logits / temperature) (`rollout.sampling`;
`entropy_rl.training.rollout.sampler._Draws`), the default first."""


@dataclass(frozen=True)
class Engine:
    """One rollout engine: how to build it and what it offers."""

    factory: EngineFactory | str
    """The factory, or its "module:function" import path."""
    samplings: tuple[str, ...] = SAMPLING_METHODS[:1]
    """The `rollout.sampling` values it honours (an engine that draws tokens its own way: the
    default only, which then means "the engine's own")."""
    lora: bool = False
    """Whether it samples from a policy with LoRA adapters (`model.lora_rank > 0`)."""

    def build(self, config, policy, model_dir: Path, dist):
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(config, policy, model_dir, dist)


ROLLOUT_ENGINES: Registry[Engine] = Registry("rollout engine")
"""The engines by name, read-only; add one with `register_engine`."""


def register_engine(
    name: str,
    factory: EngineFactory | str,
    samplings: tuple[str, ...] = SAMPLING_METHODS[:1],
    lora: bool = False,
) -> EngineFactory | str:
    """Add the engine `factory` (or its "module:function" path) under `name`, honouring the
    sampling methods `samplings` and, with `lora`, LoRA policies (ValueError if the name is
    taken); returns `factory`."""
    ROLLOUT_ENGINES.add(name, Engine(factory, tuple(samplings), lora))
    return factory


def unregister_engine(name: str) -> None:
    """Remove an engine added with `register_engine` (tests)."""
    ROLLOUT_ENGINES.remove(name)


register_engine(
    "transformers",
    "entropy_rl.training.rollout.engine:transformers_engine",
    samplings=SAMPLING_METHODS,
    lora=True,
)
register_engine("vllm", "entropy_rl.training.rollout.vllm:vllm_engine")


def make_engine(config, policy, model_dir: Path, dist):
    """The engine `config.rollout.engine` names, for `policy` loaded from `model_dir`."""
    return ROLLOUT_ENGINES.check(config.rollout.engine, "rollout.engine").build(
        config, policy, model_dir, dist
    )
