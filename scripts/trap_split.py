"""Accuracy of a sum3_trap model split by trap / other prompts: is there a bottleneck?

    python scripts/trap_split.py MODEL_DIR [--samples 16]

MODEL_DIR is a base model (runs/base_models/sum3_trap-*) or a run's checkpoint-<step>/model
(an older run's checkpoint/model). Prints, for the 256 validation prompts split by whether a+b
carries into the tens, greedy accuracy, the mean accuracy of k samples at temperature 1, and
pass@8 / pass@k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from entropy_rl.config import load_config
from entropy_rl.tasks import make_task
from entropy_rl.tasks.sum3_trap import is_trap
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.policy import Policy, local_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--samples", type=int, default=16, help="k samples per prompt")
    args = parser.parse_args()
    task = make_task(load_config(None, ["task.name=sum3_trap"]).task)
    model, tokenizer = load_pretrained(args.model_dir)
    policy = Policy(model.eval(), tokenizer)
    worker = local_worker(policy, task)
    problems = task.validation_problems()
    repeated = [p for p in problems for _ in range(args.samples)]
    with torch.no_grad():
        _, greedy = worker.sample(policy, problems, None, greedy=True)
        _, sampled = worker.sample(policy, repeated, torch.Generator().manual_seed(0))
    greedy_ok = np.array([task.reward(p, r) for p, r in zip(problems, greedy, strict=True)])
    sampled_ok = np.array([task.reward(p, r) for p, r in zip(repeated, sampled, strict=True)])
    sampled_ok = sampled_ok.reshape(len(problems), args.samples)  # (N, k)
    trap = np.array([is_trap(p) for p in problems])
    print(
        f"{'prompts':10s} {'share':>6s} {'greedy':>7s} {'sampled':>8s} {'pass@8':>7s} pass@{args.samples}"
    )
    for name, rows in (("trap", trap), ("other", ~trap), ("all", np.ones_like(trap))):
        print(
            f"{name:10s} {rows.mean():6.3f} {greedy_ok[rows].mean():7.3f} "
            f"{sampled_ok[rows].mean():8.3f} {(sampled_ok[rows, :8].max(1) > 0).mean():7.3f} "
            f"{(sampled_ok[rows].max(1) > 0).mean():.3f}"
        )


if __name__ == "__main__":
    main()
