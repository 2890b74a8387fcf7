"""Sections 5, 7 and 9: the interventions against the GRPO curve, the final table (claim
4), and entropy control."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.report.data import RunData, group_runs, plural
from entropy_rl.analysis.report.sections.base import (
    Section,
    _main_runs,
    _methods,
    _plot_spread,
    _tasks,
)
from entropy_rl.analysis.report.stats import (
    END_EVALS,
    control_tracking,
    diff_se,
    end_value,
    fit_pooled,
    fit_run,
    fmt,
    fmt_ceilings,
    law_points,
    mean_curve,
    spread_note,
)
from entropy_rl.analysis.report.verdicts import (
    MIN_GAIN_SE,
    Verdict,
    control_holds,
    control_rule,
    gain_holds,
    status,
)
from entropy_rl.config.methods import REFERENCE_METHOD, REMEDIES
from entropy_rl.runs.metric_keys import (
    CONTROL_TARGET,
    CONTROL_VALUE,
    ENTROPY_MEAN,
    VAL_ACC,
    VAL_ACC_GREEDY,
    VAL_PASS_AT_K,
)

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
            if method in REMEDIES:
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
        for method in REMEDIES:
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
