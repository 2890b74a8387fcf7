"""Figures of the entropy-performance law R = -a * exp(H) + b (Cui et al. 2025).

Built on `matplotlib.figure.Figure` directly, never pyplot, so nothing touches matplotlib's
global backend or figure registry; PNG rendering goes through Agg.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from entropy_rl.analysis.law import EntropyLawFit, EntropyLawForecast
from entropy_rl.analysis.readers import LogSeries
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.metric_keys import (
    COV_LOGP_ADV,
    DH_ACTUAL,
    DH_LEMMA1,
    ENTROPY_MEAN,
    REWARD_MEAN,
    STEP,
    VAL_ACC,
    VAL_ACC_GREEDY,
    VAL_PASS_AT_K,
)
from entropy_rl.runs.metrics_log import record_columns

FIGSIZE = (15.0, 4.6)
"""Inches, width by height, of the three-panel figure."""
DPI = 120
"""Resolution of the PNG."""
CURVE_POINTS = 200
"""Points on each drawn law curve."""


def plot_entropy_law(
    series: LogSeries,
    fit: EntropyLawFit,
    forecast: EntropyLawForecast | None,
    path: str | Path,
) -> Path:
    """Write a PNG of the law fitted to `series`, with three panels, atomically to `path`.

    (a) R against H, colored by step, the fitted curve over H extended to 0, the ceiling
    b - a as a dashed line with its confidence band and, given a forecast, the early-fit
    curve with the points it used; (b) R against step, with the law's prediction;
    (c) H against step. Given a forecast, (b) and (c) mark where its fit ends.

    Returns:
        The path written.
    """
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax_law, ax_reward, ax_entropy = fig.subplots(1, 3)
    _draw_law(fig, ax_law, series, fit, forecast)
    _draw_reward(ax_reward, series, fit, forecast)
    _draw_entropy(ax_entropy, series, forecast)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return write_atomic(path, buf.getvalue())


def _step_label(series: LogSeries) -> str:
    """Axis label of the step: its key, or the record index when the log had none."""
    return f"step ({series.step_key})" if series.step_key else "record index"


def _draw_law(
    fig: Figure,
    ax: Axes,
    series: LogSeries,
    fit: EntropyLawFit,
    forecast: EntropyLawForecast | None,
) -> None:
    """Panel (a): R vs H, the fitted law down to H = 0, and the ceiling with its CI."""
    points = ax.scatter(series.entropy, series.reward, c=series.steps, cmap="viridis", s=22)
    fig.colorbar(points, ax=ax, label=_step_label(series))
    grid = np.linspace(min(0.0, series.entropy.min()), series.entropy.max() * 1.05, CURVE_POINTS)
    ax.plot(grid, fit.predict(grid), color="C0", label=f"law, all {fit.n} points")
    low, high = fit.ceiling_ci
    ax.axhspan(low, high, color="C3", alpha=0.15, lw=0)
    ax.axhline(
        fit.ceiling,
        color="C3",
        ls="--",
        label=f"ceiling b-a = {fit.ceiling:.3f} [{low:.3f}, {high:.3f}] ({fit.ci_level:.0%} CI)",
    )
    if forecast is not None:
        n_fit = forecast.n_fit
        ax.plot(grid, forecast.fit.predict(grid), color="C1", ls=":", label="law, early fit")
        ax.scatter(
            series.entropy[:n_fit],
            series.reward[:n_fit],
            facecolors="none",
            edgecolors="C1",
            s=70,
            label=f"early-fit points (first {n_fit})",
        )
    ax.set_xlabel(f"H ({series.entropy_key})")
    ax.set_ylabel(f"R ({series.reward_key})")
    ax.set_title(f"(a) R = -a exp(H) + b: a = {fit.a:.3f}, b = {fit.b:.3f}, R² = {fit.r2:.3f}")
    ax.legend(fontsize="small", loc="lower left")


def _draw_reward(
    ax: Axes, series: LogSeries, fit: EntropyLawFit, forecast: EntropyLawForecast | None
) -> None:
    """Panel (b): R vs step, with the law's R at each step's entropy."""
    ax.plot(series.steps, series.reward, "o", color="k", ms=3.5, label="observed")
    ax.plot(series.steps, fit.predict(series.entropy), color="C0", label="law, all points")
    if forecast is not None:
        held_out = series.steps[forecast.n_fit :]
        ax.plot(held_out, forecast.predicted, color="C1", ls=":", label="forecast, early fit")
        _mark_fit_end(ax, series, forecast)
    ax.set_xlabel(_step_label(series))
    ax.set_ylabel(f"R ({series.reward_key})")
    ax.set_title(f"(b) {series.reward_key} over training")
    ax.legend(fontsize="small", loc="lower right")


def _draw_entropy(ax: Axes, series: LogSeries, forecast: EntropyLawForecast | None) -> None:
    """Panel (c): H vs step."""
    ax.plot(series.steps, series.entropy, "o-", color="C2", ms=3.5, lw=1)
    if forecast is not None:
        _mark_fit_end(ax, series, forecast)
        ax.legend(fontsize="small", loc="upper right")
    ax.set_xlabel(_step_label(series))
    ax.set_ylabel(f"H ({series.entropy_key})")
    ax.set_title(f"(c) {series.entropy_key} over training")


def _mark_fit_end(ax: Axes, series: LogSeries, forecast: EntropyLawForecast) -> None:
    """Vertical line halfway between the last fitted step and the first held-out one."""
    n_fit = forecast.n_fit
    cut = 0.5 * (series.steps[n_fit - 1] + series.steps[n_fit])
    ax.axvline(
        cut, color="C1", ls="--", lw=1, label=f"early fit ends ({forecast.fit_fraction:.0%})"
    )


def _column(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = record_columns(records, STEP, key).T
    return steps, values


def plot_run_dynamics(records: list[dict], path: str | Path, title: str = "") -> Path:
    """Write a PNG of a training run's dynamics from its metrics.jsonl records.

    (a) validation accuracy (sampled, greedy, pass@k) and training reward against step;
    (b) policy entropy against step; (c) the batch covariance Cov(log pi, A) against step;
    (d) Lemma 1's predicted entropy change against the actual one on the probe states.
    """
    fig = Figure(figsize=(18.0, 4.4))
    ax_acc, ax_h, ax_cov, ax_lemma = fig.subplots(1, 4)
    for key in (VAL_ACC, VAL_ACC_GREEDY, VAL_PASS_AT_K, REWARD_MEAN):
        steps, values = _column(records, key)
        ax_acc.plot(
            steps,
            values,
            marker="." if key != REWARD_MEAN else None,
            label=key,
            alpha=1.0 if key != REWARD_MEAN else 0.4,
        )
    ax_acc.set(xlabel="step", ylabel="accuracy", title="(a) accuracy")
    ax_acc.legend(fontsize=8)
    ax_h.plot(*_column(records, ENTROPY_MEAN))
    ax_h.set(xlabel="step", ylabel="entropy/mean (nats)", title="(b) policy entropy")
    steps, cov = _column(records, COV_LOGP_ADV)
    ax_cov.plot(steps, cov, lw=0.8)
    ax_cov.axhline(0.0, color="grey", lw=0.8)
    ax_cov.set(xlabel="step", ylabel=COV_LOGP_ADV, title="(c) Cov(log pi, A) per step")
    _draw_lemma1(ax_lemma, records)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return write_atomic(path, buffer.getvalue())


def _draw_lemma1(ax: Axes, records: list[dict]) -> None:
    pairs = record_columns(records, DH_ACTUAL, DH_LEMMA1)
    ax.set(xlabel="actual dH on probe states", ylabel="Lemma-1 dH", title="(d) Lemma 1")
    if len(pairs) == 0:
        return
    actual, predicted = pairs.T
    ax.scatter(actual, predicted, s=8)
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="y = x")
    ax.legend(fontsize=8)
