"""Sampling responses with the KV cache: the transformers engine's sampler.

The sampler is a plain loop over a Hugging Face causal LM with its KV cache, rather than
`model.generate`, for two reasons: every random draw comes from an explicit
`torch.Generator` (so runs are reproducible and resumable without touching global RNG
state), and a toy model spends most of `generate`'s time in per-token bookkeeping.
Prompts are left-padded and responses right-padded, so response position t is column t.
Scoring the sampled responses again, teacher-forced, is `rollout.scoring`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache

from entropy_rl.training.engines import SAMPLING_METHODS
from entropy_rl.training.rollout.batch import Rollout, left_pad, positions_of


class _Draws:
    """Sampling one token per row from logits (B, V), into (B, V) buffers made once per
    rollout rather than a few fresh ones per token (a vocabulary of 151,936 makes each
    tens of MB, and fresh ones each step fragment the process's heap).

    - multinomial: `torch.multinomial(softmax(logits / temperature), 1)` bit for bit: the
      same exponential variates q ~ Exp(1) from the generator (one per row and vocabulary
      entry) and the same argmax of p / q that multinomial computes for one sample.
    - inverse_cdf: one uniform variate u per row, and the first token whose cumulative
      probability (summed in float64) exceeds u times the row's total. The same
      distribution, drawn with V times fewer random numbers: at a vocabulary of 151,936 on
      a CPU the exponential variates are most of a decoding step. Other tokens than
      multinomial's from the same generator state."""

    def __init__(self, method: str = SAMPLING_METHODS[0]) -> None:
        if method not in SAMPLING_METHODS:
            raise ValueError(
                f"sampling must be one of {', '.join(SAMPLING_METHODS)}, got {method!r}"
            )
        self.method = method
        self.probs: torch.Tensor | None = None
        self.work: torch.Tensor | None = None  # multinomial: q (float32); inverse_cdf: the CDF

    def __call__(self, logits, temperature, greedy, generator) -> torch.Tensor:
        if greedy:
            return logits.argmax(-1)
        if self.probs is None or self.probs.shape != logits.shape:
            self.probs = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
            dtype = torch.float64 if self.method == "inverse_cdf" else torch.float32
            self.work = torch.empty(logits.shape, dtype=dtype, device=logits.device)
        scaled = logits.float() if temperature == 1.0 else logits.float() / temperature  # (B, V)
        torch.softmax(scaled, dim=-1, out=self.probs)
        if not torch.isfinite(self.probs.sum()):
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        if self.method == "inverse_cdf":
            return self._inverse_cdf(generator)
        self.work.exponential_(1, generator=generator)
        return torch.div(self.probs, self.work, out=self.work).argmax(-1)  # (B,)

    def _inverse_cdf(self, generator) -> torch.Tensor:
        cdf = self.work.copy_(self.probs).cumsum_(dim=-1)  # (B, V), no temporary
        u = torch.rand((cdf.shape[0], 1), generator=generator, dtype=cdf.dtype, device=cdf.device)
        picked = torch.searchsorted(cdf, u.mul_(cdf[:, -1:]), right=True)  # (B, 1): cdf > u * total
        return picked.squeeze(-1).clamp_(max=cdf.shape[-1] - 1)  # (B,)


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
    sampling: str = SAMPLING_METHODS[0],
) -> Rollout:
    """Sample one response per prompt (token lists, bos included) with the KV cache on.

    A response ends at the first of the `eos_id` tokens (included in its mask). `all_done`
    maps this process's "every response ended" to "every rank's did" (sharded models must
    run the same number of forward passes on every rank); None: this process alone.
    `sampling`: how each token is drawn (`SAMPLING_METHODS`, `rollout.sampling`).
    """
    device = next(model.parameters()).device
    stops = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=device)
    prompt_ids, prompt_mask = (t.to(device) for t in left_pad(prompts, pad_id))
    batch = prompt_ids.shape[0]
    cache = DynamicCache()
    attention = prompt_mask
    positions = positions_of(attention)
    inputs = prompt_ids
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, valid, draw = [], [], _Draws(sampling)
    for _ in range(max_new_tokens):
        out = model(
            input_ids=inputs,
            attention_mask=attention,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        nxt = draw(out.logits[:, -1], temperature, greedy, generator)  # (B,)
        del out  # its (B, 1, V) logits are not needed beside the next step's
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
