"""Write a SYNTHETIC GRPO-style training log that follows the entropy-performance law.

No model was trained to make it. Every number comes from the parameters below plus seeded
Gaussian noise (numpy's default_rng), so the same command always writes the same file:

    entropy  H(t) = H_end + (H0 - H_end) * exp(-t / tau) + N(0, entropy_noise^2)
    val/acc  R(t) = -a * exp(H(t)) + b + N(0, reward_noise^2)         (Cui et al. 2025)
    reward/mean   = -a * exp(H(t)) + b + N(0, train_reward_noise^2), clipped to [0, 1]

with t = 0 .. steps-1 and defaults H0 = 0.7, H_end = 0.15, tau = 30, a = 0.5, b = 1.42
(ceiling b - a = 0.92), noise sd 0.01 on H, 0.015 on val/acc, 0.03 on reward/mean, seed 0.
Each step's record has `step`, `entropy/mean`, `reward/mean` and `"synthetic": true`;
every `val_every` steps (from step 0) it also has `val/acc`, as training logs do.

Regenerate the committed example (from the repository root):

    .venv/bin/python scripts/make_example_log.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from entropy_rl.runs.atomic import write_atomic

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "examples" / "synthetic_grpo_log.jsonl"
DIGITS = 6
"""Decimals kept per value, so the file stays small and diffs stay readable."""


def build_parser() -> argparse.ArgumentParser:
    """Options for every parameter of the synthetic run, with the committed file's values."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL path")
    p.add_argument("--steps", type=int, default=200, help="training steps")
    p.add_argument("--val-every", type=int, default=5, help="steps between val/acc records")
    p.add_argument("--h0", type=float, default=0.7, help="entropy at step 0")
    p.add_argument("--h-end", type=float, default=0.15, help="entropy the decay tends to")
    p.add_argument("--tau", type=float, default=30.0, help="entropy decay time, in steps")
    p.add_argument("--a", type=float, default=0.5, help="law coefficient a")
    p.add_argument("--b", type=float, default=1.42, help="law coefficient b")
    p.add_argument("--entropy-noise", type=float, default=0.01, help="sd of noise on H")
    p.add_argument("--reward-noise", type=float, default=0.015, help="sd of noise on val/acc")
    p.add_argument(
        "--train-reward-noise", type=float, default=0.03, help="sd of noise on reward/mean"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of numpy's default_rng")
    return p


def make_records(args: argparse.Namespace) -> list[dict[str, object]]:
    """One record per step, following the module docstring's equations."""
    rng = np.random.default_rng(args.seed)
    t = np.arange(args.steps)
    entropy = args.h_end + (args.h0 - args.h_end) * np.exp(-t / args.tau)
    entropy = entropy + rng.normal(0.0, args.entropy_noise, args.steps)
    law = -args.a * np.exp(entropy) + args.b
    val_acc = law + rng.normal(0.0, args.reward_noise, args.steps)
    train = np.clip(law + rng.normal(0.0, args.train_reward_noise, args.steps), 0.0, 1.0)
    records = []
    for i in t:
        record: dict[str, object] = {
            "step": int(i),
            "entropy/mean": round(float(entropy[i]), DIGITS),
            "reward/mean": round(float(train[i]), DIGITS),
        }
        if i % args.val_every == 0:
            record["val/acc"] = round(float(val_acc[i]), DIGITS)
        record["synthetic"] = True
        records.append(record)
    return records


def main() -> None:
    args = build_parser().parse_args()
    text = "".join(json.dumps(r) + "\n" for r in make_records(args))
    print(f"wrote {write_atomic(args.out, text)}")


if __name__ == "__main__":
    main()
