"""Rollouts: the batch of sampled responses, the engines that sample them, and the
teacher-forced pass that scores them again.

Each name below is imported from its module on first use, so that the engine registry
(`entropy_rl.training.rollout.registry`, which the run config checks `rollout.engine` against) is
read without importing transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RolloutEngine": "engine",
    "TransformersEngine": "engine",
    "policy_sampler": "engine",
    "ROLLOUT_ENGINES": "registry",
    "make_engine": "registry",
    "register_engine": "registry",
    "Rollout": "sampler",
    "HeadInputs": "sampler",
    "float32_output_embeddings": "sampler",
    "head_parameters": "sampler",
    "hidden_at": "sampler",
    "logits_rows": "sampler",
    "output_head": "sampler",
    "left_pad": "sampler",
    "logits_post_processing": "sampler",
    "response_logits": "sampler",
    "response_scores": "sampler",
    "sample": "sampler",
}
"""Public name -> the module of `entropy_rl.training.rollout` that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'entropy_rl.training.rollout' has no attribute {name!r}")
    return getattr(importlib.import_module(f"entropy_rl.training.rollout.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
