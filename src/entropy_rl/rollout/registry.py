"""The rollout engines by name (`rollout.engine`): each a factory that builds the engine.

Imports nothing heavy (an engine's module is imported by its factory, when chosen), so that
the run config can check `rollout.engine` against this registry without importing
transformers or vLLM. Add an engine with `register_engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

EngineFactory = Callable[[Any, Any, Path, Any], Any]
"""(config, policy, model_dir, dist) -> a `RolloutEngine` for `policy`, loaded from
`model_dir` (the policy's weights), on the ranks of `dist`."""


def _transformers(config, policy, model_dir: Path, dist):
    """Our KV-cache sampler on the training model itself (no weights to sync)."""
    from entropy_rl.rollout.engine import TransformersEngine

    return TransformersEngine(policy.model, policy.forward_context, policy.all_done)


def _vllm(config, policy, model_dir: Path, dist):
    """A vLLM engine beside the training model (the `vllm` extra, imported only here)."""
    from entropy_rl.rollout.vllm import VLLMEngine

    return VLLMEngine(model_dir, config, dist)


_ENGINES: dict[str, EngineFactory] = {"transformers": _transformers, "vllm": _vllm}
ROLLOUT_ENGINES: Mapping[str, EngineFactory] = MappingProxyType(_ENGINES)
"""Engine factories by name (read-only); add one with `register_engine`."""
DEFAULT_ENGINE = "transformers"
"""`rollout.engine`'s default, and the engine of a policy built without one."""


def register_engine(name: str, factory: EngineFactory) -> EngineFactory:
    """Add the engine `factory` under `name` (ValueError if the name is taken); returns it."""
    if name in _ENGINES:
        raise ValueError(f"rollout engine {name!r} is already registered")
    _ENGINES[name] = factory
    return factory


def unregister_engine(name: str) -> None:
    """Remove an engine added with `register_engine` (tests)."""
    _ENGINES.pop(name, None)


def make_engine(config, policy, model_dir: Path, dist):
    """The engine `config.rollout.engine` names, for `policy` loaded from `model_dir`."""
    return _ENGINES[config.rollout.engine](config, policy, model_dir, dist)
