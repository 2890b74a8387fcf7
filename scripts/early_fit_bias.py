"""Why claim 2's early fit misses: for each run, the law fitted on the first 15% of the steps
against the law fitted on the whole run, where the early points lie in entropy, and what the
early fit predicts for the rest.

For each metrics.jsonl under the directories: the early fit's points (n, the steps they
span, their entropy range), its a, b and ceiling b - a; the whole run's fit; the held-out
RMSE and final error of the early forecast; each point's binomial standard error
(sqrt(R (1 - R) / (prompts x samples)), the run's validation draw); and how far the held-out
points' entropy lies outside the early points' range (the early fit extrapolates in exp(H)).

    .venv/bin/python scripts/early_fit_bias.py runs/claim2-t1 runs/cvf-t1/sum3/h128x4/grpo
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from entropy_rl.analysis.law import fit_entropy_law, fit_size_by_step, forecast
from entropy_rl.config import load_config
from entropy_rl.runs.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC
from entropy_rl.runs.metrics_log import read_records, record_columns


def describe(run: Path) -> dict:
    config = load_config(run / "config.yaml")
    draws = config.task.val_size * config.eval.samples
    steps, h, r = record_columns(read_records(run / "metrics.jsonl"), STEP, ENTROPY_MEAN, VAL_ACC).T
    n_fit = fit_size_by_step(steps)
    early = forecast(h, r, steps=steps)
    whole = fit_entropy_law(h, r)
    se = np.sqrt(r * (1 - r) / draws)
    return {
        "run": str(run),
        "points": f"{len(h)} ({n_fit} early, steps {steps[0]:.0f}-{steps[n_fit - 1]:.0f})",
        "early H": f"{h[:n_fit].min():.3f}-{h[:n_fit].max():.3f}",
        "rest H": f"{h[n_fit:].min():.3f}-{h[n_fit:].max():.3f}",
        "early a, b, b-a": f"{early.fit.a:.3f}, {early.fit.b:.3f}, {early.fit.b - early.fit.a:.3f}",
        "whole a, b, b-a": f"{whole.a:.3f}, {whole.b:.3f}, {whole.b - whole.a:.3f}",
        "early R2": f"{early.fit.r2:.3f}",
        "RMSE held out": f"{early.rmse_heldout:.3f}",
        "final error": f"{early.final_error:+.3f}",
        "mean error held out": f"{float(np.mean(early.predicted - r[n_fit:])):+.3f}",
        "point SE": f"{se.min():.3f}-{se.max():.3f} ({draws} draws)",
        "exp(H) extrapolated": f"{math.exp(h[n_fit:].min()):.3f} vs early {math.exp(h[:n_fit].min()):.3f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="run or experiment directories")
    args = parser.parse_args()
    runs = sorted({p.parent for d in args.dirs for p in d.rglob("metrics.jsonl")})
    for run in runs:
        print("\n".join(f"{k:>22}: {v}" for k, v in describe(run).items()), end="\n\n")


if __name__ == "__main__":
    main()
