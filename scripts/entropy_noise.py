"""How noisy one step's `entropy/mean` is, for a fixed policy: the floor under any entropy
controller's |H - target|.

For each model folder (a run's `checkpoint-*/model`), draws `--batches` rollout batches as a
training step does (train.prompts_per_step prompts from the task, train.group_size samples
each, at train.temperature, settings from the run's config.yaml two folders up) and measures
each batch's mean token entropy, as the trainer's `entropy/mean`. Prints the mean, the
standard deviation sd over batches, and 0.8 sd (E|N(0, sd)| = sqrt(2/pi) sd): the mean
|H - target| of a controller whose policy sat exactly at the target, from the measurement's
noise alone.

    .venv/bin/python scripts/entropy_noise.py runs/cvf-t1/sum3/h128x4/bonus_fixed_step/seed*/checkpoint-000151/model
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from entropy_rl.config import load_config
from entropy_rl.core.entropy import token_entropy
from entropy_rl.core.masked import masked_mean
from entropy_rl.tasks import make_task
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.policy import Policy, local_worker
from entropy_rl.training.rollout.scoring import response_logits


@torch.no_grad()
def batch_entropies(model_dir: Path, batches: int, seed: int) -> np.ndarray:
    config = load_config(model_dir.parents[1] / "config.yaml")
    model, tokenizer = load_pretrained(model_dir, dtype="float32")
    policy = Policy(model.eval(), tokenizer)
    task = make_task(config.task)
    worker = local_worker(policy, task)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    train = config.train
    out = []
    for _ in range(batches):
        problems = task.sample_problems(train.prompts_per_step, rng)
        group = [p for p in problems for _ in range(train.group_size)]  # (B*G,)
        rollout, _ = worker.sample(policy, group, generator, train.temperature)
        entropy = token_entropy(response_logits(model, rollout, train.temperature))  # (B*G, T)
        out.append(float(masked_mean(entropy, rollout.response_mask.float())))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model folders (checkpoint-*/model)")
    parser.add_argument("--batches", type=int, default=100, help="rollout batches per model")
    parser.add_argument("--seed", type=int, default=0, help="prompt and sampling seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model_dir in args.models:
        h = batch_entropies(model_dir, args.batches, args.seed)
        sd = float(h.std(ddof=1))
        print(
            f"{model_dir}: entropy/mean {h.mean():.4f}, sd {sd:.4f} over {h.size} batches, "
            f"floor on mean |H - target| {math.sqrt(2 / math.pi) * sd:.4f}"
        )


if __name__ == "__main__":
    main()
