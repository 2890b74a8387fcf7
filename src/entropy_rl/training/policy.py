"""The policy as the trainer sees it, `Policy`: the model side (a causal LM, its tokenizer,
what the update calls, how prompts become tokens, where forward passes run); and the
`RolloutWorker`, the run side of sampling: the engine that samples the policy's responses,
the task whose problems they answer and the reward that scores them. Both are built once,
the worker from the policy; the process group is passed where it is used."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from entropy_rl.tasks import Problem, RewardFn, Task
from entropy_rl.tasks.rewards import ScoredBatch, score_all
from entropy_rl.training.rollout import Rollout, RolloutEngine, policy_sampler


@dataclass(frozen=True)
class Policy:
    """`model` is the causal LM; `trainable` what the update calls (the model, or its DDP
    wrapper; None: the model)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    chat_template: bool = False
    """Apply the tokenizer's chat template to prompts (only if it has one)."""
    autocast: bool = False
    """bfloat16 autocast of forward passes (CUDA only)."""
    trainable: torch.nn.Module | None = None

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


@dataclass(frozen=True)
class RolloutWorker:
    """Scored responses of a policy to a task's problems."""

    engine: RolloutEngine
    """What samples the responses (`entropy_rl.training.engines`; in one process without a
    run config, `rollout.policy_sampler(policy)`)."""
    task: Task
    reward: RewardFn
    """Scores a response (`tasks.make_reward`: the task's own, or the user's)."""

    def sample(
        self,
        policy: Policy,
        problems: list[Problem],
        generator: torch.Generator | None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> tuple[Rollout, list[str]]:
        """One response of `policy` per problem: the rollout tensors and the decoded texts."""
        rollout = self.engine.generate(
            [policy.encode_prompt(p) for p in problems],
            self.task.max_response_tokens + 1,
            policy.stop_ids(),
            policy.tokenizer.pad_token_id,
            generator,
            temperature,
            greedy,
        )
        texts = [
            policy.decode_response(ids, mask)
            for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True)
        ]
        return rollout, texts

    def score(self, problems: list[Problem], texts: list[str], timeout_s: float) -> ScoredBatch:
        """The reward of each (problem, response), each call bounded by `timeout_s`."""
        return score_all(self.reward, list(zip(problems, texts, strict=True)), timeout_s)


def local_worker(policy: Policy, task: Task, reward: RewardFn | None = None) -> RolloutWorker:
    """The worker of one process without a run config: our sampler on `policy`'s model, by
    multinomial draws, on `task`, scored by `reward` (None: the task's own)."""
    return RolloutWorker(policy_sampler(policy), task, reward or task.reward)
