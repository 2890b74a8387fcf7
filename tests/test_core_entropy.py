"""token_entropy, token_log_probs and Lemma 1 against slow float64 references."""

import itertools

import pytest
import torch

from entropy_rl.core import entropy_change_first_order, token_entropy, token_log_probs


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


def test_lemma1_zero_for_uniform_shift():
    before = _logits(4, 10)
    assert entropy_change_first_order(before, before + 7.0).abs().max() < 1e-6
