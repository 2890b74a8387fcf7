"""The entropy-performance law fitted live, on a run's evaluation points so far.

One computation, `live_law` (called once per evaluation row), serves five readers: the
`law/*` keys of every evaluation row of metrics.jsonl, the ceiling of the progress display
(which reads those keys), the saturation stop rule of `train.stop_at_saturation`,
`entropy-rl watch` (which applies the same rule to any framework's log, beside the
collapse and explosion alarms below), and scripts/saturation_replay.py, which replays the
rule over finished runs. The fit is `law.fit_entropy_law` (closed-form least squares: microseconds on
a few hundred points), on the same points as the end-of-run fit: `entropy/mean` and
`val/acc` of each evaluation row where both are numbers.

The stop rule (`saturation`): the forecast gain left is the upper end of the ceiling's
confidence interval minus the best `val/acc` so far; the run is saturated when the fit is
reliable (`law.EntropyLawFit.reliable`) and that gain is below `train.saturation_min_gain`.
The upper end makes the rule cautious: it stops only when even the optimistic end of the
interval leaves less than the threshold to win. Departure from the paper: the paper uses
the ceiling as a forecast after the fact, not as a stopping rule.

The alarms of `entropy-rl watch`, on the evaluation points so far (H_0 the first one's
entropy, H the last one's):
- collapse (`collapse`): at least `spent` of the start entropy is gone (1 - H / H_0 >=
  spent) while a reliable fit's forecast gain left is below `min_gain`: the entropy that
  pays for exploration is spent and the law says little is left to win.
- explosion (`explosion`): H above (1 + rise) * H_0, or H rose at each of the last
  `window` evaluations and by more than rise * H_0 over them.

numpy (through `law`) and the standard library only: no torch, no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from entropy_rl.analysis.law import RELIABLE_MIN_POINTS, EntropyLawFit, fit_entropy_law
from entropy_rl.runs.metric_keys import (
    ENTROPY_MEAN,
    LAW_A,
    LAW_B,
    LAW_CEILING,
    LAW_CEILING_CI_HI,
    LAW_CEILING_CI_LO,
    LAW_N,
    LAW_R2,
    VAL_ACC,
)

Point = tuple[float, float]
"""(H, R): `entropy/mean` and `val/acc` of one evaluation row."""


def law_point(record: Mapping[str, Any]) -> Point | None:
    """The row's (H, R), or None when it is not an evaluation row or either is not a finite
    number (the end-of-run fit skips such rows too)."""
    values = (record.get(ENTROPY_MEAN), record.get(VAL_ACC))
    if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return float(values[0]), float(values[1])
    return None


def fit_so_far(points: Sequence[Point]) -> EntropyLawFit | None:
    """The law fitted on `points`; None below `law.RELIABLE_MIN_POINTS` points (a ceiling from
    fewer is flagged unreliable everywhere) or when no finite fit can be made (constant
    entropy, an overflowing exp(H)): a run never fails for want of a fit."""
    if len(points) < RELIABLE_MIN_POINTS:
        return None
    entropy, accuracy = zip(*points, strict=True)
    try:
        with np.errstate(all="ignore"):
            fit = fit_entropy_law(np.array(entropy), np.array(accuracy))
    except (ValueError, ArithmeticError):
        return None
    numbers = (fit.a, fit.b, fit.r2, *fit.ceiling_ci)
    return fit if all(math.isfinite(v) for v in numbers) else None


def law_metrics(fit: EntropyLawFit | None) -> dict[str, float | int]:
    """The `law/*` keys of an evaluation row; none without a fit."""
    if fit is None:
        return {}
    low, high = fit.ceiling_ci
    return {
        LAW_A: fit.a,
        LAW_B: fit.b,
        LAW_CEILING: fit.ceiling,
        LAW_CEILING_CI_LO: low,
        LAW_CEILING_CI_HI: high,
        LAW_R2: fit.r2,
        LAW_N: fit.n,
    }


def gain_left(fit: EntropyLawFit, points: Sequence[Point]) -> float:
    """The forecast gain left: the upper end of the ceiling's interval minus the best R of
    `points`."""
    return fit.ceiling_ci[1] - max(r for _, r in points)


def saturated(gain: float, min_gain: float) -> bool:
    """Whether a forecast gain left this small stops a run (`train.saturation_min_gain`)."""
    return gain < min_gain


def saturation(
    fit: EntropyLawFit | None, points: Sequence[Point], min_gain: float
) -> dict[str, Any] | None:
    """{"reason", "gain_left"} when the run is saturated: a reliable fit whose forecast gain
    left is below `min_gain`; else None."""
    if fit is None or not fit.reliable:
        return None
    gain = gain_left(fit, points)
    if not saturated(gain, min_gain):
        return None
    best = max(r for _, r in points)
    reason = (
        f"forecast gain left {gain:.3f} < train.saturation_min_gain {min_gain:g} (upper end "
        f"{fit.ceiling_ci[1]:.3f} of the ceiling's {fit.ci_level:.0%} interval minus the best "
        f"val/acc {best:.3f}; law fitted on {fit.n} evaluations, R² {fit.r2:.2f})"
    )
    return {"reason": reason, "gain_left": gain}


def live_law(
    points: Sequence[Point], record: Mapping[str, Any], min_gain: float | None = None
) -> tuple[list[Point], dict[str, float | int], dict[str, Any] | None]:
    """One evaluation row's turn of the live law: the points with the row's own (when it has
    one), the row's `law/*` keys fitted on them, and `saturation`'s verdict with `min_gain`
    (None when min_gain is None: the rule is off, or the row is the run's last)."""
    point = law_point(record)
    points = [*points, point] if point is not None else list(points)
    fit = fit_so_far(points)
    verdict = None if min_gain is None else saturation(fit, points, min_gain)
    return points, law_metrics(fit), verdict


COLLAPSE_SPENT = 0.7
"""Share of the start entropy spent from which `collapse` may fire. The embedded task's
GRPO runs spend 71-78% of it (shared/TOY-SETTING.md); the paper's spend over 90%."""
COLLAPSE_MIN_GAIN = 0.05
"""Forecast gain left below which `collapse` fires, in units of R: five times the
saturation stop's default, so it warns before a run saturates."""
EXPLOSION_RISE = 0.1
"""Rise of the entropy, as a share of the start entropy, that `explosion` calls a rise."""
EXPLOSION_WINDOW = 5
"""Evaluations of steady rise that `explosion` calls steady."""


def collapse(
    fit: EntropyLawFit | None,
    points: Sequence[Point],
    spent: float = COLLAPSE_SPENT,
    min_gain: float = COLLAPSE_MIN_GAIN,
) -> str | None:
    """Why the run's entropy has collapsed with little left to gain (see the module
    docstring), or None."""
    if fit is None or not fit.reliable or points[0][0] <= 0.0:
        return None
    start, now = points[0][0], points[-1][0]
    share = 1.0 - now / start
    gain = gain_left(fit, points)
    if share < spent or gain >= min_gain:
        return None
    return (
        f"{share:.0%} of the start entropy {start:.3f} spent (H {now:.3f}) and the forecast "
        f"gain left is {gain:.3f} < {min_gain:g}"
    )


def explosion(
    points: Sequence[Point], rise: float = EXPLOSION_RISE, window: int = EXPLOSION_WINDOW
) -> str | None:
    """Why the run's entropy is exploding (see the module docstring), or None."""
    start, now = points[0][0], points[-1][0]
    if now > (1.0 + rise) * start:
        return f"H {now:.3f} is over {1.0 + rise:g} x the start entropy {start:.3f}"
    recent = [h for h, _ in points[-window - 1 :]]
    steady = len(recent) == window + 1 and all(b > a for a, b in itertools.pairwise(recent))
    if steady and recent[-1] - recent[0] > rise * start:
        return (
            f"H rose at each of the last {window} evaluations, {recent[0]:.3f} -> "
            f"{recent[-1]:.3f} (more than {rise:g} x the start entropy {start:.3f})"
        )
    return None
