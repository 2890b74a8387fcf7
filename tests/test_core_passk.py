"""The unbiased pass@k estimator against exact binomial arithmetic."""

import math
from fractions import Fraction

import pytest
import torch

from entropy_rl.core import pass_at_k


def _reference(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), exactly (math.comb is 0 when n - c < k)."""
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_matches_the_binomial_formula_for_every_c_and_k(n):
    counts = torch.arange(n + 1)
    for k in range(1, n + 1):
        out = pass_at_k(counts, n, k)
        assert out.dtype == torch.float64 and out.shape == (n + 1,)
        for c in range(n + 1):
            assert out[c].item() == pytest.approx(_reference(n, c, k), abs=1e-12)


def test_large_n_is_stable_where_the_coefficients_overflow_floats():
    n, k = 5000, 200
    assert math.comb(n, k) > 10**308  # float(C(n, k)) would overflow
    counts = torch.tensor([0, 1, 7, 500, 4900, 5000])
    out = pass_at_k(counts, n, k)
    expected = [_reference(n, int(c), k) for c in counts]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_pass_at_1_is_the_mean_and_pass_at_n_is_any_correct():
    counts = torch.tensor([0, 1, 3, 4])
    torch.testing.assert_close(pass_at_k(counts, 4, 1), counts / 4.0, check_dtype=False)
    torch.testing.assert_close(pass_at_k(counts, 4, 4), (counts > 0).double())


def test_bad_arguments():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(torch.tensor([1]), 4, 5)
    with pytest.raises(ValueError, match="integers"):
        pass_at_k(torch.tensor([5]), 4, 1)
