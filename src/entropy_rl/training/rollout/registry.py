"""The rollout engines by name (`rollout.engine`): each a factory that builds the engine.

A built-in engine is named by its factory's import path ("module:function"), imported only
when the engine is built, so that the run config checks `rollout.engine` against this
registry without importing torch, transformers or vLLM, and this module imports nothing of
the project. Add an engine with `register_engine` (a factory or its import path).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

EngineFactory = Callable[[Any, Any, Path, Any], Any]
"""(config, policy, model_dir, dist) -> a `RolloutEngine` for `policy`, loaded from
`model_dir` (the policy's weights), on the ranks of `dist`."""

_ENGINES: dict[str, EngineFactory | str] = {
    "transformers": "entropy_rl.training.rollout.engine:transformers_engine",
    "vllm": "entropy_rl.training.rollout.vllm:vllm_engine",
}
ROLLOUT_ENGINES: Mapping[str, EngineFactory | str] = MappingProxyType(_ENGINES)
"""Engine factories (or their import paths) by name, read-only; add one with `register_engine`."""
DEFAULT_ENGINE = "transformers"
"""`rollout.engine`'s default."""
SAMPLING_METHODS = ("multinomial", "inverse_cdf")
"""How the transformers engine draws a token from softmax(logits / temperature)
(`rollout.sampling`; `entropy_rl.training.rollout.sampler._Draws`), the default first."""


def register_engine(name: str, factory: EngineFactory | str) -> EngineFactory | str:
    """Add the engine `factory` (or its "module:function" path) under `name` (ValueError if
    the name is taken); returns it."""
    if name in _ENGINES:
        raise ValueError(f"rollout engine {name!r} is already registered")
    _ENGINES[name] = factory
    return factory


def unregister_engine(name: str) -> None:
    """Remove an engine added with `register_engine` (tests)."""
    _ENGINES.pop(name, None)


def _factory(spec: EngineFactory | str) -> EngineFactory:
    if not isinstance(spec, str):
        return spec
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_engine(config, policy, model_dir: Path, dist):
    """The engine `config.rollout.engine` names, for `policy` loaded from `model_dir`."""
    return _factory(_ENGINES[config.rollout.engine])(config, policy, model_dir, dist)
