"""token_entropy, token_log_probs and Lemma 1 against slow float64 references."""

import itertools

import pytest
import torch

from entropy_rl.core import (
    entropy_change_and_first_order,
    entropy_change_first_order,
    head_token_scores,
    token_entropy,
    token_log_probs,
)


def _logits(*shape, scale=3.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def _reference_entropy(logits):
    return torch.distributions.Categorical(logits=logits.double()).entropy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_entropy_matches_categorical_float64(dtype):
    logits = _logits(3, 7, 50, dtype=dtype)
    out = token_entropy(logits)
    assert out.dtype == torch.float32 and out.shape == (3, 7)
    torch.testing.assert_close(out.double(), _reference_entropy(logits), atol=2e-5, rtol=1e-5)


def test_entropy_extreme_logits_are_finite():
    logits = torch.tensor([[0.0, -1e4, -1e4], [50.0, 50.0, -50.0], [0.0, 0.0, 0.0]])
    out = token_entropy(logits)
    ref = _reference_entropy(logits)
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 5, 13, 1000])
def test_chunked_equals_unchunked(chunk_size):
    logits = _logits(4, 9, 33)
    tokens = torch.randint(0, 33, (4, 9), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(token_entropy(logits, chunk_size), token_entropy(logits))
    torch.testing.assert_close(
        token_log_probs(logits, tokens, chunk_size), token_log_probs(logits, tokens)
    )


def test_log_probs_match_categorical_float64():
    logits = _logits(2, 6, 40, dtype=torch.bfloat16)
    tokens = torch.randint(0, 40, (2, 6), generator=torch.Generator().manual_seed(2))
    out = token_log_probs(logits, tokens)
    ref = torch.distributions.Categorical(logits=logits.double()).log_prob(tokens)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-5)


def test_log_probs_gradient_flows_through_chunks():
    logits = _logits(2, 5, 11).requires_grad_(True)
    tokens = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(3))
    token_log_probs(logits, tokens, chunk_size=3).sum().backward()
    grad_chunked = logits.grad.clone()
    logits.grad = None
    token_log_probs(logits, tokens).sum().backward()
    torch.testing.assert_close(grad_chunked, logits.grad)


def test_entropy_gradient_matches_reference():
    logits = _logits(3, 8, dtype=torch.float64).requires_grad_(True)
    token_entropy(logits, chunk_size=2).sum().backward()
    grad = logits.grad.clone()
    logits.grad = None
    _reference_entropy(logits).sum().backward()
    torch.testing.assert_close(grad, logits.grad)


def test_bad_shapes_and_chunk_size():
    with pytest.raises(ValueError, match="tokens shape"):
        token_log_probs(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        token_entropy(torch.zeros(2, 5), chunk_size=0)
    with pytest.raises(ValueError, match="same shape"):
        entropy_change_first_order(torch.zeros(2, 5), torch.zeros(2, 6))


def _lemma1_reference(before, after):
    """Slow loop over positions and vocabulary, in float64."""
    out = torch.zeros(before.shape[0], dtype=torch.float64)
    for i in range(before.shape[0]):
        p = torch.softmax(before[i].double(), -1)
        logp = torch.log_softmax(before[i].double(), -1)
        dz = after[i].double() - before[i].double()
        e_logp = sum(p[a] * logp[a] for a in range(len(p)))
        e_dz = sum(p[a] * dz[a] for a in range(len(p)))
        out[i] = -sum(p[a] * (logp[a] - e_logp) * (dz[a] - e_dz) for a in range(len(p)))
    return out


def test_lemma1_matches_loop_reference():
    before = _logits(6, 12, dtype=torch.float64)
    after = before + 0.3 * _logits(6, 12, seed=5, dtype=torch.float64)
    out = entropy_change_first_order(before, after, chunk_size=4)
    torch.testing.assert_close(out, _lemma1_reference(before, after))


def test_lemma1_error_is_second_order_in_step():
    before = _logits(20, 30, dtype=torch.float64)
    direction = _logits(20, 30, seed=9, scale=1.0, dtype=torch.float64)
    errors = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        after = before + eps * direction
        actual = token_entropy(after) - token_entropy(before)
        errors.append((entropy_change_first_order(before, after) - actual).abs().max().item())
    # Halving the step divides a second-order error by about 4.
    for big, small in itertools.pairwise(errors):
        assert 3.5 < big / small < 4.5, errors


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_change_and_first_order_are_the_two_functions_bit_for_bit(chunk_size, dtype):
    """The probe's pair, softmax(before) made once: exactly the exact change and Lemma 1 of
    the separate functions (with the same chunks), on (B, T, V) logits, and the loop
    reference within float tolerance."""
    before = _logits(2, 5, 40, dtype=dtype)
    after = (before.double() + 0.2 * _logits(2, 5, 40, seed=3, dtype=torch.float64)).to(dtype)
    actual, predicted = entropy_change_and_first_order(before, after, chunk_size)
    assert actual.shape == predicted.shape == (2, 5)
    exact = token_entropy(after, chunk_size) - token_entropy(before, chunk_size)
    assert torch.equal(actual, exact)
    assert torch.equal(predicted, entropy_change_first_order(before, after, chunk_size))
    reference = _lemma1_reference(before.double().flatten(0, 1), after.double().flatten(0, 1))
    torch.testing.assert_close(predicted.double().flatten(), reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="must have the same shape"):
        entropy_change_and_first_order(before, after[..., :-1])


def test_lemma1_zero_for_uniform_shift():
    before = _logits(4, 10)
    assert entropy_change_first_order(before, before + 7.0).abs().max() < 1e-6


# ---- head_token_scores: the output projection, scored a chunk of rows at a time ----------


def _head_problem(n=11, hidden=6, vocab=29, bias=True, dtype=torch.float64, seed=3):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g, dtype=torch.float64).to(dtype)
    w = (torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.7).to(dtype)
    b = (torch.randn(vocab, generator=g, dtype=torch.float64)).to(dtype) if bias else None
    y = torch.randint(0, vocab, (n,), generator=g)
    return h, w, b, y


def _reference_head(h, w, b, y, temperature):
    """Slow and obvious: every logit at once, log_softmax, gather, -sum p log p."""
    logits = (h @ w.T + (0 if b is None else b)) / temperature  # (N, V)
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, y[:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize(
    "rows,temperature,bias", [(1, 1.0, True), (4, 0.7, True), (11, 1.0, False), (50, 1.3, True)]
)
def test_head_token_scores_values_and_gradients_match_the_reference(rows, temperature, bias):
    h, w, b, y = _head_problem(bias=bias)
    g = torch.Generator().manual_seed(9)
    coef_lp, coef_h = (
        torch.randn(11, generator=g, dtype=torch.float64),
        torch.randn(11, generator=g, dtype=torch.float64),
    )
    inputs = [t.clone().requires_grad_() for t in (h, w) + ((b,) if bias else ())]
    lp, ent = head_token_scores(
        inputs[0], inputs[1], y, inputs[2] if bias else None, temperature, rows
    )
    ((lp * coef_lp).sum() + (ent * coef_h).sum()).backward()
    ref_inputs = [t.clone().requires_grad_() for t in (h, w) + ((b,) if bias else ())]
    ref_lp, ref_ent = _reference_head(
        ref_inputs[0], ref_inputs[1], ref_inputs[2] if bias else None, y, temperature
    )
    ((ref_lp * coef_lp).sum() + (ref_ent * coef_h).sum()).backward()
    torch.testing.assert_close(lp, ref_lp.detach())
    torch.testing.assert_close(ent, ref_ent.detach())
    for mine, ref in zip(inputs, ref_inputs, strict=True):
        torch.testing.assert_close(mine.grad, ref.grad)


def test_head_token_scores_passes_gradcheck():
    h, w, b, y = _head_problem(n=5, hidden=3, vocab=7)
    fn = lambda h, w, b: head_token_scores(h, w, y, b, 0.8, rows=2)  # noqa: E731
    args = tuple(t.requires_grad_() for t in (h, w, b))
    assert torch.autograd.gradcheck(fn, args)


def test_head_token_scores_without_entropy_and_float32():
    h, w, b, y = _head_problem(dtype=torch.float32)
    lp, ent = head_token_scores(h, w, y, b, rows=3, with_entropy=False)
    assert ent is None and lp.dtype == torch.float32
    logits = h @ w.T + b
    torch.testing.assert_close(lp, token_log_probs(logits, y))
    _, ent = head_token_scores(h, w, y, b, rows=3)
    torch.testing.assert_close(ent, token_entropy(logits))


def test_head_token_scores_bfloat16_hidden_gets_a_float32_projection():
    h, w, b, y = _head_problem(dtype=torch.float32)
    lp, _ = head_token_scores(h.bfloat16(), w, y, b, rows=4)
    ref, _ = _reference_head(h.bfloat16().double(), w.double(), b.double(), y, 1.0)
    torch.testing.assert_close(lp.double(), ref, atol=1e-5, rtol=1e-5)


def test_head_token_scores_rejects_bad_shapes_and_rows():
    h, w, b, y = _head_problem()
    with pytest.raises(ValueError, match="rows"):
        head_token_scores(h, w, y, b, rows=0)
    with pytest.raises(ValueError, match="must be"):
        head_token_scores(h, w, y[:-1], b)


def test_head_token_scores_with_a_frozen_head_gives_no_weight_gradient():
    """LoRA freezes the head: the backward then makes no (V, H) gradient, and the hidden
    states' gradient is the reference's."""
    h, w, b, y = _head_problem()
    hidden = h.clone().requires_grad_()
    lp, ent = head_token_scores(hidden, w, y, b, rows=3)
    (lp.sum() + ent.sum()).backward()
    ref_hidden = h.clone().requires_grad_()
    ref_lp, ref_ent = _reference_head(ref_hidden, w, b, y, 1.0)
    (ref_lp.sum() + ref_ent.sum()).backward()
    assert w.grad is None
    torch.testing.assert_close(hidden.grad, ref_hidden.grad)
