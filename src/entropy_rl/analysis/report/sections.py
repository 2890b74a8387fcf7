"""The nine sections of the report, each computed from runs: numbers, figures, verdicts.

Each `section_*` returns a `Section`: its heading, its text, tables and figures in order (PNG
bytes by file name) and, where it tests one of the paper's claims, a `Verdict`. The numbers
come from `report.stats`, the rules that turn them into verdicts from `report.verdicts`.
A section without the data it needs says so instead of drawing anything.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.law import (
    RELIABLE_MIN_POINTS,
    RELIABLE_MIN_R2,
    EntropyLawForecast,
    fit_size,
    forecast,
)
from entropy_rl.analysis.report.data import REFERENCE_METHOD, RunData, group_runs, main_size, plural
from entropy_rl.analysis.report.stats import (
    END_EVALS,
    control_tracking,
    correlation,
    diff_se,
    end_value,
    fit_pooled,
    fit_run,
    fmt,
    fmt_ceilings,
    law_points,
    lemma1_agreement,
    lemma_columns,
    mean_curve,
    method_spread,
    position_profile,
    size_law,
    smoothed_at,
    spread_note,
)
from entropy_rl.analysis.report.verdicts import (
    EARLY,
    HELD,
    MIN_GAIN_SE,
    NO_DATA,
    NOT_HELD,
    SATURATION,
    SMOOTH_ACCURACY,
    SMOOTH_ENTROPY,
    Verdict,
    algorithm_verdict,
    collapse_holds,
    collapse_shares,
    control_holds,
    control_rule,
    gain_holds,
    law_verdict,
    lemma1_verdict,
    not_enough,
    positive_cov_status,
    size_law_holds,
    size_law_rule,
    status,
)
from entropy_rl.config import PretrainConfig
from entropy_rl.core.control import CONTROL_TARGET, CONTROL_VALUE
from entropy_rl.runs.metric_keys import (
    COV_LOGP_ADV,
    COV_POS_FRAC,
    DH_LEMMA1,
    ENTROPY_BY_POSITION,
    ENTROPY_MEAN,
    VAL_ACC,
    VAL_ACC_GREEDY,
    VAL_PASS_AT_K,
)

UNLEARNT_GREEDY = PretrainConfig().min_greedy
"""Mean step-0 greedy accuracy below which a size's runs started from a base model that had
not learnt the task (`pretrain.min_greedy`; such runs start only with min_greedy lowered)."""
DPI = 110
INTERVENTIONS = ("clip_cov", "kl_cov")
"""The paper's two remedies, compared with GRPO in claim 4 and the reviewers' question."""


@dataclass
class Section:
    """A heading and its blocks in order: ("text", str), ("table", header, rows) or
    ("figure", file name); rendered to HTML and Markdown by `report.build`."""

    heading: str
    blocks: list[tuple] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def text(self, line: str) -> None:
        self.blocks.append(("text", line))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", [str(h) for h in header], [[str(c) for c in r] for r in rows]))

    def figure(self, name: str, fig: Figure) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        self.figures[name] = buffer.getvalue()
        self.blocks.append(("figure", name))


def _tasks(runs: list[RunData]) -> list[str]:
    return list(dict.fromkeys(run.task for run in runs))


def _methods(runs: list[RunData]) -> list[str]:
    """Methods in first-seen order, the reference method first."""
    methods = list(dict.fromkeys(run.method for run in runs))
    return sorted(methods, key=lambda m: m != REFERENCE_METHOD)


def _main_runs(runs: list[RunData], task: str) -> list[RunData]:
    size = main_size(runs, task)
    return [run for run in runs if run.task == task and run.size == size]


def _reference(runs: list[RunData]) -> list[RunData]:
    """GRPO runs when there are any, else every run (logs from elsewhere)."""
    grpo = [run for run in runs if run.method == REFERENCE_METHOD]
    return grpo or runs


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


def _plot_spread(ax, group: list[RunData], key: str, color: int, label: str) -> None:
    """`key` against step: the mean over the runs of `group` as a line, min to max as a band."""
    steps, mean, low, high = mean_curve(group, key)
    ax.plot(steps, mean, color=f"C{color}", label=label)
    ax.fill_between(steps, low, high, color=f"C{color}", alpha=0.15, lw=0)


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
    rows, r2s, rmses = [], [], []
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
            row = _forecast_row(task, run)
            rows.append(row[0])
            r2s.append(row[1])
            rmses.append(row[2])
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
            "final error",
        ],
        rows,
    )
    section.text(
        "Early fit: the law fitted on the first 15% of each run's validation points (at "
        "least 3), predicting the rest from entropy alone; the paper reports about 1% RMSE. "
        + _sampling_floor(runs)
        + f"A ceiling is marked unreliable when its fit has fewer than {RELIABLE_MIN_POINTS} "
        f"points or R² below {RELIABLE_MIN_R2}."
    )
    reference = [r for task in _tasks(runs) for r in _reference(_main_runs(runs, task))]
    section.verdicts.append(law_verdict(r2s, rmses, max(law_points(r)[0].size for r in reference)))
    return section


def _sampling_floor(runs: list[RunData]) -> str:
    """The sampling std of val/acc, a floor for any forecast RMSE, when the runs say how many
    prompts and samples stand behind it (all alike); else nothing."""
    draws = {(r.val_prompts, r.val_samples) for r in runs}
    if len(draws) != 1 or None in next(iter(draws)):
        return ""
    prompts, samples = next(iter(draws))
    std = (0.25 / (prompts * samples)) ** 0.5
    return (
        f"Sampled val/acc over {prompts} prompts x {samples} samples has a sampling std of at "
        f"most {std:.3f} (at accuracy 0.5), a floor for any RMSE here. "
    )


def _run_label(run: RunData) -> str:
    return f"{run.method} seed {run.seed}" if run.seed is not None else run.method


def _forecast_row(task: str, run: RunData) -> tuple[tuple, float, float]:
    h, r = law_points(run)
    fit = fit_run(run)
    if fit is None:
        return (task, _run_label(run), *["–"] * 7), float("nan"), float("nan")
    early = _early_forecast(h, r)
    rmse = early.rmse_heldout if early else float("nan")
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
            f"{early.final_error:+.3f}" if early else "–",
        ),
        fit.r2,
        rmse,
    )


def _early_forecast(h: np.ndarray, r: np.ndarray) -> EntropyLawForecast | None:
    """The 15% early fit's forecast of the rest; None when too few points are left to
    forecast or the early points cannot be fitted (constant entropy)."""
    if fit_size(h.size) >= h.size:
        return None
    try:
        return forecast(h, r)
    except ValueError:
        return None


# ---- 3. Lemma 1 and the covariance --------------------------------------------------------


def section_lemma1(runs: list[RunData]) -> Section:
    """Predicted against actual entropy change on the probe states; covariance against dH."""
    section = Section("3. Lemma 1: the covariance drives the entropy change")
    with_probe = [r for r in runs if r.column(DH_LEMMA1)[1].size]
    if not with_probe:
        section.text(
            "These logs hold no dynamics/dH_lemma1 or dynamics/dH_actual: no Lemma-1 check."
        )
        section.verdicts.append(
            Verdict(
                "3. Covariance drives entropy change (Lemma 1)", NO_DATA, "no probe-state metrics"
            )
        )
        return section
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    ax_lemma, ax_cov = fig.subplots(1, 2)
    rows, corrs = [], []
    for color, method in enumerate(_methods(with_probe)):
        group = [r for r in with_probe if r.method == method]
        actual, predicted, cov = lemma_columns(group)
        ax_lemma.scatter(actual, predicted, s=5, alpha=0.5, color=f"C{color}", label=method)
        ax_cov.scatter(cov, actual, s=5, alpha=0.5, color=f"C{color}", label=method)
        agreements = [lemma1_agreement(list(r.records)) for r in group]
        run_corr = [a["corr"] for a in agreements if a]
        corrs += run_corr
        rows.append(
            (
                method,
                len(group),
                fmt(run_corr, 2),
                fmt([a["var_explained"] for a in agreements if a], 2),
                _signed(correlation(cov, actual)),
            )
        )
    low, high = np.percentile(lemma_columns(with_probe)[0], [0.5, 99.5])
    ax_lemma.plot([low, high], [low, high], color="grey", ls="--", lw=0.8, label="y = x")
    ax_lemma.set(
        xlabel="actual dH on probe states",
        ylabel="Lemma-1 prediction",
        title="predicted vs actual entropy change per step",
    )
    ax_cov.axvline(0, color="grey", lw=0.8)
    ax_cov.set(
        xlabel="cov/logp_adv (rollout batch)",
        ylabel="actual dH on probe states",
        title="batch covariance vs entropy change",
    )
    ax_lemma.legend(fontsize="small", markerscale=3)
    section.figure("lemma1.png", fig)
    section.table(
        [
            "method",
            "runs",
            "Lemma-1 correlation (per run)",
            "variance explained (per run)",
            "corr(cov/logp_adv, actual dH), pooled",
        ],
        rows,
    )
    section.text(
        "Lemma 1 is computed exactly over the vocabulary from the logits on fixed probe states "
        "before and after each step's updates (several Adam steps, so not an infinitesimal "
        "step). The second panel uses the sampled-token batch covariance, a noisy estimate."
    )
    most_steps = max(r.column(DH_LEMMA1)[1].size for r in with_probe)
    section.verdicts.append(lemma1_verdict(corrs, most_steps))
    return section


# ---- 4. sign of the covariance ------------------------------------------------------------


def section_positive_cov(runs: list[RunData]) -> Section:
    section = Section("4. How often the covariance is positive")
    rows, fracs = [], []
    for (task, size, method), group in group_runs(
        _with(runs, COV_LOGP_ADV), "task", "size", "method"
    ).items():
        per_run = [float((r.column(COV_LOGP_ADV)[1] > 0).mean()) for r in group]
        token = [
            float(r.column(COV_POS_FRAC)[1].mean()) for r in group if r.column(COV_POS_FRAC)[1].size
        ]
        fracs += per_run
        rows.append(
            (
                task,
                size,
                method,
                len(group),
                fmt(per_run, 3),
                fmt([float(r.column(COV_LOGP_ADV)[1].mean()) for r in group], 3),
                fmt(token, 3),
            )
        )
    if not rows:
        section.text("These logs hold no cov/logp_adv.")
        return section
    section.table(
        [
            "task",
            "size",
            "method",
            "runs",
            "steps with cov/logp_adv > 0",
            "mean cov/logp_adv",
            "tokens with positive centered product (cov/pos_frac)",
        ],
        rows,
    )
    section.verdicts.append(
        Verdict(
            "3b. The covariance stays mostly positive",
            positive_cov_status(fracs),
            f"{np.mean(fracs):.1%} of steps positive on average over {plural(len(fracs), 'run')}",
        )
    )
    return section


def _with(runs: list[RunData], key: str) -> list[RunData]:
    return [r for r in runs if r.column(key)[1].size]


# ---- 5. interventions against the GRPO curve ------------------------------------------------


def section_interventions(runs: list[RunData]) -> Section:
    """Clip-Cov / KL-Cov (and the other methods) over the GRPO-fitted curve and its ceiling."""
    section = Section("5. Do the interventions stay on the GRPO curve, or rise above its ceiling?")
    rows, verdict_bits = [], []
    for task in _tasks(runs):
        task_runs = [r for r in _main_runs(runs, task) if law_points(r)[0].size]
        grpo = [r for r in task_runs if r.method == REFERENCE_METHOD]
        law = fit_pooled(grpo)
        if law is None or len(_methods(task_runs)) < 2:
            continue
        fig = Figure(figsize=(6.5, 4.6), layout="constrained")
        ax = fig.subplots()
        top = max(law_points(r)[0].max() for r in task_runs)
        grid = np.linspace(0, top * 1.05, 200)
        ax.plot(grid, law.predict(grid), color="k", label=f"GRPO law ({plural(len(grpo), 'run')})")
        ax.axhline(law.ceiling, color="C3", ls="--", label=f"GRPO ceiling {law.ceiling_text()}")
        ax.axhspan(*law.ceiling_ci, color="C3", alpha=0.12, lw=0)
        for color, method in enumerate(_methods(task_runs)):
            group = [r for r in task_runs if r.method == method]
            points = [law_points(r) for r in group]
            ax.scatter(
                np.concatenate([p[0] for p in points]),
                np.concatenate([p[1] for p in points]),
                s=8,
                alpha=0.6,
                color=f"C{color}",
                label=method,
            )
            ends = [end_value(r, VAL_ACC) for r in group]
            residual = [
                float(np.mean(p[1][len(p[1]) // 2 :] - law.predict(p[0][len(p[0]) // 2 :])))
                for p in points
            ]
            gap = [e - law.ceiling for e in ends]
            rows.append(
                (task, method, len(group), fmt(ends), law.ceiling_text(), fmt(gap), fmt(residual))
            )
            if method in INTERVENTIONS:
                verdict_bits.append(f"{task} {method}: end {fmt(gap)} vs the GRPO ceiling")
        ax.set(
            xlabel="H (entropy/mean)",
            ylabel="R (val/acc)",
            title=f"{task}: all methods over the GRPO law",
        )
        ax.legend(fontsize="small")
        section.figure(f"interventions_{task}.png", fig)
    if not rows:
        section.text("Needs GRPO runs and at least one other method on the same task.")
        return section
    section.table(
        [
            "task",
            "method",
            "runs",
            f"end val/acc (last {END_EVALS} evals)",
            "GRPO ceiling",
            "end - GRPO ceiling",
            "mean residual from the GRPO curve (second half)",
        ],
        rows,
    )
    section.text(
        "A positive residual means the method reaches higher accuracy than GRPO would at the "
        "same entropy; ending above the ceiling means beyond what GRPO could reach even at zero "
        f"entropy. Uncertainty: {spread_note([r[2] for r in rows])} (the ceiling's own 95% CI "
        "is shaded)."
    )
    section.verdicts.append(
        Verdict(
            "Reviewers: do Clip-Cov/KL-Cov rise above the GRPO ceiling?",
            "see detail",
            "; ".join(verdict_bits),
        )
    )
    return section


# ---- 6. a and b per method and per model size ------------------------------------------------


def section_coefficients(runs: list[RunData]) -> Section:
    section = Section("6. The law's coefficients per method and per model size")
    rows, spreads = [], []
    for task in _tasks(runs):
        by_method = {
            m: [f for r in _main_runs(runs, task) if r.method == m and (f := fit_run(r))]
            for m in _methods(_main_runs(runs, task))
        }
        for method, fits in by_method.items():
            rows.append(
                (
                    task,
                    method,
                    len(fits),
                    fmt([f.a for f in fits]),
                    fmt([f.b for f in fits]),
                    fmt_ceilings(fits),
                )
            )
        spread = method_spread(list(by_method.values()))
        if spread is not None:
            spreads.append((task, *spread))
    section.table(["task", "method", "runs", "a", "b", "ceiling b-a"], rows)
    verdict = algorithm_verdict(spreads)
    size_verdict = _size_analysis(runs, section)
    section.verdicts += [verdict, size_verdict]
    return section


def _size_analysis(runs: list[RunData], section: Section) -> Verdict:
    """The GRPO law's a and b against log10(parameters), over the sizes whose base model had
    learnt the task (greedy accuracy at step 0 >= UNLEARNT_GREEDY); with 4+ such sizes the
    largest is held out and predicted from the others."""
    name = "5b. a and b are log-linear in model size, and predict the next size"
    grpo = [r for r in runs if r.method == REFERENCE_METHOD and r.params]
    for task in _tasks(grpo):
        by_size = group_runs([r for r in grpo if r.task == task], "params")
        if len(by_size) < 3:
            continue
        params = np.array(sorted(p for (p,) in by_size))
        fits = {p: [f for r in by_size[(p,)] if (f := fit_run(r))] for p in params}
        learnt = {p: _base_learnt(by_size[(p,)]) for p in params}
        section.table(
            ["params", "runs", "base model greedy acc", "a", "b", "ceiling b-a"],
            [
                (
                    f"{p:,}",
                    len(fits[p]),
                    fmt([r.first(VAL_ACC_GREEDY) for r in by_size[(p,)]]),
                    fmt([f.a for f in fits[p]]),
                    fmt([f.b for f in fits[p]]),
                    fmt_ceilings(fits[p]),
                )
                for p in params
            ],
        )
        usable = np.array([p for p in params if learnt[p] and fits[p]])
        if len(usable) < 3:
            text = (
                f"{task}: only {len(usable)} of {len(params)} sizes have a law fit and start "
                f"from a base model that had learnt the task (greedy accuracy >= "
                f"{UNLEARNT_GREEDY}); the others say nothing about size. No log-linear fit."
            )
            section.text(text)
            return Verdict(name, NO_DATA, text)
        return _loglinear_verdict(name, section, task, usable, fits)
    section.text("The size analysis needs GRPO runs at 3 or more model sizes on one task.")
    return Verdict(name, NO_DATA, "fewer than 3 model sizes")


def _base_learnt(runs: list[RunData]) -> bool:
    greedy = [r.first(VAL_ACC_GREEDY) for r in runs if r.first(VAL_ACC_GREEDY) is not None]
    return not greedy or float(np.mean(greedy)) >= UNLEARNT_GREEDY


def _loglinear_verdict(name, section, task, params, fits) -> Verdict:
    law = size_law(params, fits)
    n = law.n_fitted
    (sa, ia, r2a), (sb, ib, r2b) = law.line_a, law.line_b
    _size_figure(section, task, params, law.a, law.b, n, (sa, ia), (sb, ib))
    text = (
        f"{task}: fit over {n} sizes: a = {sa:+.3f} log10(N) {ia:+.3f} (R² {r2a:.2f}); "
        f"b = {sb:+.3f} log10(N) {ib:+.3f} (R² {r2b:.2f}). Predicted ceiling at "
        f"N = {10**law.x_next:,.0f}: {law.predicted:.3f}"
    )
    if law.error is not None:
        text += (
            f"; measured there (a held-out size): {fmt(law.measured)}, so the forecast is off by "
            f"{law.error:+.3f} (measured mean - predicted)"
        )
    section.text(text + ".")
    ok = size_law_holds(r2a, r2b, law.error)
    rule = size_law_rule(law.error is not None)
    return Verdict(name, HELD if ok else NOT_HELD, f"{text} ({rule})")


def _size_figure(section: Section, task: str, params, a, b, n, line_a, line_b) -> None:
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.log10(params)
    grid = np.linspace(x.min(), x.max(), 50)
    for values, (slope, intercept), label, color in (
        (a, line_a, "a", "C0"),
        (b, line_b, "b", "C1"),
    ):
        ax.plot(params[:n], values[:n], "o", color=color, label=f"{label} (fitted sizes)")
        if n < len(params):
            ax.plot(
                params[n:],
                values[n:],
                "s",
                mfc="none",
                color=color,
                ms=9,
                label=f"{label} (held out)",
            )
        ax.plot(10**grid, slope * grid + intercept, color=color, lw=1)
    ax.set_xscale("log")
    ax.set(
        xlabel="parameters", ylabel="coefficient", title=f"{task}: GRPO law coefficients vs size"
    )
    ax.legend(fontsize="small")
    section.figure(f"sizes_{task}.png", fig)


# ---- 7. final table --------------------------------------------------------------------------

FINAL_KEYS = ((VAL_ACC, "sampled"), (VAL_ACC_GREEDY, "greedy"), (VAL_PASS_AT_K, "pass@k"))


def section_final(runs: list[RunData]) -> Section:
    section = Section("7. Start and end of every method")
    rows = []
    for (task, size, method), group in group_runs(runs, "task", "size", "method").items():
        row = [task, size, method, len(group)]
        for key, _ in FINAL_KEYS:
            row.append(
                f"{fmt([r.first(key) for r in group])} → {fmt([end_value(r, key) for r in group])}"
            )
        row.append(
            f"{fmt([r.first('entropy/mean') for r in group])} → {fmt([r.last('entropy/mean') for r in group])}"
        )
        row.append(fmt_ceilings([f for r in group if (f := fit_run(r))]))
        rows.append(row)
    section.table(
        [
            "task",
            "size",
            "method",
            "runs",
            *(f"{label} acc start → end" for _, label in FINAL_KEYS),
            "entropy start → end",
            "ceiling b-a",
        ],
        rows,
    )
    sizes = [row[3] for row in rows]
    section.text(
        f"End accuracy: mean of the last {END_EVALS} validation points; {spread_note(sizes)}."
    )
    section.verdicts.append(_claim4(runs))
    return section


def _claim4(runs: list[RunData]) -> Verdict:
    bits, held, total = [], 0, 0
    for task in _tasks(runs):
        task_runs = _main_runs(runs, task)
        grpo = [r for r in task_runs if r.method == REFERENCE_METHOD]
        for method in INTERVENTIONS:
            group = [r for r in task_runs if r.method == method]
            if not group or not grpo:
                continue
            text, judged, won = _end_gains(group, grpo)
            total, held = total + judged, held + won
            bits.append(f"{task} {method} - GRPO: {text}")
    detail = (
        "; ".join(bits)
        + f" (± standard error over seeds; held when sampled accuracy gains > {MIN_GAIN_SE:g} SE)"
        if bits
        else "needs GRPO runs and Clip-Cov or KL-Cov runs on the same task"
    )
    return Verdict(
        "4. Clip-Cov and KL-Cov end with better accuracy than GRPO", status(held, total), detail
    )


def _end_gains(group: list[RunData], grpo: list[RunData]) -> tuple[str, bool, bool]:
    """Claim 4 on one method: its end accuracies minus GRPO's as text, whether the sampled
    one can be judged (a gain needs a standard error, so 2+ seeds each side; a loss does
    not), and whether it is a gain beyond MIN_GAIN_SE standard errors."""
    parts, judged, won = [], False, False
    why = f"not judged: no end {VAL_ACC}"
    for key, label in FINAL_KEYS:
        diff, se = diff_se([end_value(r, key) for r in group], [end_value(r, key) for r in grpo])
        if not np.isfinite(diff):
            continue
        spread = f" ± {se:.3f}" if np.isfinite(se) else " (one seed: no error)"
        parts.append(f"{label} {diff:+.3f}{spread}")
        if key == VAL_ACC:
            judged, won = bool(np.isfinite(se) or diff <= 0), gain_holds(diff, se)
            why = "not judged: a gain needs 2+ seeds on each side"
    return ", ".join(parts + ([] if judged else [why])), judged, won


# ---- 8. entropy by position --------------------------------------------------------------------


def section_positions(runs: list[RunData]) -> Section:
    """Entropy by response position at the start and end of each method's runs (mean over
    the runs reaching each position, so runs of different response lengths mix honestly)."""
    section = Section("8. Where the entropy sits: entropy by response position")
    with_positions = [r for r in runs if r.first(ENTROPY_BY_POSITION)]
    if not with_positions:
        section.text("These logs hold no entropy/by_position.")
        return section
    for task in _tasks(with_positions):
        _positions_task(section, task, _main_runs(with_positions, task))
    section.text(
        "Each curve is a mean over the method's runs at each position, taken over the runs "
        "whose responses reach it: runs of different lengths (task.max_response_tokens, or "
        "batches whose responses all stopped early) are padded with no value, so a curve's "
        "tail may rest on fewer runs. Differences from the first method are over the "
        "positions both have. Entropy kept where the reward does not look (an unrewarded "
        "scratchpad) preserves sampling diversity without preserving exploration of the answer."
    )
    return section


def _positions_task(section: Section, task: str, task_runs: list[RunData]) -> None:
    """Section 8's figure and table for one task."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    rows, reference_end = [], None
    for color, method in enumerate(_methods(task_runs)):
        group = [r for r in task_runs if r.method == method]
        start, _ = position_profile([r.first(ENTROPY_BY_POSITION) for r in group])
        end, counts = position_profile([r.last(ENTROPY_BY_POSITION) for r in group])
        reference_end = end if reference_end is None else reference_end
        ax.plot(np.arange(start.size), start, ls=":", color=f"C{color}")
        ax.plot(np.arange(end.size), end, "o-", color=f"C{color}", label=f"{method} (end)")
        width = min(end.size, reference_end.size)
        kept = end[:width] - reference_end[:width]
        shared = np.flatnonzero(np.isfinite(kept))
        most = shared[np.argsort(-kept[shared])][:3] if kept[shared].any() else []
        rows.append(
            (
                method,
                _values(start),
                _values(end),
                " ".join(str(c) for c in counts),
                _values(kept),
                ", ".join(str(i) for i in most) or "–",
            )
        )
    ax.set(
        xlabel="response position (token)",
        ylabel="entropy (nats)",
        title=f"{task}: entropy by position, start (dotted) and end",
    )
    ax.legend(fontsize="small")
    section.figure(f"positions_{task}.png", fig)
    section.table(
        [
            f"{task}: method",
            "start, by position",
            "end, by position",
            "runs at each position (end)",
            f"end minus {_methods(task_runs)[0]}'s end",
            "positions keeping the most",
        ],
        rows,
    )


# ---- 9. entropy control -----------------------------------------------------------------------


def section_control(runs: list[RunData]) -> Section:
    """Runs with the entropy controller (loss.entropy_target): how close their entropy stays
    to the target over the second half, with what strength, at what accuracy; and the
    uncontrolled runs beside them for reference."""
    section = Section("9. Entropy control: does the controller hold its target?")
    controlled = [r for r in runs if control_tracking(r) is not None]
    if not controlled:
        section.text("No run here used the entropy controller (loss.entropy_target).")
        return section
    rows, bits, held, total = [], [], 0, 0
    for (task, size, method), group in group_runs(controlled, "task", "size", "method").items():
        tracking = [control_tracking(r) for r in group]
        ok = sum(control_holds(mean, worst) for mean, worst in tracking)
        held, total = held + ok, total + len(group)
        bits.append(f"{task} {method}: {ok} of {len(group)}")
        rows.append(
            (
                task,
                size,
                method,
                len(group),
                fmt([r.last(CONTROL_TARGET) for r in group], 3),
                fmt([mean for mean, _ in tracking], 3),
                f"{max(worst for _, worst in tracking):.3f}",
                fmt([r.last(CONTROL_VALUE) for r in group], 3),
                fmt([end_value(r, VAL_ACC) for r in group]),
                f"{ok} of {len(group)}",
            )
        )
    section.table(
        [
            "task",
            "size",
            "method",
            "runs",
            "target (end)",
            "mean H - target, second half",
            "largest |H - target|, second half",
            "knob value at the end",
            f"end val/acc (last {END_EVALS} evals)",
            "held",
        ],
        rows,
    )
    for task in _tasks(controlled):
        _control_figure(section, task, [r for r in runs if r.task == task])
    section.text(
        "H is entropy/mean, measured on each step's rollout batch before its updates; the knob "
        "is the loss config field the controller sets (control/value, docs/metrics.md). "
        f"A run {control_rule()}."
    )
    section.verdicts.append(
        Verdict("Entropy control holds its target", status(held, total), "; ".join(bits))
    )
    return section


def _control_figure(section: Section, task: str, runs: list[RunData]) -> None:
    """Entropy against step for every method of `task` (mean and range over seeds), with
    each controlled method's target."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for color, method in enumerate(_methods(runs)):
        group = [r for r in runs if r.method == method]
        _plot_spread(ax, group, ENTROPY_MEAN, color, f"{method} (n={len(group)})")
        t_steps, target, _, _ = mean_curve(group, CONTROL_TARGET)
        if t_steps.size:
            ax.plot(t_steps, target, color=f"C{color}", ls="--", lw=1)
    ax.set(
        xlabel="step",
        ylabel="entropy/mean (nats)",
        title=f"{task}: entropy, and each controller's target (dashed)",
    )
    ax.legend(fontsize="small")
    section.figure(f"control_{task}.png", fig)


def _signed(x: float) -> str:
    """A signed number to two decimals, '–' for NaN."""
    return f"{x:+.2f}" if np.isfinite(x) else "–"


def _values(x: np.ndarray) -> str:
    """Numbers to two decimals, '–' where there is none (NaN)."""
    return " ".join(f"{v:.2f}" if np.isfinite(v) else "–" for v in x)


SECTIONS = (
    section_dynamics,
    section_law,
    section_lemma1,
    section_positive_cov,
    section_interventions,
    section_coefficients,
    section_final,
    section_positions,
    section_control,
)
"""The report's sections, in order."""
