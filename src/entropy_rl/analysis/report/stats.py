"""Small statistics the report needs across seeds and runs (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from entropy_rl.analysis.law import EntropyLawFit, fit_entropy_law
from entropy_rl.analysis.report.data import RunData
from entropy_rl.analysis.report.verdicts import LEMMA1_MIN_STEPS
from entropy_rl.runs.metric_keys import (
    CONTROL_TARGET,
    COV_LOGP_ADV,
    DH_ACTUAL,
    DH_LEMMA1,
    ENTROPY_MEAN,
    STEP,
    VAL_ACC,
)
from entropy_rl.runs.metrics_log import record_columns

END_EVALS = 3
"""Validation points averaged for a run's end accuracy (single points carry sampling noise)."""


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    """Mean, sample std (0 for one value) and count of the values that are not None/NaN."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), 0
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0, int(x.size)


def fmt(values: Sequence[float | None], digits: int = 3) -> str:
    """'mean ± std' over seeds ('mean' for one value, '–' for none)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "–"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_ceilings(fits: Sequence[EntropyLawFit]) -> str:
    """`fmt` of the fits' ceilings, flagged when some come from unreliable fits
    (`EntropyLawFit.caveat`): one fit gets its reason, several a count."""
    text = fmt([f.ceiling for f in fits])
    flagged = [f for f in fits if not f.reliable]
    if len(fits) == 1 and flagged:
        return fits[0].ceiling_text()
    if flagged:
        return f"{text} ({len(flagged)} of {len(fits)} unreliable)"
    return text


def spread_note(sizes: Sequence[int]) -> str:
    """How the values over a method's runs are summarised, given each group's run count."""
    if all(n == 1 for n in sizes):
        return "one run per method, so no spread over seeds"
    return "mean ± std over the runs (seeds) of each method"


def diff_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """mean(a) - mean(b) and its standard error (Welch); the error is NaN unless both have
    2+ values, the difference NaN when either is empty."""
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    if na == 0 or nb == 0:
        return float("nan"), float("nan")
    if na < 2 or nb < 2:
        return ma - mb, float("nan")
    return ma - mb, float(np.sqrt(sa**2 / na + sb**2 / nb))


def law_points(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """(H, R) at the run's validation steps: `entropy/mean` and `val/acc` of the same record."""
    h, acc = record_columns(run.records, ENTROPY_MEAN, VAL_ACC).T
    return h, acc


def law_steps(run: RunData) -> np.ndarray:
    """The steps of `law_points`' points."""
    return record_columns(run.records, STEP, ENTROPY_MEAN, VAL_ACC)[:, 0]


def fit_run(run: RunData) -> EntropyLawFit | None:
    h, r = law_points(run)
    try:
        return fit_entropy_law(h, r)
    except ValueError:
        return None


def fit_pooled(runs: Sequence[RunData]) -> EntropyLawFit | None:
    """One fit over the (H, R) points of all `runs` (e.g. the seeds of GRPO)."""
    points = [law_points(run) for run in runs]
    if not points:
        return None
    try:
        return fit_entropy_law(
            np.concatenate([p[0] for p in points]), np.concatenate([p[1] for p in points])
        )
    except ValueError:
        return None


def end_value(run: RunData, key: str, n: int = END_EVALS) -> float | None:
    """Mean of the last `n` values of `key` in the run (None when absent)."""
    _, values = run.column(key)
    return float(values[-n:].mean()) if values.size else None


def smoothed_at(run: RunData, key: str, fraction: float, window: int = 5) -> float | None:
    """Mean of `key` over `window` records around `fraction` of the run."""
    _, values = run.column(key)
    if values.size == 0:
        return None
    center = round(fraction * (values.size - 1))
    low = max(0, min(center - window // 2, values.size - window))
    return float(values[low : low + window].mean())


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation, NaN with fewer than 3 points or a constant input."""
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def loglinear(params: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Least squares of values = slope * log10(params) + intercept: (slope, intercept, R²)."""
    x = np.log10(params)
    slope, intercept = np.polyfit(x, values, 1)
    residual = values - (slope * x + intercept)
    total = ((values - values.mean()) ** 2).sum()
    r2 = 1.0 - float((residual**2).sum() / total) if total > 0 else 1.0
    return float(slope), float(intercept), r2


def lemma1_agreement(records: list[dict]) -> dict[str, float] | None:
    """Correlation of Lemma 1's predicted and the actual entropy change across steps, and the
    fraction of the actual change's variance it explains (1 - SS_res / SS_tot)."""
    pairs = record_columns(records, DH_ACTUAL, DH_LEMMA1)
    if len(pairs) < LEMMA1_MIN_STEPS or np.std(pairs[:, 0]) == 0 or np.std(pairs[:, 1]) == 0:
        return None
    actual, predicted = pairs.T
    ss_tot = float(((actual - actual.mean()) ** 2).sum())
    return {
        "corr": float(np.corrcoef(actual, predicted)[0, 1]),
        "var_explained": 1.0 - float(((actual - predicted) ** 2).sum()) / ss_tot,
        "n": len(pairs),
    }


@dataclass(frozen=True)
class SizeLaw:
    """The law's coefficients against model size (claim 5b): a and b (means over each size's
    runs), their log-linear fits over the first `n_fitted` sizes, and the ceiling they
    predict at `x_next` = log10(parameters): the largest size when it is held out (4+ sizes),
    else one step beyond it; with a held-out size, its measured ceilings and the error."""

    a: np.ndarray  # (S,) over the sizes, ascending
    b: np.ndarray  # (S,)
    n_fitted: int
    line_a: tuple[float, float, float]  # slope, intercept, R² in log10(parameters)
    line_b: tuple[float, float, float]
    x_next: float
    predicted: float
    measured: list[float] | None
    error: float | None  # mean measured - predicted ceiling at the held-out size


def size_law(params: np.ndarray, fits: dict) -> SizeLaw:
    """`SizeLaw` from the ascending parameter counts and each one's law fits (`fits[p]`)."""
    a = np.array([np.mean([f.a for f in fits[p]]) for p in params])
    b = np.array([np.mean([f.b for f in fits[p]]) for p in params])
    held_out = len(params) >= 4
    n = len(params) - 1 if held_out else len(params)
    line_a, line_b = loglinear(params[:n], a[:n]), loglinear(params[:n], b[:n])
    x_next = np.log10(params[-1]) if held_out else 2 * np.log10(params[-1]) - np.log10(params[-2])
    predicted = (line_b[0] * x_next + line_b[1]) - (line_a[0] * x_next + line_a[1])
    measured = [f.ceiling for f in fits[params[-1]]] if held_out else None
    error = float(np.mean(measured)) - predicted if held_out else None
    return SizeLaw(a, b, n, line_a, line_b, x_next, predicted, measured, error)


def mean_curve(
    runs: list[RunData], key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps every run logged `key` at, and the mean, min and max over runs there."""
    columns = [dict(zip(*run.column(key), strict=True)) for run in runs]
    steps = sorted(set.intersection(*(set(c) for c in columns))) if columns else []
    values = np.array([[c[s] for s in steps] for c in columns])  # (runs, steps)
    if not steps:
        return np.empty(0), np.empty(0), np.empty(0), np.empty(0)
    return np.array(steps), values.mean(0), values.min(0), values.max(0)


def position_profile(profiles: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Per response position, the mean over `profiles` (entropy/by_position lists, which may
    differ in length) of the values there, and how many profiles hold one: shorter lists
    are padded with NaN (no token there, as the trainer logs a position no response reached),
    and each position's mean is over the finite values only (NaN where there are none)."""
    width = max((len(p) for p in profiles), default=0)
    values = np.full((len(profiles), width), np.nan)  # (runs, T)
    for row, profile in zip(values, profiles, strict=True):
        row[: len(profile)] = [np.nan if v is None else v for v in profile]
    finite = np.isfinite(values)
    counts = finite.sum(0)
    sums = np.where(finite, values, 0.0).sum(0)
    return np.divide(sums, counts, out=np.full(width, np.nan), where=counts > 0), counts


def lemma_columns(runs: list[RunData]) -> tuple[np.ndarray, ...]:
    """Per step: actual and Lemma-1 entropy change on the probe states, and the rollout
    batch's covariance (the same step's records)."""
    rows = [
        (r[DH_ACTUAL], r[DH_LEMMA1], r.get(COV_LOGP_ADV, np.nan))
        for run in runs
        for r in run.records
        if r.get(DH_LEMMA1) is not None and r.get(DH_ACTUAL) is not None
    ]
    actual, predicted, cov = np.asarray(rows, dtype=float).reshape(-1, 3).T
    return actual, predicted, cov


def method_spread(fits_by_method: Sequence[Sequence[EntropyLawFit]]) -> tuple[float, float] | None:
    """Claim 5a's numbers: the std over methods of each method's mean a, and of its mean b,
    over the mean (relative spreads); None with fewer than 2 methods with fits."""
    means_b = [np.mean([f.b for f in fits]) for fits in fits_by_method if fits]
    means_a = [np.mean([f.a for f in fits]) for fits in fits_by_method if fits]
    if len(means_b) < 2:
        return None
    return np.std(means_a) / abs(np.mean(means_a)), np.std(means_b) / abs(np.mean(means_b))


def control_deviations(records: Sequence[dict], target: float | None = None) -> np.ndarray | None:
    """entropy/mean - its target over the rows of the second half of a run's steps, the
    target being a row's control/target or, for a row without one, `target` (None: such rows
    are left out); None when no row has a target or the last one has no entropy."""
    rows = [r for r in records if r.get(CONTROL_TARGET, target) is not None]
    if not rows or rows[-1].get(ENTROPY_MEAN) is None:
        return None
    half = rows[-1]["step"] / 2
    return np.array(
        [
            r[ENTROPY_MEAN] - r.get(CONTROL_TARGET, target)
            for r in rows
            if r["step"] >= half and r.get(ENTROPY_MEAN) is not None
        ]
    )


def control_tracking(run: RunData) -> tuple[float, float] | None:
    """(mean of entropy/mean - control/target, largest |entropy/mean - control/target|) over
    the rows of the second half of a controlled run's steps (`control_deviations`); None for
    a run without the controller."""
    dev = control_deviations(run.records)
    return None if dev is None else (float(dev.mean()), float(np.abs(dev).max()))
