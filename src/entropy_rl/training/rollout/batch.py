"""The batch every rollout engine returns, `Rollout`: prompts left-padded and responses
right-padded, so that response position t is column t."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rollout:
    """A batch of prompts and sampled responses. B responses, P prompt columns, T response columns."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 for prompt tokens
    response_ids: torch.Tensor  # (B, T) right-padded after eos
    response_mask: torch.Tensor  # (B, T) 1 for sampled tokens, eos included

    def select(self, index: torch.Tensor | slice) -> Rollout:
        """The rollout restricted to the responses `index` (a slice or an index tensor)."""
        return Rollout(
            self.prompt_ids[index],
            self.prompt_mask[index],
            self.response_ids[index],
            self.response_mask[index],
        )


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists to (B, P) ids and mask, padded on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def positions_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, L) of left-padded rows: 0 at each row's first real token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)
