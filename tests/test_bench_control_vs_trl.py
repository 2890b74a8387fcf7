"""benchmarks/control_vs_trl.py's table (the TRL arm's training is run by hand, not here):
the second half's tracking against each row's own target, the report's holding rule, the
knob's mean, the first step in the band, and unfinished runs left out."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from control_vs_trl import table


def _write(path: Path, entropies, targets=None, knob=None, last=None):
    path.mkdir(parents=True)
    rows = []
    for step, h in enumerate(entropies):
        row = {"step": step, "entropy/mean": h}
        if targets is not None:
            row["control/target"] = targets[step]
        if knob is not None:
            row["control/value"] = knob
        rows.append(row)
    for step in (len(entropies) - 3, len(entropies) - 2, len(entropies) - 1):
        rows[step].update({"val/acc": 0.5, "val/pass_at_k": 0.9, "val/acc_greedy": 0.8})
    rows[-1]["step"] = last if last is not None else rows[-1]["step"]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _row(text: str, arm: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {arm} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_table_follows_each_rows_target_and_applies_the_reports_rule(tmp_path):
    steps = 10
    # A run on a moving target from 0.6 to 0.3, always 0.02 above it: holds.
    moving = [0.6 - 0.03 * s for s in range(steps + 1)]
    _write(tmp_path / "a" / "sched" / "seed0", [t + 0.02 for t in moving], moving, knob=0.1)
    # Against a constant 0.45: 0.04 above on average in the second half, so it does not hold.
    _write(tmp_path / "a" / "flat" / "seed0", [0.7] * 5 + [0.49] * 6)
    # A run stopped at step 6 of 10 is left out.
    _write(tmp_path / "a" / "flat" / "seed1", [0.45] * 7)
    text = table([tmp_path / "a"], target=0.45, steps=steps)
    sched, flat = _row(text, "sched"), _row(text, "flat")
    assert sched[1] == "1 of 1" and sched[2].startswith("0.020 ") and sched[4].startswith("0 ")
    assert sched[5].startswith("0.100 ")  # the knob's second-half mean
    assert flat[1] == "0 of 1" and flat[2].startswith("0.040 ") and flat[5] == "-"
    assert flat[4].startswith("5 ")  # first in 0.45 +- 0.05 at step 5
    assert sched[6].startswith("0.500 ") and sched[7].startswith("0.900 ")


def test_the_error_above_the_noise_takes_the_noise_out_of_the_mean_square(tmp_path):
    steps = 10
    # Second half alternating 0.45 +- 0.02 around its target: a root-mean-square error of
    # 0.02, all of it within a noise of sd 0.02 and 0.015 above a noise of sd 0.0132.
    entropies = [0.45 + (0.02 if s % 2 else -0.02) for s in range(steps + 1)]
    _write(tmp_path / "a" / "wobble" / "seed0", entropies, [0.45] * (steps + 1))
    assert len(_row(table([tmp_path / "a"], 0.45, steps), "wobble")) == 9  # no column asked
    assert _row(table([tmp_path / "a"], 0.45, steps, noise=0.02), "wobble")[9].startswith("0.000 ")
    above = _row(table([tmp_path / "a"], 0.45, steps, noise=0.0132), "wobble")[9]
    assert above.startswith("0.015 ")
