"""Sections 3, 4 and 8, the mechanism: Lemma 1 and the covariance, the sign of the
covariance, and entropy by response position."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.report.data import RunData, group_runs, plural
from entropy_rl.analysis.report.sections.base import (
    Section,
    _main_runs,
    _methods,
    _signed,
    _tasks,
    _values,
    _with,
)
from entropy_rl.analysis.report.stats import (
    correlation,
    fmt,
    lemma1_agreement,
    lemma_columns,
    position_profile,
)
from entropy_rl.analysis.report.verdicts import (
    NO_DATA,
    Verdict,
    lemma1_verdict,
    positive_cov_status,
)
from entropy_rl.runs.metric_keys import COV_LOGP_ADV, COV_POS_FRAC, DH_LEMMA1, ENTROPY_BY_POSITION

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
