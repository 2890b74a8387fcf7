"""Rollout engines: what samples the responses of a step, behind one small interface.

- `TransformersEngine` (default, `rollout.engine=transformers`): our KV-cache sampler on
  the training model itself, so there are no weights to sync; explicit generators make
  runs reproducible; under FSDP every rank runs the same number of decoding steps.
- `VLLMEngine` (`rollout.engine=vllm`, module `entropy_rl.training.rollout.vllm`): a vLLM engine
  beside the training model on the same GPU, imported only when chosen; the trainer's
  weights are loaded into it after every step.
The engines are built by name from `entropy_rl.training.engines`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from entropy_rl.training.engines import SAMPLING_METHODS
from entropy_rl.training.rollout.batch import Rollout
from entropy_rl.training.rollout.sampler import sample


class RolloutEngine(Protocol):
    """Samples one response per prompt and keeps its weights equal to the trainer's."""

    def generate(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stop_ids: Sequence[int],
        pad_id: int,
        generator: torch.Generator | None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> Rollout:
        """Prompt token lists -> a Rollout (left-padded prompts, right-padded responses whose
        mask covers the sampled tokens, the stop token included)."""
        ...

    def sync_weights(self, module: torch.nn.Module, dist) -> None:
        """Load the weights of the training `module` (called by every rank after a step)."""
        ...


class TransformersEngine:
    """The KV-cache sampler on the training model (shares its weights: syncing is a no-op)."""

    def __init__(
        self,
        model: torch.nn.Module,
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        all_done: Callable[[bool], bool] | None = None,
        sampling: str = SAMPLING_METHODS[0],
    ) -> None:
        self.model = model
        self.autocast = autocast or contextlib.nullcontext
        self.all_done = all_done
        self.sampling = sampling

    def generate(
        self, prompts, max_new_tokens, stop_ids, pad_id, generator, temperature=1.0, greedy=False
    ):
        with self.autocast():
            return sample(
                self.model,
                prompts,
                max_new_tokens=max_new_tokens,
                eos_id=list(stop_ids),
                pad_id=pad_id,
                generator=generator,
                temperature=temperature,
                greedy=greedy,
                all_done=self.all_done,
                sampling=self.sampling,
            )

    def sync_weights(self, module: torch.nn.Module, dist) -> None:
        return None


def policy_sampler(policy, sampling: str = SAMPLING_METHODS[0], dist=None) -> TransformersEngine:
    """Our sampler on `policy`'s own model, drawing tokens by `sampling`; under torchrun
    (`dist`, a `training.distributed.Dist`, active) every rank decodes in lock-step."""
    all_done = dist.all_done if dist is not None and dist.active else None
    return TransformersEngine(policy.model, policy.forward_context, all_done, sampling)


def transformers_engine(config, policy, model_dir: Path, dist) -> TransformersEngine:
    """The `transformers` engine of the registry (`rollout.engine=transformers`)."""
    return policy_sampler(policy, config.rollout.sampling, dist)
