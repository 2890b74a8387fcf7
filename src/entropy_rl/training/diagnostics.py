"""The paper's entropy diagnostics on a rollout batch, computed from logits.

- Rollout statistics: policy entropy (mean token entropy over the batch's valid tokens, and
  by response position), the batch covariances of Theorems 1 and 2, the share of tokens
  with positive covariance.
- Probe statistics: on probe states (valid tokens of the first responses of the step's
  rollout batch, at most `diagnostics.probe_tokens` of them: `probe_states`), the exact
  entropy change over the step's updates and Lemma 1's first-order prediction of it, both
  from the full-vocabulary logits before and after the updates. Only the S states' hidden
  states and the output head's parameters before the updates are kept, and the logits are
  made a block of states at a time, so the memory grows with neither response length nor
  the number of states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from entropy_rl.core import (
    entropy_change_and_first_order,
    masked_mean,
    token_covariance,
    token_covariance_pg,
)
from entropy_rl.runs.metric_keys import (
    COV_LOGP_ADV,
    COV_LOGP_PI_ADV,
    COV_POS_FRAC,
    DH_ACTUAL,
    DH_LEMMA1,
    ENTROPY_MEAN,
)

if TYPE_CHECKING:
    from entropy_rl.training.rollout import HeadInputs


def position_totals(values: torch.Tensor, mask: torch.Tensor, width: int) -> torch.Tensor:
    """(2, width): masked sums and counts over sequences at each response position, zero
    beyond T; totals of batch parts (ranks) add up. values, mask: (B, T), T <= width."""
    m = mask.to(values.dtype)
    totals = torch.stack([(values * m).sum(0), m.sum(0)])  # (2, T)
    return torch.nn.functional.pad(totals, (0, width - totals.shape[1]))


def position_means(totals: torch.Tensor) -> list[float]:
    """`position_totals` -> mean at each position (nan where no sequence reaches it)."""
    means = totals[0] / totals[1].clamp(min=1)
    return [float(v) if c > 0 else float("nan") for v, c in zip(means, totals[1], strict=True)]


def by_position(values: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Masked mean over sequences at each response position: (B, T) -> T floats (nan if empty)."""
    return position_means(position_totals(values, mask, mask.shape[1]))


def rollout_statistics(
    entropy: torch.Tensor,
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cov: torch.Tensor | None = None,
    sums: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """entropy, log_probs, mask: (B, T); advantages: (B,). Detached 0-dim tensors, means
    over these rows' valid tokens.

    `cov` is `token_covariance(log_probs, advantages, mask, sums)` when the caller has it
    already; `sums` the whole batch's `centering_sums` when these rows are part of one.
    """
    m = mask.to(entropy.dtype)
    if cov is None:
        cov = token_covariance(log_probs, advantages, mask, sums)  # (B, T)
    cov_pg = token_covariance_pg(log_probs, advantages, mask, sums)  # (B, T)
    return {
        ENTROPY_MEAN: masked_mean(entropy, m),
        COV_LOGP_ADV: masked_mean(cov, m),
        COV_LOGP_PI_ADV: masked_mean(cov_pg, m),
        COV_POS_FRAC: masked_mean((cov > 0).to(m.dtype), m),
    }


def probe_states(mask: torch.Tensor, limit: int) -> torch.Tensor:
    """The probe states kept, (N, T) bool: True at the kept (response, position) pairs.

    The candidates are the valid tokens of `mask` (N, T), in row-major order (response by
    response, position by position). With more than `limit` (>= 1) of them, `limit` evenly
    spaced ones are kept, the first and the last included (the first alone when limit is 1):
    the choice is deterministic and draws no random numbers.
    """
    valid = mask.flatten().nonzero().squeeze(-1)  # (M,) flat indices of the valid tokens
    count = valid.numel()
    if count > limit:
        picks = torch.arange(limit, device=valid.device) * (count - 1) // max(limit - 1, 1)
        valid = valid[picks]  # (S,) strictly increasing: the spacing is >= 1
    kept = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    kept[valid] = True
    return kept.view(mask.shape)


def probe_statistics(
    logits_before: torch.Tensor,
    logits_after: torch.Tensor,
    states: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """Actual and Lemma-1 entropy change, means over S probe states. logits: (S, V), the
    states' logits before and after the updates.

    `states` (N, T) bool with S True (`probe_states`) says where the rows sit, in row-major
    order: the mean is then summed over that grid in the responses' token order, the same
    float32 sum as a masked mean over every (N, T) position. None: the rows in their order.
    """
    actual, predicted = entropy_change_and_first_order(logits_before, logits_after, chunk_size)
    return _probe_means(actual, predicted, states)


def probe_statistics_from_heads(
    before: HeadInputs,
    after: HeadInputs,
    states: torch.Tensor,
    temperature: float = 1.0,
    rows: int | None = None,
    chunk_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """`probe_statistics` of the logits the head's inputs and parameters give before and
    after the updates (`rollout.HeadInputs`, S states each), made `rows` states at a time
    (None: all at once), so the memory is a few (rows, V) blocks however many states there
    are: the logits before and after, and the log-softmax, probabilities and logit change
    of `core.entropy_change_and_first_order`. states: (N, T) bool with S True."""
    count = before.hidden.shape[0]
    rows = count if rows is None else rows
    parts = [
        entropy_change_and_first_order(
            before.logits(slice(i, i + rows), temperature),
            after.logits(slice(i, i + rows), temperature),
            chunk_size,
        )
        for i in range(0, count, max(rows, 1))
    ]
    if not parts:
        empty = torch.zeros(0)
        return _probe_means(empty, empty, states)
    actual, predicted = (torch.cat(values) for values in zip(*parts, strict=True))
    return _probe_means(actual, predicted, states)


def _probe_means(actual, predicted, states) -> dict[str, torch.Tensor]:
    if states is None:
        states = torch.ones(actual.shape, dtype=torch.bool, device=actual.device)  # (S,)
    m = states.to(torch.float32)
    return {
        DH_ACTUAL: masked_mean(_on_grid(actual, states), m),
        DH_LEMMA1: masked_mean(_on_grid(predicted, states), m),
    }


def _on_grid(values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The S values (S,) at the True places of `states` (N, T), zero elsewhere -> (N, T)."""
    grid = values.new_zeros(states.shape)
    grid[states] = values
    return grid
