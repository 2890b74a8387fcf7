"""The end-of-run summary: the law fitted on the run, Lemma-1 agreement, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from entropy_rl.analysis.law import (
    RELIABLE_MIN_POINTS,
    RELIABLE_MIN_R2,
    ceiling_text,
    fit_entropy_law,
    fit_size_by_step,
    forecast,
)
from entropy_rl.analysis.readers import read_entropy_reward
from entropy_rl.analysis.report.figures import plot_entropy_law, plot_run_dynamics
from entropy_rl.analysis.report.stats import lemma1_agreement
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import DYNAMICS_PLOT, LAW_PLOT, METRICS_FILE, SUMMARY_FILE
from entropy_rl.runs.metric_keys import (
    COV_LOGP_ADV,
    ENTROPY_MEAN,
    STEP,
    TIME_STEP_S,
    VAL_ACC,
    VAL_ACC_GREEDY,
)
from entropy_rl.runs.metrics_log import read_records


def _law(metrics_path: Path) -> dict[str, Any] | None:
    try:
        series = read_entropy_reward(metrics_path, ENTROPY_MEAN, VAL_ACC)
        fit = fit_entropy_law(series.entropy, series.reward)
    except ValueError:
        return None
    result: dict[str, Any] = {"fit": fit.to_dict(), "series": series, "fit_obj": fit}
    if fit_size_by_step(series.steps) < len(series.entropy):
        result["forecast_obj"] = forecast(series.entropy, series.reward, steps=series.steps)
        result["forecast"] = result["forecast_obj"].to_dict()
    return result


def summarize(records: list[dict]) -> dict[str, Any]:
    """Start/end numbers of a run from its metrics records; `rows`: how many it used."""
    evals = [r for r in records if r.get(VAL_ACC) is not None]
    first, last = records[0], records[-1]
    return {
        "steps": last[STEP],
        "rows": len(records),
        "entropy_start": first[ENTROPY_MEAN],
        "entropy_end": last[ENTROPY_MEAN],
        "val_acc_start": evals[0][VAL_ACC] if evals else None,
        "val_acc_end": evals[-1][VAL_ACC] if evals else None,
        "val_acc_greedy_start": evals[0].get(VAL_ACC_GREEDY) if evals else None,
        "val_acc_greedy_end": evals[-1].get(VAL_ACC_GREEDY) if evals else None,
        "cov_pos_step_frac": float(np.mean([r[COV_LOGP_ADV] > 0 for r in records])),
        "lemma1": lemma1_agreement(records),
        "train_time_s": float(sum(r.get(TIME_STEP_S, 0.0) for r in records)),
    }


def summarize_run(
    run_dir: Path, console: Console | None = None, stopped_early: dict | None = None
) -> dict[str, Any]:
    """Fit the law, write summary.json and the plots, print a short table. `stopped_early`:
    where and why a run stopped at saturation ({step, reason, gain_left}), kept as is."""
    metrics_path = run_dir / METRICS_FILE
    records = read_records(metrics_path)
    summary = summarize(records)
    if stopped_early is not None:
        summary["stopped_early"] = stopped_early
    law = _law(metrics_path)
    plot_run_dynamics(records, run_dir / DYNAMICS_PLOT, title=str(run_dir))
    if law is not None:
        summary["law"] = law["fit"]
        summary["forecast"] = law.get("forecast")
        plot_entropy_law(law["series"], law["fit_obj"], law.get("forecast_obj"), run_dir / LAW_PLOT)
    write_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    if console is not None:
        console.print(summary_table({run_dir.name: summary}))
    return summary


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return "-" if value is None else f"{value:.{digits}f}"


def _ceiling(law: dict[str, Any] | None) -> str | None:
    """The law's ceiling, flagged when its fit is unreliable (`law.fit_caveat`)."""
    return None if not law else ceiling_text(law["ceiling"], law["n"], law["r2"])


SUMMARY_ROWS = (
    ("metrics rows used", lambda s: s.get("rows")),
    ("entropy start", lambda s: s["entropy_start"]),
    ("entropy end", lambda s: s["entropy_end"]),
    ("val/acc start", lambda s: s["val_acc_start"]),
    ("val/acc end", lambda s: s["val_acc_end"]),
    ("val/acc_greedy start", lambda s: s["val_acc_greedy_start"]),
    ("val/acc_greedy end", lambda s: s["val_acc_greedy_end"]),
    ("law a", lambda s: (s.get("law") or {}).get("a")),
    ("law b", lambda s: (s.get("law") or {}).get("b")),
    ("law ceiling b - a", lambda s: _ceiling(s.get("law"))),
    ("law R²", lambda s: (s.get("law") or {}).get("r2")),
    ("steps with Cov > 0", lambda s: s["cov_pos_step_frac"]),
    ("Lemma-1 corr", lambda s: (s.get("lemma1") or {}).get("corr")),
)
"""The rows of the side-by-side summary: label and how to read it from a run's summary."""


def summary_table(summaries: dict[str, dict[str, Any]]) -> Table:
    """Runs side by side, one column each: entropy and accuracy start/end, the law, Lemma 1."""
    caption = (
        f"law: R = -a·exp(H) + b; a ceiling is unreliable from < {RELIABLE_MIN_POINTS} "
        f"validation points or with R² < {RELIABLE_MIN_R2}"
    )
    table = Table(title="run summary", caption=caption, box=box.SIMPLE_HEAD)
    table.add_column("")
    for name in summaries:
        table.add_column(name, justify="right")
    for label, read in SUMMARY_ROWS:
        table.add_row(label, *(_fmt(read(s)) for s in summaries.values()))
    return table
