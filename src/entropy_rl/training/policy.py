"""The policy as the trainer sees it: a causal LM, its tokenizer, the task and its reward,
how prompts become tokens, and where forward passes run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from entropy_rl.tasks import Problem, RewardFn, Task
from entropy_rl.training.distributed import Dist
from entropy_rl.training.rollout import Rollout, RolloutEngine, policy_sampler


@dataclass(frozen=True)
class Policy:
    """`model` is the causal LM; `trainable` what the update calls (the model, or its DDP
    wrapper); `engine` samples responses (None: our sampler on `model`)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    task: Task
    reward: RewardFn | None = None
    """None: the task's own reward."""
    chat_template: bool = False
    """Apply the tokenizer's chat template to prompts (only if it has one)."""
    autocast: bool = False
    """bfloat16 autocast of forward passes (CUDA only)."""
    trainable: torch.nn.Module | None = None
    engine: RolloutEngine | None = None
    """What samples responses; None: our sampler on `model` (`rollout.policy_sampler`)."""
    dist: Dist = field(default_factory=Dist)
    """This process's place among the ranks of a torchrun job (one process by default)."""

    @property
    def all_done(self) -> Callable[[bool], bool] | None:
        """Lock-step sampling across ranks (sharded models need it); None in one process."""
        return self.dist.all_done if self.dist.active else None

    @property
    def reward_fn(self) -> RewardFn:
        return self.reward or self.task.reward

    @property
    def module(self) -> torch.nn.Module:
        """What gradient-carrying forward passes call."""
        return self.trainable if self.trainable is not None else self.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_context(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA when enabled, else nothing."""
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def stop_ids(self) -> list[int]:
        """Token ids that end a response: eos, and the model's generation eos ids."""
        ids = {self.tokenizer.eos_token_id}
        generation = getattr(self.model, "generation_config", None)
        extra = getattr(generation, "eos_token_id", None)
        ids |= set(extra if isinstance(extra, list) else [extra])
        return sorted(i for i in ids if i is not None)

    def encode_prompt(self, problem: Problem) -> list[int]:
        """The chat template's tokens when enabled and present, else bos (if any) + text."""
        if self.chat_template and self.tokenizer.chat_template:
            messages = problem.messages or (("user", problem.prompt),)
            chat = [{"role": role, "content": content} for role, content in messages]
            text = self.tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer.encode(text, add_special_tokens=False)
        ids = self.tokenizer.encode(problem.prompt, add_special_tokens=False)
        bos = self.tokenizer.bos_token_id
        return ids if bos is None else [bos, *ids]

    def decode_response(self, ids: torch.Tensor, mask: torch.Tensor) -> str:
        """The response text before the first stop token; other special tokens stay visible."""
        tokens = ids[mask.bool()].tolist()
        for stop in self.stop_ids():
            if stop in tokens:
                tokens = tokens[: tokens.index(stop)]
        return self.tokenizer.decode(tokens, skip_special_tokens=False)

    def sample(
        self,
        problems: list[Problem],
        generator: torch.Generator | None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> tuple[Rollout, list[str]]:
        """One response per problem: the rollout tensors and the decoded texts."""
        engine = self.engine or policy_sampler(self)
        rollout = engine.generate(
            [self.encode_prompt(p) for p in problems],
            self.task.max_response_tokens + 1,
            self.stop_ids(),
            self.tokenizer.pad_token_id,
            generator,
            temperature,
            greedy,
        )
        texts = [
            self.decode_response(ids, mask)
            for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True)
        ]
        return rollout, texts
