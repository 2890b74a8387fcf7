"""The Lemma-1 probe's states (`probe_states`: a bounded, evenly spaced, deterministic
subset of the probe responses' valid tokens) and its statistics over them
(`probe_statistics`), checked against a slow reference."""

import itertools
import math

import pytest
import torch

from entropy_rl.core import entropy_change_first_order, masked_mean, token_entropy
from entropy_rl.runs.metric_keys import DH_ACTUAL, DH_LEMMA1
from entropy_rl.training.diagnostics import (
    probe_states,
    probe_statistics,
    probe_statistics_from_heads,
)

N, T, V = 5, 9, 11  # probe responses, response columns, vocabulary


def _mask(response_len: int = T) -> torch.Tensor:
    """(N, response_len): responses of lengths 3, 9, 1, 6, 9 (cut at response_len)."""
    lengths = torch.tensor([3, 9, 1, 6, 9])
    return (torch.arange(response_len) < lengths[:, None]).long()


def _flat_valid(mask: torch.Tensor) -> list[int]:
    return mask.flatten().nonzero().squeeze(-1).tolist()


def test_every_state_is_kept_within_the_limit():
    mask = _mask()
    assert torch.equal(probe_states(mask, 28), mask.bool())  # 28 valid tokens
    assert torch.equal(probe_states(mask, 1000), mask.bool())


@pytest.mark.parametrize("limit", [1, 2, 5, 27])
def test_the_subset_is_evenly_spaced_deterministic_and_spans_the_states(limit):
    mask = _mask()
    kept = probe_states(mask, limit)  # (N, T) bool
    assert kept.shape == mask.shape and kept.dtype == torch.bool
    assert torch.equal(kept, probe_states(mask.clone(), limit))  # the same every call
    assert int(kept.sum()) == limit and not (kept & ~mask.bool()).any()
    valid, chosen = _flat_valid(mask), _flat_valid(kept)
    where = [valid.index(i) for i in chosen]  # their ranks among the 28 valid states
    assert where[0] == 0
    if limit > 1:
        assert where[-1] == len(valid) - 1
        gaps = {b - a for a, b in itertools.pairwise(where)}
        step = (len(valid) - 1) / (limit - 1)
        assert gaps <= {int(step), int(step) + 1}


def test_the_number_of_states_does_not_grow_with_the_response_length():
    short, long = _mask(T), _mask(2 * T)
    long[:, T:] = 1  # twice the columns, every one of them valid
    assert int(probe_states(short, 12).sum()) == int(probe_states(long, 12).sum()) == 12


def _logits(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, V, generator=g, dtype=torch.float64) * 2  # (S, V)


def _reference(before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
    """Slow loops over states and vocabulary: mean actual change and mean Lemma-1 change."""
    actual, lemma = [], []
    for z0, z1 in zip(before.tolist(), after.tolist(), strict=True):
        logp0, logp1 = _log_softmax(z0), _log_softmax(z1)
        p0 = [math.exp(lp) for lp in logp0]
        h0 = -sum(p * lp for p, lp in zip(p0, logp0, strict=True))
        h1 = -sum(math.exp(lp) * lp for lp in logp1)
        dz = [b - a for a, b in zip(z0, z1, strict=True)]
        e_logp, e_dz = -h0, sum(p * d for p, d in zip(p0, dz, strict=True))
        terms = zip(p0, logp0, dz, strict=True)
        lemma.append(-sum(p * (lp - e_logp) * (d - e_dz) for p, lp, d in terms))
        actual.append(h1 - h0)
    return sum(actual) / len(actual), sum(lemma) / len(lemma)


def _log_softmax(z: list[float]) -> list[float]:
    top = max(z)
    log_total = top + math.log(sum(math.exp(x - top) for x in z))
    return [x - log_total for x in z]


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_probe_statistics_match_the_slow_reference(chunk_size):
    states = probe_states(_mask(), 10)  # (N, T), 10 True
    before = _logits(10, 0)  # (S, V)
    after = before + 0.2 * _logits(10, 1)
    for layout in (states, None):
        stats = probe_statistics(before, after, layout, chunk_size)
        actual, lemma = _reference(before, after)
        assert stats[DH_ACTUAL].item() == pytest.approx(actual, rel=1e-10, abs=1e-12)
        assert stats[DH_LEMMA1].item() == pytest.approx(lemma, rel=1e-10, abs=1e-12)


def test_with_every_state_the_means_are_those_of_the_full_logits_bit_for_bit():
    """All valid tokens kept: the same float32 numbers as masked means over (N, T, V)."""
    mask = _mask()
    g = torch.Generator().manual_seed(4)
    before = torch.randn(N, T, V, generator=g)  # (N, T, V) float32
    after = before + 0.1 * torch.randn(N, T, V, generator=g)
    m = mask.float()
    actual = token_entropy(after, 7) - token_entropy(before, 7)  # (N, T)
    lemma = entropy_change_first_order(before, after, 7)  # (N, T)
    states = probe_states(mask, 2048)
    stats = probe_statistics(before[states], after[states], states, 7)
    assert torch.equal(stats[DH_ACTUAL], masked_mean(actual, m))
    assert torch.equal(stats[DH_LEMMA1], masked_mean(lemma, m))


@pytest.mark.parametrize("rows", [None, 1, 4])
def test_probe_statistics_from_heads_match_the_slow_reference(rows):
    """The logits made from kept hidden states and head parameters, a block of rows at a time:
    the same statistics as the slow loops over the logits they give (float64)."""
    from entropy_rl.training.rollout import HeadInputs

    states = probe_states(_mask(), 10)  # (N, T), 10 True
    g = torch.Generator().manual_seed(7)
    h0, w0 = torch.randn(10, 5, generator=g, dtype=torch.float64), _logits(V, 2)[:, :5]
    h1, w1 = h0 + 0.1 * torch.randn(10, 5, generator=g, dtype=torch.float64), w0 * 1.05
    bias = torch.randn(V, generator=g, dtype=torch.float64)
    before, after = HeadInputs(h0, w0, bias), HeadInputs(h1, w1, None)
    stats = probe_statistics_from_heads(before, after, states, 0.8, rows, 3)
    actual, lemma = _reference((h0 @ w0.T + bias) / 0.8, (h1 @ w1.T) / 0.8)
    assert stats[DH_ACTUAL].item() == pytest.approx(actual, rel=1e-10, abs=1e-12)
    assert stats[DH_LEMMA1].item() == pytest.approx(lemma, rel=1e-10, abs=1e-12)
