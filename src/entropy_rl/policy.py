"""The policy as the trainer sees it: a causal LM, its tokenizer, and the task's text format."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from entropy_rl.rollout import Rollout, sample
from entropy_rl.tasks import Problem, Task


@dataclass(frozen=True)
class Policy:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    task: Task

    def encode_prompt(self, problem: Problem) -> list[int]:
        ids = self.tokenizer.encode(problem.prompt, add_special_tokens=False)
        return [self.tokenizer.bos_token_id, *ids]

    def decode_response(self, ids: torch.Tensor, mask: torch.Tensor) -> str:
        """The response text before eos; other special tokens stay visible (and so wrong)."""
        tokens = ids[mask.bool()].tolist()
        eos = self.tokenizer.eos_token_id
        if eos in tokens:
            tokens = tokens[: tokens.index(eos)]
        return self.tokenizer.decode(tokens, skip_special_tokens=False)

    def sample(
        self,
        problems: list[Problem],
        generator: torch.Generator | None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> tuple[Rollout, list[str]]:
        """One response per problem: the rollout tensors and the decoded texts."""
        rollout = sample(
            self.model,
            [self.encode_prompt(p) for p in problems],
            max_new_tokens=self.task.max_response_tokens + 1,
            eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id,
            generator=generator,
            temperature=temperature,
            greedy=greedy,
        )
        texts = [
            self.decode_response(ids, mask)
            for ids, mask in zip(rollout.response_ids, rollout.response_mask, strict=True)
        ]
        return rollout, texts
