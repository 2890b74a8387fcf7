"""Sampling responses with the KV cache (the transformers backend), and scoring them again.

The sampler is a plain loop over a Hugging Face causal LM with its KV cache, rather than
`model.generate`, for two reasons: every random draw comes from an explicit
`torch.Generator` (so runs are reproducible and resumable without touching global RNG
state), and a toy model spends most of `generate`'s time in per-token bookkeeping.
Prompts are left-padded and responses right-padded, so response position t is column t.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache


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


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)


def _next_token(logits, temperature, greedy, generator):
    if greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    prompts: list[list[int]],
    max_new_tokens: int,
    eos_id: int | Sequence[int],
    pad_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    greedy: bool = False,
    all_done: Callable[[bool], bool] | None = None,
) -> Rollout:
    """Sample one response per prompt (token lists, bos included) with the KV cache on.

    A response ends at the first of the `eos_id` tokens (included in its mask). `all_done`
    maps this process's "every response ended" to "every rank's did" (sharded models must
    run the same number of forward passes on every rank); None: this process alone.
    """
    device = next(model.parameters()).device
    stops = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=device)
    prompt_ids, prompt_mask = (t.to(device) for t in left_pad(prompts, pad_id))
    batch = prompt_ids.shape[0]
    cache = DynamicCache()
    attention = prompt_mask
    positions = _positions(attention)
    inputs = prompt_ids
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, valid = [], []
    for _ in range(max_new_tokens):
        out = model(
            input_ids=inputs,
            attention_mask=attention,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        nxt = _next_token(out.logits[:, -1], temperature, greedy, generator)  # (B,)
        valid.append(~done)
        tokens.append(torch.where(done, pad_id, nxt))
        done = done | torch.isin(nxt, stops)
        finished = bool(done.all())
        if all_done(finished) if all_done is not None else finished:
            break
        inputs = nxt.unsqueeze(-1)  # (B, 1)
        positions = positions[:, -1:] + 1
        attention = torch.cat([attention, torch.ones_like(inputs)], dim=-1)
    response_ids = torch.stack(tokens, dim=1)  # (B, T)
    response_mask = torch.stack(valid, dim=1).long()  # (B, T)
    return Rollout(prompt_ids, prompt_mask, response_ids, response_mask)


def response_logits(model: torch.nn.Module, rollout: Rollout, temperature: float = 1.0):
    """Logits (B, T, V) of the policy at each response position, divided by the temperature.

    Position t's logits predict response token t: they come from the model's output at the
    column just before it.
    """
    ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)  # (B, P+T)
    attention = torch.cat([rollout.prompt_mask, rollout.response_mask], dim=1)
    prompt_len, response_len = rollout.prompt_ids.shape[1], rollout.response_ids.shape[1]
    out = model(
        input_ids=ids,
        attention_mask=attention,
        position_ids=_positions(attention),
        use_cache=False,
        logits_to_keep=response_len + 1,
    )
    logits = out.logits[:, :-1]  # (B, T, V): outputs at columns P-1 .. P+T-2
    assert logits.shape[1] == response_len and prompt_len >= 1
    return logits / temperature if temperature != 1.0 else logits
