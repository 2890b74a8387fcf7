"""Section 6: the law's a and b per method and per model size."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.report.data import RunData, group_runs
from entropy_rl.analysis.report.sections.base import Section, _main_runs, _methods, _tasks
from entropy_rl.analysis.report.stats import fit_run, fmt, fmt_ceilings, method_spread, size_law
from entropy_rl.analysis.report.verdicts import (
    HELD,
    NO_DATA,
    NOT_HELD,
    Verdict,
    algorithm_verdict,
    size_law_holds,
    size_law_rule,
)
from entropy_rl.config import PretrainConfig
from entropy_rl.config.methods import REFERENCE_METHOD
from entropy_rl.runs.metric_keys import VAL_ACC_GREEDY

UNLEARNT_GREEDY = PretrainConfig().min_greedy
"""Mean step-0 greedy accuracy below which a size's runs started from a base model that had
not learnt the task (`pretrain.min_greedy`; such runs start only with min_greedy lowered)."""


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
