"""How much a controlled run's knob moved the entropy, three ways: the slope of a step's
entropy change on the knob's value (`control/value`), by least squares with an intercept over
the last two thirds of the run's steps, with the change taken as

- the probe's exact change over the step's updates (`dynamics/dH_actual`), what
  `loss.control_gains=auto` fits (`core/authority.py`);
- Lemma 1's predicted change on the same states (`dynamics/dH_lemma1`);
- the batch entropy's step-to-step change (`entropy/mean` of the next row minus this one's),
  which the knob's own reaction to the batch's sampling error biases upwards.

Prints one line per run directory: the three slopes (nats per step per unit of the knob),
the step-by-step correlation of the exact and predicted changes, and minus the intercept
of the exact fit (the drift the knob holds against).

    .venv/bin/python scripts/authority_fit.py runs/gains-t1/sum3/h128x4/kp16_ki1_0*/seed*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from entropy_rl.runs.metrics_log import read_records


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of y on x by least squares."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def fit_run(run: Path) -> str:
    rows = [
        r
        for r in read_records(run / "metrics.jsonl")
        if r.get("control/value") is not None and r.get("dynamics/dH_actual") is not None
    ]
    late = rows[len(rows) // 3 :]
    value = np.array([r["control/value"] for r in late])
    exact = np.array([r["dynamics/dH_actual"] for r in late])
    lemma = np.array([r["dynamics/dH_lemma1"] for r in late])
    entropy = np.array([r["entropy/mean"] for r in late])
    drift, slope = _line(value, exact)
    batch = _line(value[:-1], np.diff(entropy))[1]
    return (
        f"{run}: slope exact {slope:+.4f}, Lemma 1 {_line(value, lemma)[1]:+.4f}, "
        f"batch {batch:+.4f}; corr(exact, Lemma 1) {np.corrcoef(exact, lemma)[0, 1]:.2f}; "
        f"-drift {-drift:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of controlled runs")
    for run in parser.parse_args().runs:
        print(fit_run(run))


if __name__ == "__main__":
    main()
