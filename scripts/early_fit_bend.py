"""Why claim 2's early forecast is low on some runs: for each GRPO run under the directories,
the whole-run law's residuals by sixths of exp(H) (highest last), the quadratic term of R in
exp(H), and the early fit's a when each R is paired with the entropy `lag` steps earlier (a
lag of R behind H would show as a rising a). The numbers of docs/results.md's "Claim 2 with a
dense early fit"; the report's section 2 has the rest (noise-only RMSE, early and whole a, b).

    .venv/bin/python scripts/early_fit_bend.py runs/claim2-t1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from entropy_rl.analysis.law import fit_entropy_law, fit_size_by_step
from entropy_rl.runs.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC
from entropy_rl.runs.metrics_log import read_records, record_columns

LAGS = (0, 1, 2, 3, 5)


def bend(path: Path) -> str:
    records = read_records(path)
    steps, h, r = record_columns(records, STEP, ENTROPY_MEAN, VAL_ACC).T
    x = np.exp(h)
    residual = r - fit_entropy_law(h, r).predict(h)
    sixths = [residual[i].mean() for i in np.array_split(np.argsort(x), 6)]
    entropy_at = dict(record_columns(records, STEP, ENTROPY_MEAN).tolist())
    n_fit = fit_size_by_step(steps)
    lagged = []
    for lag in LAGS:
        keep = [i for i in range(n_fit) if steps[i] - lag in entropy_at]
        h_lag = np.array([entropy_at[steps[i] - lag] for i in keep])
        lagged.append(f"{lag}: {fit_entropy_law(h_lag, r[keep]).a:.3f}")
    return (
        f"{path.parent}\n  residual by sixth of exp(H), low to high: "
        + " ".join(f"{v:+.3f}" for v in sixths)
        + f"\n  quadratic term in exp(H): {np.polyfit(x, r, 2)[0]:+.3f}"
        + "\n  early a with H lagged by: "
        + ", ".join(lagged)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="run or experiment directories")
    args = parser.parse_args()
    for path in sorted({p for d in args.dirs for p in d.rglob("metrics.jsonl")}):
        print(bend(path))


if __name__ == "__main__":
    main()
