"""The report's verdict rules: for each of the paper's claims, the numbers it is judged on,
the thresholds, and the status. Plain functions of numbers (no runs, no figures), each with
unit tests on inputs that make it hold and not hold (tests/test_report_verdicts.py); the
sections (`report.sections`) compute the numbers, draw the figures and write the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from entropy_rl.analysis.law import MIN_POINTS

HELD, PARTLY, NOT_HELD, NO_DATA = "held", "partly held", "did not hold", "no data"


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: str  # HELD, PARTLY, NOT_HELD or NO_DATA (or "see detail" for a question)
    detail: str


def status(held: int, total: int) -> str:
    """'held' when all `total` cases held, 'partly held' when some, 'no data' without any."""
    if total == 0:
        return NO_DATA
    return HELD if held == total else PARTLY if held else NOT_HELD


def not_enough(have: int, need: int, what: str) -> str:
    """A verdict's detail when a claim lacks data: 'not enough data: 3 <what>, need 4'."""
    return f"not enough data: {have} {what}, need {need}"


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


# ---- claim 1: entropy collapses early, performance saturates ------------------------------

EARLY, SATURATION = 0.25, 0.5
"""Claim 1: share of the entropy drop by 25% of the steps; accuracy gain after 50%."""
SMOOTH_ENTROPY, SMOOTH_ACCURACY = 5, 3
"""Claim 1 reads entropy and accuracy as means over this many points around each fraction, so
a run needs one point more than these for its start and end to differ."""
MIN_EARLY_DROP = 0.5
"""Claim 1 holds on a task when at least this share of the entropy drop is done by EARLY..."""
MAX_LATE_GAIN = 1 / 3
"""...and at most this share of the accuracy gain comes after SATURATION (means over runs)."""


def collapse_shares(
    entropy: tuple[float, float, float], accuracy: tuple[float, float, float]
) -> tuple[float, float] | None:
    """(share of the entropy drop done by EARLY, share of the accuracy gain after SATURATION)
    from (start, EARLY, end) entropies and (start, SATURATION, end) accuracies; None when
    either is missing or does not move."""
    (h0, hq, h1), (r0, rm, r1) = entropy, accuracy
    if None in (h0, hq, h1, r0, rm, r1) or h0 == h1 or r0 == r1:
        return None
    return (h0 - hq) / (h0 - h1), (r1 - rm) / (r1 - r0)


def collapse_holds(early: Sequence[float], late: Sequence[float]) -> bool:
    """Claim 1 on one task, from its runs' `collapse_shares`."""
    return bool(np.mean(early) >= MIN_EARLY_DROP and np.mean(late) <= MAX_LATE_GAIN)


# ---- claim 2: the law fits and an early fit predicts the rest -------------------------------

LAW_MIN_R2 = 0.7
"""Claim 2 needs the per-run fits' mean R² to reach this..."""
LAW_MAX_RMSE = 0.05
"""...and a run's 15% early fit to predict the rest with an RMSE of at most this (a forecast
worth having)..."""
NOISE_QUANTILE = 0.95
"""...and no higher than this quantile of the RMSE the same forecast gets when the law is
exact and only the validation draw is noisy (`law.forecast_noise`), where the run says how
many draws stand behind each point: a miss above it is the early fit's bias, not noise."""
FORECAST_MIN_POINTS = MIN_POINTS + 1
"""Validation points a run needs for claim 2's early fit: MIN_POINTS to fit, one to predict."""


def forecast_holds(rmse: float, noise: float) -> bool:
    """One run's early forecast: RMSE at most LAW_MAX_RMSE and, when `noise` (its noise-only
    RMSE at NOISE_QUANTILE) is known (not NaN), at most that."""
    return bool(rmse <= LAW_MAX_RMSE and (np.isnan(noise) or rmse <= noise))


def _law_cases(
    r2s: Sequence[float], rmses: Sequence[float], noises: Sequence[float]
) -> tuple[np.ndarray, list[bool]]:
    """The finite R²s, and whether each run with an early fit (finite RMSE) holds."""
    cases = [forecast_holds(e, n) for e, n in zip(rmses, noises, strict=True) if np.isfinite(e)]
    return _finite(r2s), cases


def law_status(r2s: Sequence[float], rmses: Sequence[float], noises: Sequence[float]) -> str:
    """Claim 2 over the reference runs' fit R², early-fit RMSE and noise-only RMSE (NaN where
    a run has none): held when the mean R² reaches LAW_MIN_R2 and every early forecast holds
    (`forecast_holds`), partly when some do, no data without an R² and an early fit."""
    r2, cases = _law_cases(r2s, rmses, noises)
    if not r2.size or not cases:
        return NO_DATA
    return status(sum(cases), len(cases)) if r2.mean() >= LAW_MIN_R2 else NOT_HELD


def law_verdict(
    r2s: Sequence[float],
    rmses: Sequence[float],
    noises: Sequence[float],
    errors: Sequence[float],
    most_points: int,
) -> Verdict:
    """Claim 2 from the reference runs' fit R², early-fit RMSE, noise-only RMSE and mean
    held-out error (NaN where a run has none) and the validation points of the longest
    reference run."""
    name = "2. R = -a exp(H) + b fits, and predicts from an early fit"
    r2, cases = _law_cases(r2s, rmses, noises)
    if not r2.size or not cases:
        if most_points < FORECAST_MIN_POINTS:
            why = not_enough(
                most_points, FORECAST_MIN_POINTS, "validation points in the longest reference run"
            )
        else:
            why = "no reference run's early points could be fitted (constant entropy)"
        return Verdict(name, NO_DATA, why)
    noise, error = _finite(noises), _finite(errors)
    detail = (
        f"mean R² {r2.mean():.3f}; early fits predicting the rest on {sum(cases)} of "
        f"{len(cases)} reference runs, mean RMSE {_finite(rmses).mean():.3f}"
        + (f", mean held-out error {error.mean():+.3f}" if error.size else "")
        + (f", from noise alone {noise.mean():.3f} at {NOISE_QUANTILE:.0%}" if noise.size else "")
        + f" (held when R² >= {LAW_MIN_R2} and each run's RMSE <= {LAW_MAX_RMSE}"
        + (" and <= its own from noise alone)" if noise.size else ")")
    )
    return Verdict(name, law_status(r2s, rmses, noises), detail)


# ---- claim 3: the covariance drives the entropy change ------------------------------------

LEMMA1_MIN_CORR = 0.5
"""Claim 3 holds when Lemma 1's prediction correlates at least this with the actual entropy
change, on average over the runs."""
LEMMA1_MIN_STEPS = 3
"""Steps with both the actual and the predicted entropy change a run needs for a correlation."""
MIN_POSITIVE_STEPS = 0.5
"""Claim 3b holds when more than this share of the steps has a positive batch covariance, on
average over the runs."""


def lemma1_status(corrs: Sequence[float]) -> str:
    """Claim 3 over the per-run correlations of Lemma 1 with the actual change."""
    return status(int(np.mean(corrs) >= LEMMA1_MIN_CORR), 1) if len(corrs) else NO_DATA


def lemma1_verdict(corrs: Sequence[float], most_steps: int) -> Verdict:
    """Claim 3 from the per-run correlations of Lemma 1 with the actual change (runs with
    too few or constant steps have none) and the probe steps of the longest run."""
    name = "3. Covariance drives entropy change (Lemma 1)"
    if not len(corrs):
        if most_steps < LEMMA1_MIN_STEPS:
            why = not_enough(most_steps, LEMMA1_MIN_STEPS, "probe steps in the longest run")
        else:
            why = "the actual or the predicted entropy change is constant in every run"
        return Verdict(name, NO_DATA, why)
    return Verdict(
        name,
        lemma1_status(corrs),
        f"mean per-run correlation of Lemma 1 with the actual change {np.mean(corrs):.2f} over "
        f"{len(corrs)} run{'s' * (len(corrs) != 1)} (held when >= {LEMMA1_MIN_CORR})",
    )


def positive_cov_status(fractions: Sequence[float]) -> str:
    """Claim 3b over the per-run shares of steps with a positive batch covariance."""
    return status(int(np.mean(fractions) > MIN_POSITIVE_STEPS), 1)


# ---- claim 4: Clip-Cov and KL-Cov end above GRPO ------------------------------------------

MIN_GAIN_SE = 2.0
"""Claim 4 holds for a method when its end sampled accuracy exceeds GRPO's by more than this
many standard errors (over seeds)."""


def gain_holds(diff: float, se: float) -> bool:
    """The method's end accuracy minus GRPO's, `diff`, is a gain beyond MIN_GAIN_SE * `se`
    (never with one seed, whose `se` is NaN)."""
    return bool(diff > MIN_GAIN_SE * se)


# ---- claim 5a: a and b do not depend on the algorithm -------------------------------------

MAX_METHOD_SPREAD = 0.15
"""Claim 5a holds on a task when the std of the methods' mean a, and of their mean b, is
under this share of the mean."""


def algorithm_verdict(spreads: Sequence[tuple[str, float, float]]) -> Verdict:
    """Claim 5a from (task, relative spread of a, relative spread of b) per task."""
    name = "5a. a and b do not depend on the RL algorithm"
    if not spreads:
        return Verdict(name, NO_DATA, "one method only")
    held = sum(a < MAX_METHOD_SPREAD and b < MAX_METHOD_SPREAD for _, a, b in spreads)
    detail = "; ".join(
        f"{t}: spread of method means / mean = {a:.0%} for a, {b:.0%} for b" for t, a, b in spreads
    )
    return Verdict(
        name,
        status(held, len(spreads)),
        detail + f" (held when both are under {MAX_METHOD_SPREAD:.0%})",
    )


# ---- claim 5b: a and b log-linear in model size -------------------------------------------

SIZE_MIN_R2 = 0.8
"""Claim 5b holds when the log-linear fits of a and b against size both reach this R²..."""
SIZE_MAX_ERROR = 0.05
"""...and, with a held-out size, its forecast ceiling is within this of the measured mean
(accuracy units; 3-8 times the seed std of a size's ceiling, 0.006-0.015, in
docs/results/size_law)."""


def size_law_holds(r2_a: float, r2_b: float, error: float | None) -> bool:
    """Claim 5b from the R² of a's and b's log-linear fits and, with a held-out size, the
    error of its forecast ceiling (None without one)."""
    return min(r2_a, r2_b) >= SIZE_MIN_R2 and (error is None or abs(error) <= SIZE_MAX_ERROR)


def size_law_rule(held_out: bool) -> str:
    """Claim 5b's rule, as the verdict states it."""
    return f"held when both R² >= {SIZE_MIN_R2}" + (
        f" and the held-out forecast is within {SIZE_MAX_ERROR}" if held_out else ""
    )


# ---- entropy control: the controller holds its target ---------------------------------------

CONTROL_MAX_MEAN_DEV = 0.03
"""A controlled run holds its target when, over the second half of its steps, the mean of
entropy/mean - control/target is within this (nats)..."""
CONTROL_MAX_DEV = 0.1
"""...and no step is further than this from the target (the step-to-step noise of a 128-
response batch's entropy on the embedded task is about 0.01-0.02 nats)."""


def control_holds(mean_dev: float, max_dev: float) -> bool:
    """One controlled run, from `stats.control_tracking`."""
    return abs(mean_dev) <= CONTROL_MAX_MEAN_DEV and max_dev <= CONTROL_MAX_DEV


def control_rule() -> str:
    return (
        f"held when, over the second half, |mean(H - target)| <= {CONTROL_MAX_MEAN_DEV} "
        f"and every |H - target| <= {CONTROL_MAX_DEV}"
    )
