"""pass@k: the chance that at least one of k samples is correct, estimated without bias from
n >= k samples per prompt of which c are correct (Chen et al., 2021, "Evaluating Large
Language Models Trained on Code", Sec. 2.1):

    pass@k = 1 - C(n - c, k) / C(n, k).

Departure from the formula as written: the binomial coefficients overflow for large n, so
the ratio is computed as the product prod_{i = n-c+1}^{n} (1 - k / i) (the paper's numerically
stable form), in float64. With k = n it is 1 when c > 0, else 0: "any of the n samples".
"""

from __future__ import annotations

import torch


def pass_at_k(num_correct: torch.Tensor, num_samples: int, k: int) -> torch.Tensor:
    """The unbiased pass@k of each prompt, float64 (P,), from its correct count (P,) of
    `num_samples` samples. Raises ValueError unless 1 <= k <= num_samples and every count is
    an integer in [0, num_samples]."""
    c = torch.as_tensor(num_correct, dtype=torch.float64)  # (P,)
    n = int(num_samples)
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n samples, got k={k}, n={n}")
    if ((c < 0) | (c > n) | (c != c.round())).any():
        raise ValueError(f"correct counts must be integers in [0, {n}]")
    i = torch.arange(1, n + 1, dtype=torch.float64)  # (n,)
    factors = 1.0 - k / i  # (n,) the factor of i in the product
    used = i > (n - c).unsqueeze(-1)  # (P, n): i in n-c+1 .. n
    miss = torch.where(used, factors, torch.ones_like(factors)).prod(-1)  # (P,)
    return torch.where(n - c < k, torch.ones_like(c), 1.0 - miss)
