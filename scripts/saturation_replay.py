"""Replay train.stop_at_saturation over finished runs: where would each have stopped?

    python scripts/saturation_replay.py METRICS.jsonl... [--min-gain 0.01 0.05 ...]

Walks each run's metrics.jsonl row by row, calling on each evaluation row the function the
trainer calls (`entropy_rl.analysis.live_law.live_law`), and prints, per threshold, a Markdown table:
the run, the row where the rule would have stopped it (that row only measures, as a stopped
run's last row does), the share of the run's train.steps updates it would have saved, the
final val/acc of the whole run, val/acc at the stop, and the loss (final minus at the stop;
positive: accuracy given up). A run the rule never stops saves nothing and loses nothing.
No torch: it reads files only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from entropy_rl.analysis.live_law import live_law
from entropy_rl.config import TrainConfig
from entropy_rl.runs.metric_keys import STEP, VAL_ACC
from entropy_rl.runs.metrics_log import read_records

COLUMNS = ("run", "stop step", "steps saved %", "final val/acc", "val/acc at stop", "loss")


def replay(records: list[dict[str, Any]], min_gain: float) -> dict[str, Any]:
    """Where the rule stops a run given its rows: {steps, stop_step (None: never), acc_final,
    acc_at_stop, reason}."""
    steps = records[-1][STEP]
    evals = [r for r in records if VAL_ACC in r]
    points: list = []
    for record in evals:
        deciding = record[STEP] < steps
        points, _, verdict = live_law(points, record, min_gain if deciding else None)
        if verdict is not None:
            return _result(steps, evals, record, verdict["reason"])
    return _result(steps, evals, None, None)


def _result(steps: int, evals: list[dict], stop: dict | None, reason: str | None) -> dict:
    final = evals[-1][VAL_ACC]
    return {
        "steps": steps,
        "stop_step": None if stop is None else stop[STEP],
        "acc_final": final,
        "acc_at_stop": final if stop is None else stop[VAL_ACC],
        "reason": reason,
    }


def row(name: str, result: dict[str, Any]) -> list[str]:
    """A table row: the run, stop step, steps saved %, final val/acc, val/acc at stop, loss."""
    stop = result["stop_step"]
    saved = 0.0 if stop is None else 100.0 * (result["steps"] - stop) / result["steps"]
    loss = result["acc_final"] - result["acc_at_stop"]
    return [
        name,
        "-" if stop is None else str(stop),
        f"{saved:.0f}",
        f"{result['acc_final']:.3f}",
        f"{result['acc_at_stop']:.3f}",
        f"{loss:+.3f}",
    ]


def run_name(path: Path) -> str:
    """The run's directory, from its last four parts (task/model/method/seed)."""
    return "/".join(path.parent.parts[-4:])


def table(paths: list[Path], min_gain: float) -> str:
    """The Markdown table of one threshold, with a mean row."""
    results = [replay(read_records(p), min_gain) for p in paths]
    rows = [row(run_name(p), r) for p, r in zip(paths, results, strict=True)]
    means = [sum(float(x[i]) for x in rows) / len(rows) for i in (2, 3, 4, 5)]
    rows.append(["mean", "", f"{means[0]:.0f}", f"{means[1]:.3f}", f"{means[2]:.3f}"])
    rows[-1].append(f"{means[3]:+.3f}")
    lines = [f"| {' | '.join(COLUMNS)} |", f"|{'---|' * len(COLUMNS)}"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    stopped = sum(r["stop_step"] is not None for r in results)
    worst = max(float(x[5]) for x in rows[:-1])
    lines.append(f"\nstopped {stopped} of {len(results)} runs; largest loss {worst:+.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.jsonl files")
    parser.add_argument(
        "--min-gain",
        type=float,
        nargs="+",
        default=[TrainConfig.saturation_min_gain],
        help="train.saturation_min_gain values to replay (default: the config's)",
    )
    args = parser.parse_args()
    for min_gain in args.min_gain:
        print(f"train.saturation_min_gain = {min_gain:g}\n")
        print(table(args.metrics, min_gain) + "\n")


if __name__ == "__main__":
    main()
