"""Cost of the paper's diagnostics in an RL step of the embedded default.

Times `trainer.run_step` (no evaluation) with the probe-state diagnostics on (the exact
entropy change and Lemma 1 on `diagnostics.probe_size` responses) and off (probe_size=0),
alternating A/B rounds from the same starting state, and separately the rollout statistics
that are always computed (entropy by position, both batch covariances, the positive share).
Uses the cached base model of the default config (makes it first if missing). Prints a table.

    .venv/bin/python benchmarks/diagnostics_overhead.py
    .venv/bin/python benchmarks/diagnostics_overhead.py --rounds 5 --steps 10 diagnostics.probe_size=128
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from entropy_rl.config import load_config
from entropy_rl.core import token_entropy
from entropy_rl.tasks import make_task
from entropy_rl.training.diagnostics import by_position, rollout_statistics
from entropy_rl.training.distributed import Dist
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.policy import Policy, local_worker
from entropy_rl.training.pretrain import pretrain
from entropy_rl.training.run_state import RunState
from entropy_rl.training.trainer import collect, run_step


def _fresh(config, base):
    model, tokenizer = load_pretrained(base)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    state = RunState.fresh(config.train.seed)
    state.step = 1  # not an evaluation step
    policy = Policy(model.eval(), tokenizer)
    return policy, local_worker(policy, make_task(config.task)), optimizer, state


def _seconds_per_step(config, base, steps: int) -> float:
    policy, worker, optimizer, state = _fresh(config, base)
    start = time.perf_counter()
    for _ in range(steps):
        run_step(policy, worker, optimizer, config, state, [], Dist())
        state.step += 1
    return (time.perf_counter() - start) / steps


def _rollout_statistics_seconds(config, base, repeats: int = 50) -> float:
    policy, worker, _, state = _fresh(config, base)
    batch, _ = collect(policy, worker, config, state, Dist())
    entropy = token_entropy(batch.old_logits)  # (B, T)
    start = time.perf_counter()
    for _ in range(repeats):
        rollout_statistics(entropy, batch.old_log_probs, batch.advantages, batch.mask)
        by_position(entropy, batch.mask)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round and arm")
    parser.add_argument("overrides", nargs="*", help="config overrides, section.field=value")
    args = parser.parse_args()
    config = load_config(None, ["train.steps=100000", "eval.every=100000", *args.overrides])
    base = pretrain(config)
    off = dataclasses.replace(
        config, diagnostics=dataclasses.replace(config.diagnostics, probe_size=0)
    )
    with_probe, without = [], []
    for _ in range(args.rounds):
        with_probe.append(_seconds_per_step(config, base, args.steps))
        without.append(_seconds_per_step(off, base, args.steps))
    on_s, off_s = statistics.median(with_probe), statistics.median(without)
    stats_s = _rollout_statistics_seconds(config, base)
    batch = config.train.prompts_per_step * config.train.group_size
    print(f"RL step of the embedded default ({batch} responses), median of {args.rounds} rounds")
    print(f"{'':38} {'s / step':>9} {'overhead':>9}")
    print(f"{'no probe (diagnostics.probe_size=0)':38} {off_s:>9.4f}")
    print(
        f"{'probe on ' + str(config.diagnostics.probe_size) + ' responses':38} {on_s:>9.4f}"
        f" {on_s / off_s - 1:>+9.1%}"
    )
    print(
        f"{'rollout statistics (always on)':38} {stats_s:>9.4f} {stats_s / off_s:>+9.1%}"
        "  (of the step without probe)"
    )


if __name__ == "__main__":
    main()
