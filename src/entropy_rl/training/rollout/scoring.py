"""Scoring sampled responses again, teacher-forced: their logits, log-probs and entropy,
and the output head's inputs (the trainer's, the diagnostics' and the Lemma-1 probe's).

`response_logits(..., float32_head=True)` scores responses with the final projection (the
output embedding, lm_head) in float32 with autocast disabled, while the rest of the model
runs under whatever autocast is active: the numbers the entropy diagnostics rest on then
keep float32 precision under bf16 autocast. It swaps the projection's `forward` for the
duration of the call and calls the model itself, so the model's own code around the
projection (`logits_to_keep`, logit scaling or soft-capping) and the hooks of a sharded
(FSDP2) or DDP-wrapped model run as usual, and no bf16 logits are made.
`response_scores` and `hidden_at` swap it the same way, to score responses or take the
head's inputs with no (B, T, V) tensor made (the trainer's and the Lemma-1 probe's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from entropy_rl.core.entropy import (
    head_logits,
    head_token_scores,
    token_entropy,
    token_log_probs,
)
from entropy_rl.training.rollout.batch import Rollout, positions_of


def response_logits(
    model: torch.nn.Module,
    rollout: Rollout,
    temperature: float = 1.0,
    float32_head: bool = False,
) -> torch.Tensor:
    """Logits (B, T, V) of the policy at each response position, divided by the temperature.

    Position t's logits predict response token t: they come from the model's output at the
    column just before it; only those columns go through the final projection. With
    `float32_head`, that projection runs in float32 with autocast disabled (the logits are
    then float32 whatever autocast the call runs under); `model` may be a DDP wrapper.
    """
    head = float32_output_embeddings(model) if float32_head else contextlib.nullcontext()
    with head:
        logits = _head_logits(model, rollout)[:, :-1]  # (B, T, V): columns P-1 .. P+T-2
    assert logits.shape[1] == rollout.response_ids.shape[1]
    return logits / temperature if temperature != 1.0 else logits


def _head_logits(model: torch.nn.Module, rollout: Rollout) -> torch.Tensor:
    """What the model's output head returns on its outputs at the columns P-1 .. P+T-1
    (without a swapped head: their logits, (B, T+1, V))."""
    ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)  # (B, P+T)
    attention = torch.cat([rollout.prompt_mask, rollout.response_mask], dim=1)
    assert rollout.prompt_ids.shape[1] >= 1
    out = model(
        input_ids=ids,
        attention_mask=attention,
        position_ids=positions_of(attention),
        use_cache=False,
        logits_to_keep=rollout.response_ids.shape[1] + 1,
    )
    return out.logits


def _output_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """The output head (lm_head) of a Hugging Face model or of a DDP wrapper of one."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return inner.get_output_embeddings()


@contextlib.contextmanager
def output_head(
    model: torch.nn.Module, project: Callable[[torch.Tensor, torch.nn.Linear], torch.Tensor]
) -> Iterator[None]:
    """Within the block, the model's output embedding (its lm_head, a Linear) returns
    `project(hidden, head)` for its input `hidden` (B, L, H) instead of its logits; the
    model's own code and hooks around it (DDP, FSDP2) run as usual, and what `project`
    returns is the model output's `logits`. `model`: a Hugging Face model, or a DDP wrapper."""
    head = _output_embeddings(model)
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(
            f"a float32 head needs the output embedding to be a torch.nn.Linear, got {type(head).__name__}"
        )
    previous = head.__dict__.get("forward")
    head.forward = lambda hidden: project(hidden, head)
    try:
        yield
    finally:
        if previous is None:
            del head.forward
        else:
            head.forward = previous


def float32_output_embeddings(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Within the block, the model's output embedding computes in float32 (float64 if its
    weight is float64) with autocast disabled (`core.head_logits`); its parameters are cast,
    not changed, so gradients reach them as usual. `model`: a Hugging Face model, or a DDP
    wrapper of one."""
    return output_head(model, lambda hidden, head: head_logits(hidden, head.weight, head.bias))


def _response_columns(hidden: torch.Tensor, width: int) -> torch.Tensor:
    """The head's inputs (B, T, H) that predict the T response tokens: the columns
    P-1 .. P+T-2, counted from the last column, so they hold whether the model hands the head
    the T+1 columns `_head_logits` keeps or every column."""
    return hidden[:, -(width + 1) : -1]


# ---- scores without (B, T, V) logits --------------------------------------------------


def logits_post_processing(model: torch.nn.Module) -> str | None:
    """What the model's own code does to its head's logits (Gemma 2's soft-capping, Cohere's
    logit scale), or None. Scoring from the head's projection (`response_scores`, the probe)
    would miss it, so such models are refused where they are loaded."""
    config = getattr(model, "config", None)
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    if cap is not None:
        return f"final_logit_softcapping={cap}"
    if scale not in (None, 1, 1.0):
        return f"logit_scale={scale}"
    return None


@dataclass(frozen=True)
class HeadInputs:
    """What the output head saw at S states: its inputs there, and its parameters then."""

    hidden: torch.Tensor  # (S, H)
    weight: torch.Tensor  # (V, H)
    bias: torch.Tensor | None  # (V,)

    def logits(self, rows: slice, temperature: float = 1.0) -> torch.Tensor:
        """Float32 logits (n, V) of the states `rows`, divided by the temperature."""
        return head_logits(self.hidden[rows], self.weight, self.bias, temperature)


def logits_rows(model: torch.nn.Module, mib: float) -> int:
    """How many positions' float32 logits over the model's vocabulary (its output head's
    rows) fit in `mib` MiB, at least 1 (`train.logits_mib`)."""
    vocab_size = _output_embeddings(model).weight.shape[0]
    return max(1, int(mib * 2**20) // (4 * vocab_size))


def response_scores(
    model: torch.nn.Module,
    rollout: Rollout,
    temperature: float = 1.0,
    entropy: bool = True,
    rows: int | None = None,
    chunk_size: int | None = None,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """log pi of each response token (B, T) and its token entropy (B, T) (None without
    `entropy`), from float32 logits divided by the temperature: `token_log_probs` and
    `token_entropy` of `response_logits(model, rollout, temperature, float32_head=True)`.

    When the B x T positions take more than `rows` rows of logits (None: never), no
    (B, T, V) tensor is made: `core.head_token_scores` projects and scores `rows` positions
    at a time, and its backward computes them again. Otherwise the logits are made whole, as
    by `response_logits`, and scored `chunk_size` rows at a time. `keep` (N, T) bool over the
    first N responses: also returns the head's inputs (S, H) at those S states, in row-major
    order (detached), else None. `model` may be DDP-wrapped.
    """
    ids = rollout.response_ids  # (B, T)
    width, kept = ids.shape[1], []

    def project(hidden: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
        h = _response_columns(hidden, width)  # (B, T, H)
        if keep is not None:
            kept.append(h[: keep.shape[0]][keep].detach().clone())  # (S, H)
        if rows is None or ids.numel() <= rows:
            logits = head_logits(h, head.weight, head.bias, temperature)  # (B, T, V)
            log_probs = token_log_probs(logits, ids, chunk_size)  # (B, T)
            ent = token_entropy(logits, chunk_size) if entropy else None
        else:
            flat = h.reshape(-1, h.shape[-1])  # (B*T, H)
            log_probs, ent = head_token_scores(
                flat, head.weight, ids.reshape(-1), head.bias, temperature, rows, entropy
            )
            log_probs = log_probs.view(ids.shape)
            ent = None if ent is None else ent.view(ids.shape)
        return torch.stack([log_probs, log_probs if ent is None else ent], dim=-1)  # (B, T, 2)

    with output_head(model, project):
        scores = _head_logits(model, rollout)  # (B, T, 2)
    return scores[..., 0], scores[..., 1] if entropy else None, kept[0] if kept else None


def hidden_at(model: torch.nn.Module, rollout: Rollout, keep: torch.Tensor) -> torch.Tensor:
    """The output head's inputs (S, H) at the states `keep` (B, T) bool of the responses, in
    row-major order: the model's body runs on the whole rollout, its head projects nothing."""
    width = rollout.response_ids.shape[1]

    def project(hidden: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
        return _response_columns(hidden, width)[keep]  # (S, H)

    with output_head(model, project):
        return _head_logits(model, rollout)


def head_parameters(
    model: torch.nn.Module, copy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The output head's weight (V, H) and bias (V,) or None, whole (a sharded FSDP2
    parameter is gathered: every rank must call this) and detached; with `copy`, a copy of
    a trainable one (a frozen one cannot change)."""
    head = _output_embeddings(model)

    def whole(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        full = t.full_tensor() if hasattr(t, "full_tensor") else t  # gathered: a new tensor
        fresh = full is not t
        return full.detach().clone() if copy and t.requires_grad and not fresh else full.detach()

    return whole(head.weight), whole(head.bias)
