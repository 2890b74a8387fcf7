"""Token entropy, token log-probabilities and Lemma 1's first-order entropy change.

They all work on logits of shape (..., V) and reduce over the last axis. Inputs in
bf16/fp16/float32 are computed and returned in float32; float64 stays float64 (for
reference checks). With `chunk_size`, rows are processed a chunk at a time, so the extra
memory is a few `(chunk_size, V)` float32 buffers rather than `(B*T, V)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _map_rows(
    fn: Callable[..., torch.Tensor], tensors: list[torch.Tensor], chunk_size: int | None
) -> torch.Tensor:
    """Apply `fn` to row chunks of tensors flattened to (N, ...) and join its (N, ...)
    results, returned as (lead..., ...)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    lead_shape = tensors[0].shape[:-1]
    flat = [
        t.reshape(-1, t.shape[-1]) if t.dim() == tensors[0].dim() else t.reshape(-1)
        for t in tensors
    ]
    n_rows = flat[0].shape[0]
    if chunk_size is None or chunk_size >= n_rows:
        out = fn(*flat)  # (N, ...)
    else:
        out = torch.cat(
            [fn(*(t[i : i + chunk_size] for t in flat)) for i in range(0, n_rows, chunk_size)]
        )
    return out.reshape(*lead_shape, *out.shape[1:])


def _entropy_rows(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=-1, dtype=_compute_dtype(logits))  # (N, V), no copy
    p = logp.exp()  # (N, V)
    if logp.requires_grad:
        return -(p * logp).sum(-1)
    return -p.mul_(logp).sum(-1)  # in place: one fewer (N, V) buffer when no grad is needed


def token_entropy(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Per-position entropy H = -sum_a pi(a) log pi(a) in nats, pi = softmax(logits).

    logits: (..., V). Returns (...,) in float32 (float64 for float64 input).
    """
    return _map_rows(_entropy_rows, [logits], chunk_size)


def _log_prob_rows(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    x = logits.to(_compute_dtype(logits))  # (N, V)
    picked = x.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # (N,)
    return picked - torch.logsumexp(x, dim=-1)


def token_log_probs(
    logits: torch.Tensor, tokens: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """log pi(y_t) for the given tokens. logits: (B, T, V), tokens: (B, T) -> (B, T)."""
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(
            f"tokens shape {tuple(tokens.shape)} must match logits shape without the "
            f"vocabulary axis {tuple(logits.shape[:-1])}"
        )
    return _map_rows(_log_prob_rows, [logits, tokens], chunk_size)


def _lemma1_rows(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return _lemma1_terms(before, after)[0]


def _lemma1_terms(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lemma 1's change (N,) and E_pi[log pi] = -H(pi) (N,) of the logits before (N, V)."""
    dtype = _compute_dtype(before)
    z0 = before.to(dtype)  # (N, V)
    logp = torch.log_softmax(z0, dim=-1)  # (N, V)
    p = logp.exp()  # (N, V)
    dz = after.to(dtype) - z0  # (N, V)
    mean_logp = (p * logp).sum(-1, keepdim=True)  # (N, 1) = -H
    mean_dz = (p * dz).sum(-1, keepdim=True)  # (N, 1)
    if any(t.requires_grad for t in (logp, dz)):
        change = -(p * (logp - mean_logp) * (dz - mean_dz)).sum(-1)
    else:  # the same arithmetic in place: two fewer (N, V) buffers when no grad is needed
        change = -logp.sub_(mean_logp).mul_(p).mul_(dz.sub_(mean_dz)).sum(-1)
    return change, mean_logp.squeeze(-1)


def _changes_rows(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(N, 2): H(after) - H(before) and Lemma 1's change, softmax(before) made once."""
    change, mean_logp = _lemma1_terms(before, after)
    return torch.stack([_entropy_rows(after) + mean_logp, change], dim=-1)


def entropy_change_first_order(
    logits_before: torch.Tensor, logits_after: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Lemma 1 of Cui et al. (2025): the first-order entropy change at each position.

    H(pi') - H(pi) ~= -Cov_{a~pi}(log pi(a), dz(a))
                    = -sum_a pi(a) (log pi(a) - E_pi[log pi]) (dz(a) - E_pi[dz]),
    with pi = softmax(logits_before) and dz = logits_after - logits_before, computed
    exactly over the full vocabulary (the paper's statement; nothing is sampled).
    The error against the true change is second order in dz.

    logits_before, logits_after: (..., V). Returns (...,).
    """
    if logits_before.shape != logits_after.shape:
        raise ValueError(
            f"logits_before {tuple(logits_before.shape)} and logits_after "
            f"{tuple(logits_after.shape)} must have the same shape"
        )
    return _map_rows(_lemma1_rows, [logits_before, logits_after], chunk_size)


def entropy_change_and_first_order(
    logits_before: torch.Tensor, logits_after: torch.Tensor, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact entropy change `token_entropy(after) - token_entropy(before)` and Lemma 1's
    `entropy_change_first_order(before, after)` at each position, bit for bit those two,
    with the softmax of `logits_before` made once rather than twice (the Lemma-1 probe's
    pair). logits_before, logits_after: (..., V). Returns (...,), (...,)."""
    if logits_before.shape != logits_after.shape:
        raise ValueError(
            f"logits_before {tuple(logits_before.shape)} and logits_after "
            f"{tuple(logits_after.shape)} must have the same shape"
        )
    both = _map_rows(_changes_rows, [logits_before, logits_after], chunk_size)  # (..., 2)
    return both[..., 0], both[..., 1]


def head_logits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The output projection in float32 (float64 for float64 weights) with autocast off,
    divided by the temperature: (..., H) -> (..., V)."""
    dtype = torch.promote_types(weight.dtype, torch.float32)
    b = None if bias is None else bias.to(dtype)
    with torch.autocast(hidden.device.type, enabled=False):
        logits = torch.nn.functional.linear(hidden.to(dtype), weight.to(dtype), b)  # (n, V)
    return logits / temperature if temperature != 1.0 else logits


class _HeadScores(torch.autograd.Function):
    """log pi(y) and H per row from hidden states and the output projection, `rows` rows of
    logits at a time; backward recomputes each chunk's logits instead of keeping (N, V).
    At most two (rows, V) buffers are alive at once, forward or backward.

    With z the logits, p = softmax(z): d log p(y) / dz = onehot(y) - p and
    dH / dz = -p (log p + H); both are divided by the temperature on the way to the
    projection's inputs and weights."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, tokens, temperature, rows, with_entropy):
        log_probs, entropy = [], []
        for start in range(0, hidden.shape[0], rows):
            part = slice(start, start + rows)
            logp = _block_log_softmax(hidden[part], weight, bias, temperature)  # (n, V)
            log_probs.append(logp.gather(-1, tokens[part, None].long()).squeeze(-1))
            if with_entropy:
                entropy.append(-logp.exp().mul_(logp).sum(-1))
        log_probs = torch.cat(log_probs) if log_probs else hidden.new_zeros(0, dtype=torch.float32)
        entropy = torch.cat(entropy) if entropy else log_probs.new_zeros(0)  # (N,) or (0,)
        ctx.save_for_backward(hidden, weight, bias, tokens, entropy)
        ctx.temperature, ctx.rows, ctx.with_entropy = temperature, rows, with_entropy
        return log_probs, entropy

    @staticmethod
    def backward(ctx, grad_log_probs, grad_entropy):
        hidden, weight, bias, tokens, entropy = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        dtype = torch.promote_types(weight.dtype, torch.float32)
        grad_weight = None  # none for a frozen head (LoRA): no (V, H) accumulator either
        if ctx.needs_input_grad[1]:
            grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device)
        grad_bias = None
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = torch.zeros(bias.shape, dtype=dtype, device=bias.device)
        for start in range(0, hidden.shape[0], ctx.rows):
            part = slice(start, start + ctx.rows)
            h = hidden[part].to(dtype)  # (n, H)
            logp = _block_log_softmax(h, weight, bias, ctx.temperature)  # (n, V)
            g_lp = grad_log_probs[part, None].to(dtype)  # (n, 1)
            gz = logp.exp()  # (n, V): p
            if ctx.with_entropy:  # dH/dz = -p (log p + H), in logp's buffer
                g_h = grad_entropy[part, None].to(dtype)  # (n, 1)
                logp.add_(entropy[part, None]).mul_(gz).mul_(-g_h)
            gz.mul_(-g_lp)  # -g p
            if ctx.with_entropy:
                gz.add_(logp)
            del logp
            gz.scatter_add_(-1, tokens[part, None].long(), g_lp)  # + g onehot(y)
            if ctx.temperature != 1.0:
                gz.div_(ctx.temperature)
            with torch.autocast(hidden.device.type, enabled=False):
                if grad_hidden is not None:
                    grad_hidden[part] = (gz @ weight.to(dtype)).to(hidden.dtype)
                if grad_weight is not None:
                    grad_weight.addmm_(gz.T, h)
            if grad_bias is not None:
                grad_bias += gz.sum(0)
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def _block_log_softmax(hidden, weight, bias, temperature) -> torch.Tensor:
    """log softmax of a block's logits (n, V), the logits freed as soon as it is made."""
    return torch.log_softmax(head_logits(hidden, weight, bias, temperature), dim=-1)


def head_token_scores(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    tokens: torch.Tensor,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    rows: int | None = None,
    with_entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(y) and token entropy from the output projection's inputs, never making more
    than `rows` rows of logits at once (None: all of them).

    pi = softmax((hidden @ weight.T + bias) / temperature), the projection computed in float32
    (float64 for float64 weights) with autocast off: `token_log_probs` and `token_entropy` of
    those logits, up to float rounding. Gradients reach hidden, weight and bias; the backward pass
    computes each chunk's logits again, so the memory is a few (rows, V) buffers rather than
    (N, V) kept between forward and backward.

    hidden: (N, H); weight: (V, H); tokens: (N,); bias: (V,). Returns (N,) log-probs and
    (N,) entropy (None without `with_entropy`).
    """
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be a positive integer or None, got {rows}")
    if hidden.shape[:-1] != tokens.shape or hidden.dim() != 2:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} must be (N, H) and tokens {tuple(tokens.shape)} (N,)"
        )
    rows = hidden.shape[0] if rows is None else rows
    log_probs, entropy = _HeadScores.apply(
        hidden, weight, bias, tokens, temperature, max(rows, 1), with_entropy
    )
    return log_probs, entropy if with_entropy else None
