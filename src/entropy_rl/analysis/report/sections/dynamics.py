"""Sections 1 and 2: entropy and accuracy over training (claim 1), and the law R = -a exp(H)
+ b with its early forecast."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.law import (
    RELIABLE_MIN_POINTS,
    RELIABLE_MIN_R2,
    EntropyLawFit,
    EntropyLawForecast,
    fit_size_by_step,
    forecast,
    forecast_noise,
)
from entropy_rl.analysis.report.data import RunData, group_runs
from entropy_rl.analysis.report.sections.base import (
    Section,
    _main_runs,
    _methods,
    _plot_spread,
    _reference,
    _tasks,
)
from entropy_rl.analysis.report.stats import (
    fit_pooled,
    fit_run,
    fmt,
    law_points,
    law_steps,
    smoothed_at,
)
from entropy_rl.analysis.report.verdicts import (
    EARLY,
    NOISE_QUANTILE,
    SATURATION,
    SMOOTH_ACCURACY,
    SMOOTH_ENTROPY,
    Verdict,
    collapse_holds,
    collapse_shares,
    law_verdict,
    not_enough,
    status,
)
from entropy_rl.runs.metric_keys import ENTROPY_MEAN, VAL_ACC

# ---- 1. dynamics ---------------------------------------------------------------------------


def section_dynamics(runs: list[RunData]) -> Section:
    """Entropy and validation accuracy against step, per method: mean and range over seeds;
    and claim 1 (entropy collapses early, performance saturates) on the reference runs."""
    section = Section("1. Entropy and validation accuracy over training")
    for task in _tasks(runs):
        task_runs = _main_runs(runs, task)
        fig = Figure(figsize=(13, 4.2), layout="constrained")
        axes = fig.subplots(1, 2)
        for color, method in enumerate(_methods(task_runs)):
            group = [r for r in task_runs if r.method == method]
            for ax, key in zip(axes, (ENTROPY_MEAN, VAL_ACC), strict=True):
                _plot_spread(ax, group, key, color, f"{method} (n={len(group)})")
        axes[0].set(xlabel="step", ylabel="entropy/mean (nats)", title=f"{task}: policy entropy")
        axes[1].set(xlabel="step", ylabel=VAL_ACC, title=f"{task}: validation accuracy (sampled)")
        axes[1].legend(fontsize="small")
        section.figure(f"dynamics_{task}.png", fig)
    sizes = [len(g) for g in group_runs(runs, "task", "size", "method").values()]
    section.text(
        "One line per run: no spread to show."
        if all(n == 1 for n in sizes)
        else "Lines: mean over the runs (seeds) of each method; bands: min to max over them."
    )
    section.verdicts.append(_claim1(runs, section))
    return section


def _claim1(runs: list[RunData], section: Section) -> Verdict:
    rows, held, total = [], 0, 0
    for task in _tasks(runs):
        reference = _reference(_main_runs(runs, task))
        early, late = [], []
        for run in reference:
            shares = collapse_shares(
                tuple(smoothed_at(run, ENTROPY_MEAN, f, SMOOTH_ENTROPY) for f in (0.0, EARLY, 1.0)),
                tuple(
                    smoothed_at(run, VAL_ACC, f, SMOOTH_ACCURACY) for f in (0.0, SATURATION, 1.0)
                ),
            )
            if shares is None:
                continue
            early.append(shares[0])
            late.append(shares[1])
        if not early:
            continue
        total += 1
        ok = collapse_holds(early, late)
        held += ok
        rows.append((task, fmt(early, 2), fmt(late, 2), "yes" if ok else "no"))
    section.table(
        [
            "task",
            f"share of the entropy drop done by {EARLY:.0%} of steps",
            f"share of the accuracy gain after {SATURATION:.0%} of steps",
            "claim 1 held",
        ],
        rows,
    )
    section.text(
        "Claim 1 counts as held when, on the reference runs, at least half the entropy drop "
        f"happens in the first {EARLY:.0%} of steps and at most a third of the accuracy gain "
        f"comes after {SATURATION:.0%} of them (smoothed over {SMOOTH_ENTROPY} entropy / "
        f"{SMOOTH_ACCURACY} accuracy points)."
    )
    detail = "; ".join(f"{t}: early drop {e}, late gain {g}" for t, e, g, _ in rows)
    return Verdict(
        "1. Entropy collapses early and performance saturates",
        status(held, total),
        detail or _claim1_no_data(runs),
    )


def _claim1_no_data(runs: list[RunData]) -> str:
    """Why no reference run gave claim 1 its shares: too few points, or nothing moved."""
    reference = [r for task in _tasks(runs) for r in _reference(_main_runs(runs, task))]
    most = {key: max(r.column(key)[1].size for r in reference) for key in (ENTROPY_MEAN, VAL_ACC)}
    longest = "in the longest reference run"
    if most[ENTROPY_MEAN] <= SMOOTH_ENTROPY:
        return not_enough(most[ENTROPY_MEAN], SMOOTH_ENTROPY + 1, f"entropy points {longest}")
    if most[VAL_ACC] <= SMOOTH_ACCURACY:
        return not_enough(most[VAL_ACC], SMOOTH_ACCURACY + 1, f"validation points {longest}")
    return "the entropy or the accuracy does not move in any reference run"


# ---- 2. the law and its early forecast ------------------------------------------------------


def section_law(runs: list[RunData]) -> Section:
    """R against H for the reference runs with the fitted law and ceiling; the 15% forecast."""
    section = Section("2. The entropy-performance law R = -a exp(H) + b")
    rows, bends, numbers = [], [], []
    for task in _tasks(runs):
        reference = _reference(_main_runs(runs, task))
        pooled = fit_pooled(reference)
        if pooled is None:
            continue
        fig = Figure(figsize=(6.5, 4.6), layout="constrained")
        ax = fig.subplots()
        for i, run in enumerate(reference):
            h, r = law_points(run)
            ax.scatter(h, r, s=14, color=f"C{i}", label=_run_label(run))
            row, bend, *values = _forecast_row(task, run)
            rows.append(row)
            bends += [bend] if bend else []
            numbers.append(values)
        top = np.concatenate([law_points(r)[0] for r in reference]).max()
        grid = np.linspace(0, top * 1.05, 200)
        ax.plot(grid, pooled.predict(grid), color="k", label=f"law, pooled (R² {pooled.r2:.2f})")
        ax.axhline(
            pooled.ceiling, color="C3", ls="--", label=f"ceiling b-a = {pooled.ceiling_text()}"
        )
        ax.axhspan(*pooled.ceiling_ci, color="C3", alpha=0.12, lw=0)
        ax.set(xlabel="H (entropy/mean)", ylabel="R (val/acc)", title=f"{task}: reference runs")
        ax.legend(fontsize="small")
        section.figure(f"law_{task}.png", fig)
        pooled_over = "pooled fit" if len(reference) > 1 else "fit"
        section.text(
            f"{task}: {pooled_over} a = {pooled.a:.3f}, b = {pooled.b:.3f}, ceiling "
            f"{pooled.ceiling_text()} [{pooled.ceiling_ci[0]:.3f}, {pooled.ceiling_ci[1]:.3f}] "
            f"(95% CI), R² {pooled.r2:.3f}, over {pooled.n} points."
        )
    section.table(
        [
            "task",
            "run",
            "a",
            "b",
            "ceiling b-a",
            "R²",
            "points fitted early",
            "RMSE on the rest",
            f"RMSE from noise alone ({NOISE_QUANTILE:.0%})",
            "mean error on the rest",
            "final error",
        ],
        rows,
    )
    section.text(
        "Early fit: the law fitted on the validation points of the first 15% of each run's "
        "steps (at least 3), predicting the rest from entropy alone; the paper reports about "
        "1% RMSE. Errors are predicted minus measured. "
        + _sampling_std(runs)
        + "RMSE from noise alone: the early forecast's RMSE when the law fitted on the whole "
        f"run is exact and only each point's binomial draw is noisy, its {NOISE_QUANTILE:.0%} "
        f"quantile over {NOISE_SIMS} simulated runs (`law.forecast_noise`); it exceeds the "
        "per-point std because the early fit's slope is extrapolated to the lower entropy of "
        "the rest. An RMSE above it is a bias of the early fit, not noise. "
        f"A ceiling is marked unreliable when its fit has fewer than {RELIABLE_MIN_POINTS} "
        f"points or R² below {RELIABLE_MIN_R2}."
    )
    _early_vs_whole(section, bends)
    r2s, rmses, noises, errors = zip(*numbers, strict=True) if numbers else ([],) * 4
    reference = [r for task in _tasks(runs) for r in _reference(_main_runs(runs, task))]
    most_points = max(law_points(r)[0].size for r in reference)
    section.verdicts.append(law_verdict(r2s, rmses, noises, errors, most_points))
    return section


def _sampling_std(runs: list[RunData]) -> str:
    """The sampling std of one val/acc point, when the runs say how many
    prompts and samples stand behind it (all alike); else nothing."""
    draws = {(r.val_prompts, r.val_samples) for r in runs}
    if len(draws) != 1 or None in next(iter(draws)):
        return ""
    prompts, samples = next(iter(draws))
    std = (0.25 / (prompts * samples)) ** 0.5
    return (
        f"Sampled val/acc over {prompts} prompts x {samples} samples has a sampling std of at "
        f"most {std:.3f} per point (at accuracy 0.5). "
    )


def _run_label(run: RunData) -> str:
    return f"{run.method} seed {run.seed}" if run.seed is not None else run.method


def _forecast_row(
    task: str, run: RunData
) -> tuple[tuple, tuple | None, float, float, float, float]:
    """The run's table row, its row of where the early points lie (`_early_vs_whole`; None
    without an early fit), its fit's R², its early forecast's held-out RMSE, noise-only RMSE
    and mean held-out error (NaN where it has none)."""
    nan = float("nan")
    h, r = law_points(run)
    fit = fit_run(run)
    if fit is None:
        return (task, _run_label(run), *["–"] * 9), None, nan, nan, nan, nan
    steps = law_steps(run)
    early = _early_forecast(h, r, steps)
    rmse = early.rmse_heldout if early else nan
    error = float(np.mean(early.predicted - r[early.n_fit :])) if early else nan
    noise = _noise_rmse(run, h, r, steps) if early else nan
    return (
        (
            task,
            _run_label(run),
            f"{fit.a:.3f}",
            f"{fit.b:.3f}",
            fit.ceiling_text(),
            f"{fit.r2:.3f}",
            early.n_fit if early else "–",
            f"{rmse:.3f}" if early else "–",
            f"{noise:.3f}" if np.isfinite(noise) else "–",
            f"{error:+.3f}" if early else "–",
            f"{early.final_error:+.3f}" if early else "–",
        ),
        _bend_row(task, run, h, steps, early, fit) if early else None,
        fit.r2,
        rmse,
        noise,
        error,
    )


def _bend_row(
    task: str,
    run: RunData,
    h: np.ndarray,
    steps: np.ndarray,
    early: EntropyLawForecast,
    whole: EntropyLawFit,
) -> tuple:
    """Where the run's early points lie against the rest, and the early fit's a and b against
    the whole run's (`whole`)."""
    n = early.n_fit
    return (
        task,
        _run_label(run),
        f"{steps[0]:.0f}-{steps[n - 1]:.0f}",
        f"{h[:n].min():.3f}-{h[:n].max():.3f}",
        f"{h[n:].min():.3f}-{h[n:].max():.3f}",
        f"{early.fit.a:.3f}, {early.fit.b:.3f}",
        f"{whole.a:.3f}, {whole.b:.3f}",
    )


def _early_vs_whole(section: Section, rows: list[tuple]) -> None:
    """The table of `_bend_row`s, the evidence for why an early forecast is biased."""
    if not rows:
        return
    section.table(
        ["task", "run", "early steps", "early H", "rest H", "early fit a, b", "whole run a, b"],
        rows,
    )
    section.text(
        "The early forecast extrapolates: the rest of a run lies at lower entropy than its "
        "early points. An early fit whose a is below the "
        "whole run's (R rising less per unit of exp(H) over the early points than later) "
        "predicts too low an R for the rest, by more the further the entropy falls."
    )


NOISE_SIMS = 200
"""Simulated runs behind each run's noise-only RMSE."""


def _noise_rmse(run: RunData, h: np.ndarray, r: np.ndarray, steps: np.ndarray) -> float:
    """The run's early-forecast RMSE from noise alone at NOISE_QUANTILE; NaN when the run does
    not say how many draws stand behind each point. Seeded, so a report is reproducible."""
    if run.val_prompts is None or run.val_samples is None:
        return float("nan")
    draws = run.val_prompts * run.val_samples
    noise = forecast_noise(h, r, draws, np.random.default_rng(0), sims=NOISE_SIMS, steps=steps)
    return noise.rmse_quantile(NOISE_QUANTILE)


def _early_forecast(h: np.ndarray, r: np.ndarray, steps: np.ndarray) -> EntropyLawForecast | None:
    """The fit on the first 15% of the steps and its forecast of the rest; None when too few
    points are left to forecast or the early points cannot be fitted (constant entropy)."""
    if fit_size_by_step(steps) >= h.size:
        return None
    try:
        return forecast(h, r, steps=steps)
    except ValueError:
        return None
