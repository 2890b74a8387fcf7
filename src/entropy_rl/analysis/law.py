"""The entropy-performance law of Cui et al. (2025, arXiv 2505.22617): R = -a * exp(H) + b.

R is validation performance (`val/acc`), H the policy entropy (`entropy/mean`) at the same
step. The law is linear in (a, b) once x = exp(H) is computed, so it is fitted by ordinary
least squares, and its ceiling R(H = 0) = b - a is the fitted mean at x = 1.

Departures from the paper:
1. The paper reports point estimates only; we add an analytic confidence interval for the
   ceiling (see `EntropyLawFit`).
2. The forecast fits the first `fit_fraction` of the *points* (records with both H and R)
   when it has no steps, and of the training steps when it has them (`fit_size_by_step`);
   with validation every k steps the two agree up to rounding.
3. `forecast_noise` gives the forecast's error when the law is exact and only the
   validation draw is noisy: the bar an early fit's miss is measured against.

numpy and scipy only: no torch, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import stdtrit  # Student-t quantile; lighter to import than scipy.stats

DEFAULT_FIT_FRACTION = 0.15
"""Share of the points fitted by `forecast`; the paper fits 36 of ~240 steps."""
DEFAULT_CI_LEVEL = 0.95
"""Confidence level of the ceiling's interval."""
MIN_POINTS = 3
"""Fewest points a fit accepts: two parameters plus one degree of freedom for the CI."""
RELIABLE_MIN_POINTS = 5
"""A ceiling fitted on fewer points is flagged unreliable wherever it is shown: with two
parameters, three or four noisy points can put b - a almost anywhere."""
RELIABLE_MIN_R2 = 0.8
"""A ceiling from a fit with a lower R² is flagged unreliable: the law does not describe the
points well, so its extrapolation to H = 0 means little."""
_CEIL_SLACK = 1e-9
"""Absorbs float error in fit_fraction * n (0.1 * 30 = 3.0000000000000004 must give 3)."""


def fit_caveat(n: int, r2: float) -> str | None:
    """Why a fit of n points with this R² gives an unreliable ceiling, or None (see
    RELIABLE_MIN_POINTS, RELIABLE_MIN_R2)."""
    reasons = []
    if n < RELIABLE_MIN_POINTS:
        reasons.append(f"{n} points < {RELIABLE_MIN_POINTS}")
    if r2 < RELIABLE_MIN_R2:
        reasons.append(f"R² {r2:.2f} < {RELIABLE_MIN_R2}")
    return ", ".join(reasons) or None


def ceiling_text(ceiling: float, n: int, r2: float, digits: int = 3) -> str:
    """The ceiling as text, followed by "(unreliable: <why>)" when `fit_caveat` has a reason."""
    text, caveat = f"{ceiling:.{digits}f}", fit_caveat(n, r2)
    return text if caveat is None else f"{text} (unreliable: {caveat})"


@dataclass(frozen=True)
class EntropyLawFit:
    """A least-squares fit of R = -a * exp(H) + b (Cui et al. 2025, the entropy-performance law).

    The fit is ordinary least squares of R on x = exp(H), R = b + (-a) * x. The ceiling
    b - a is the fitted mean at x = exp(0) = 1, so `ceiling_ci` is the textbook confidence
    interval of a regression mean at x = 1:

        ceiling +/- t_{(1 + ci_level) / 2, n - 2} * s * sqrt(1/n + (1 - xbar)^2 / Sxx),

    with s^2 = SS_res / (n - 2), xbar the mean of exp(H) and Sxx = sum (x - xbar)^2. It is
    analytic (no bootstrap) and assumes independent, equal-variance Gaussian noise on R
    around the law; it says nothing about whether the law itself holds. Since H = 0 lies
    below every observed entropy, the interval is an extrapolation and widens with the gap.
    A fit with fewer than RELIABLE_MIN_POINTS points or R² below RELIABLE_MIN_R2 is flagged
    (`reliable`, `caveat`), and every display of its ceiling says so.

    Attributes:
        a: Conversion rate from entropy to performance (positive when R rises as H falls).
        b: Offset; R tends to b - a * exp(H).
        ceiling: b - a, the predicted R at H = 0.
        ceiling_ci: (low, high) confidence interval of the ceiling.
        ci_level: Confidence level of `ceiling_ci`, in (0, 1).
        r2: Coefficient of determination 1 - SS_res / SS_tot (1.0 for constant R, which
            the law fits exactly with a = 0).
        rmse: Root mean squared residual, sqrt(mean((R - R_hat)^2)), in units of R.
        n: Number of points fitted.
    """

    a: float
    b: float
    ceiling: float
    ceiling_ci: tuple[float, float]
    ci_level: float
    r2: float
    rmse: float
    n: int

    @property
    def caveat(self) -> str | None:
        """Why the ceiling should not be trusted, e.g. "3 points < 5, R² 0.37 < 0.8"; None
        when the fit has RELIABLE_MIN_POINTS points or more and R² >= RELIABLE_MIN_R2."""
        return fit_caveat(self.n, self.r2)

    @property
    def reliable(self) -> bool:
        """False when `caveat` has a reason."""
        return self.caveat is None

    def ceiling_text(self, digits: int = 3) -> str:
        """The ceiling, followed by "(unreliable: <caveat>)" when it is flagged."""
        return ceiling_text(self.ceiling, self.n, self.r2, digits)

    def predict(self, entropy: float | np.ndarray) -> np.ndarray:
        """R predicted by the law at `entropy` (scalar or array); returns an array."""
        return self.b - self.a * np.exp(np.asarray(entropy, dtype=float))

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """Plain JSON-ready values, with `reliable` and `caveat`."""
        out = asdict(self)
        out["ceiling_ci"] = list(self.ceiling_ci)
        out["reliable"], out["caveat"] = self.reliable, self.caveat
        return out


@dataclass(frozen=True, eq=False)
class EntropyLawForecast:
    """The law fitted on the first points of a run and checked on the rest (the paper's test).

    Compared by identity (`eq=False`): it holds an array.

    Attributes:
        fit: The fit on the first `n_fit` points.
        fit_fraction: Requested share of points to fit.
        n_fit: Points fitted: max(ceil(fit_fraction * n), MIN_POINTS).
        n_heldout: Points predicted, n - n_fit.
        rmse_heldout: sqrt(mean((predicted - actual)^2)) over the held-out points.
        final_error: predicted - actual at the last point (signed; positive = optimistic).
        predicted: R predicted at each held-out point, shape (n_heldout,), read-only.
    """

    fit: EntropyLawFit
    fit_fraction: float
    n_fit: int
    n_heldout: int
    rmse_heldout: float
    final_error: float
    predicted: np.ndarray

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready values."""
        return {
            "fit": self.fit.to_dict(),
            "fit_fraction": self.fit_fraction,
            "n_fit": self.n_fit,
            "n_heldout": self.n_heldout,
            "rmse_heldout": self.rmse_heldout,
            "final_error": self.final_error,
            "predicted": self.predicted.tolist(),
        }


def _check_level(name: str, value: float) -> float:
    """`value` as a float if strictly between 0 and 1, else ValueError naming `name`."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def _as_series(entropy: object, reward: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D float arrays (H, R) of equal length >= MIN_POINTS, all finite."""
    h = np.asarray(entropy, dtype=float)
    r = np.asarray(reward, dtype=float)
    for name, arr in (("entropy", h), ("reward", r)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if h.shape != r.shape:
        raise ValueError(f"entropy and reward differ in length: {h.size} vs {r.size}")
    if h.size < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} points to fit the law, got {h.size}")
    return h, r


def fit_entropy_law(
    entropy: np.ndarray, reward: np.ndarray, *, ci_level: float = DEFAULT_CI_LEVEL
) -> EntropyLawFit:
    """Fit R = -a * exp(H) + b by least squares (Cui et al. 2025, the entropy-performance law).

    Closed-form simple regression of R on x = exp(H); see `EntropyLawFit` for the
    ceiling's interval.

    Args:
        entropy: Policy entropy H at each point, shape (n,).
        reward: Performance R at the same points, shape (n,).
        ci_level: Confidence level of the ceiling's interval, in (0, 1).

    Raises:
        ValueError: Fewer than MIN_POINTS points, non-1-D or mismatched inputs, NaN or
            infinite values, constant entropy, or ci_level outside (0, 1).
    """
    ci_level = _check_level("ci_level", ci_level)
    h, r = _as_series(entropy, reward)
    x = np.exp(h)
    n = x.size
    x_mean, r_mean = x.mean(), r.mean()
    sxx = float(np.sum((x - x_mean) ** 2))
    if np.ptp(x) == 0.0 or not sxx > 0.0:  # equal x can still leave a rounding-sized sxx
        raise ValueError("entropy is constant, so exp(H) has zero variance and a is undefined")
    slope = float(np.sum((x - x_mean) * (r - r_mean))) / sxx
    intercept = float(r_mean - slope * x_mean)
    residual = r - (intercept + slope * x)
    ss_res = float(np.sum(residual**2))
    ss_tot = float(np.sum((r - r_mean) ** 2))
    ceiling = intercept + slope  # fitted mean at x = exp(0) = 1
    s = math.sqrt(ss_res / (n - 2))
    se = s * math.sqrt(1.0 / n + (1.0 - x_mean) ** 2 / sxx)
    half = float(stdtrit(n - 2, 0.5 + ci_level / 2.0)) * se
    return EntropyLawFit(
        a=-slope,
        b=intercept,
        ceiling=ceiling,
        ceiling_ci=(ceiling - half, ceiling + half),
        ci_level=ci_level,
        r2=_r_squared(ss_res, ss_tot),
        rmse=math.sqrt(ss_res / n),
        n=n,
    )


def _r_squared(ss_res: float, ss_tot: float) -> float:
    """1 - SS_res / SS_tot; for constant R (SS_tot = 0) 1.0 if the fit is exact, else 0.0."""
    if ss_tot > 0.0:
        return 1.0 - ss_res / ss_tot
    return 1.0 if math.isclose(ss_res, 0.0, abs_tol=1e-24) else 0.0


def fit_size(n: int, fit_fraction: float = DEFAULT_FIT_FRACTION) -> int:
    """Points `forecast` fits out of n: max(ceil(fit_fraction * n), MIN_POINTS).

    May be >= n, in which case no point is left to forecast.

    Raises:
        ValueError: fit_fraction outside (0, 1).
    """
    fit_fraction = _check_level("fit_fraction", fit_fraction)
    return max(math.ceil(fit_fraction * n - _CEIL_SLACK), MIN_POINTS)


def fit_size_by_step(steps: np.ndarray, fit_fraction: float = DEFAULT_FIT_FRACTION) -> int:
    """Points `forecast` fits when it is given their steps: those within the first
    `fit_fraction` of the last point's step (as the paper counts its early fit, in steps),
    and at least MIN_POINTS. `steps`: increasing, shape (n,)."""
    fit_fraction = _check_level("fit_fraction", fit_fraction)
    s = np.asarray(steps, dtype=np.float64)
    within = int(np.sum(s - s[0] <= fit_fraction * (s[-1] - s[0]) + _CEIL_SLACK))
    return max(within, MIN_POINTS)


def forecast(
    entropy: np.ndarray,
    reward: np.ndarray,
    fit_fraction: float = DEFAULT_FIT_FRACTION,
    *,
    ci_level: float = DEFAULT_CI_LEVEL,
    steps: np.ndarray | None = None,
) -> EntropyLawForecast:
    """Fit the law on the first points of a run and predict the rest (Cui et al. 2025).

    The paper fits the first ~15% of steps (36 of ~240) and predicts the remaining
    performance from the entropy alone with ~1% RMSE. Points are taken in the given order.

    Args:
        entropy: Policy entropy H at each point, in training order, shape (n,).
        reward: Performance R at the same points, shape (n,).
        fit_fraction: Share of the points to fit, in (0, 1); see `fit_size`. With `steps`,
            the share of the steps instead (`fit_size_by_step`): the same points when the
            run evaluates at a constant interval, more when it evaluates densely early on.
        ci_level: Confidence level of the ceiling's interval, in (0, 1).
        steps: The step of each point, shape (n,); None: the points are evenly spaced.

    Raises:
        ValueError: As `fit_entropy_law`, or when fitting leaves no point to predict.
    """
    h, r = _as_series(entropy, reward)
    if steps is None:
        n_fit = fit_size(h.size, fit_fraction)
    elif len(steps) != h.size:
        raise ValueError(f"steps has {len(steps)} values for {h.size} points")
    else:
        n_fit = fit_size_by_step(steps, fit_fraction)
    if n_fit >= h.size:
        raise ValueError(
            f"fitting {n_fit} of {h.size} points leaves none to forecast; "
            "use more points or a smaller fit_fraction"
        )
    fit = fit_entropy_law(h[:n_fit], r[:n_fit], ci_level=ci_level)
    predicted = fit.predict(h[n_fit:])
    predicted.flags.writeable = False
    error = predicted - r[n_fit:]
    return EntropyLawForecast(
        fit=fit,
        fit_fraction=float(fit_fraction),
        n_fit=n_fit,
        n_heldout=int(h.size - n_fit),
        rmse_heldout=float(np.sqrt(np.mean(error**2))),
        final_error=float(error[-1]),
        predicted=predicted,
    )


@dataclass(frozen=True, eq=False)
class ForecastNoise:
    """What `forecast` misses by when the law holds exactly and each validation point is a
    binomial draw: the early fit's noise floor (compared by identity; it holds arrays).

    Attributes:
        draws: Samples behind each validation point (prompts x samples).
        rmse_heldout: Held-out RMSE of each simulated forecast, shape (sims,).
        final_error: Its signed error at the last point, shape (sims,).
    """

    draws: int
    rmse_heldout: np.ndarray
    final_error: np.ndarray

    def rmse_quantile(self, q: float) -> float:
        """The q-quantile of the simulated held-out RMSE."""
        return float(np.quantile(self.rmse_heldout, q))


def forecast_noise(
    entropy: np.ndarray,
    reward: np.ndarray,
    draws: int,
    rng: np.random.Generator,
    *,
    sims: int = 200,
    fit_fraction: float = DEFAULT_FIT_FRACTION,
    steps: np.ndarray | None = None,
) -> ForecastNoise:
    """The early forecast's error from sampling noise alone (a parametric bootstrap).

    The law fitted on the whole run is taken as true; each simulated run keeps the entropy
    path and draws each R as Binomial(draws, p) / draws at the law's p; `forecast` then fits
    its early points and predicts the rest. Entropy is taken as exact (it averages over the
    batch's tokens). An observed miss well above these is a bias of the early fit, not noise:
    the early points' own slope differs from the whole run's, and the forecast extrapolates it
    to the lower exp(H) of the rest of the run.

    Args:
        entropy, reward: The run's points, as for `forecast`.
        draws: Samples behind each validation point, >= 1.
        rng: Source of the binomial draws.
        sims: Simulated runs, >= 2.
        fit_fraction, steps: As for `forecast`.

    Raises:
        ValueError: As `forecast`, or draws < 1 or sims < 2.
    """
    if draws < 1 or sims < 2:
        raise ValueError(f"forecast_noise needs draws >= 1 and sims >= 2, got {draws}, {sims}")
    h, r = _as_series(entropy, reward)
    p = np.clip(fit_entropy_law(h, r).predict(h), 0.0, 1.0)  # (n,)
    simulated = rng.binomial(draws, p, size=(sims, h.size)) / draws  # (sims, n)
    runs = [forecast(h, r_sim, fit_fraction, steps=steps) for r_sim in simulated]
    return ForecastNoise(
        draws=int(draws),
        rmse_heldout=np.array([f.rmse_heldout for f in runs]),
        final_error=np.array([f.final_error for f in runs]),
    )
