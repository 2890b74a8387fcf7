"""Throughput and peak memory of this project's RL step against TRL's `GRPOTrainer`, on CPU.

Both arms train the same Qwen2 policy (the embedded default size, and wider ones) on the same
work: sum3 prompts, 16 prompts x 8 responses = 128 responses per RL step, at most 8 response
tokens (eos included), temperature 1, then 4 AdamW updates on mini-batches of 32, with no
KL term and no evaluation. The weights are freshly initialised (not pretrained) and the same
for both arms, so nothing has to be trained first; rewards are then ~0, which changes what is
learned but not the work done (every update still runs forward and backward).

One RL step is, in each arm:
  ours: one `entropy_rl.training.trainer.run_step` (no evaluation): sample 128 responses with the
        KV-cache loop, score them, a no-grad pass for old log-probs, entropy and the rollout
        statistics, 4 updates of 32 responses, then the probe diagnostics
        (`diagnostics.probe_size` responses re-scored after the updates).
  TRL:  4 optimizer steps of `GRPOTrainer` with per_device_train_batch_size=32,
        steps_per_generation=4 (so generation_batch_size=128 = 16 prompts x num_generations 8)
        and num_iterations=1: the first of the 4 generates and scores all 128 completions with
        `model.generate` and (generation and updates being misaligned) runs a no-grad pass for
        old log-probs; every one of the 4 then runs one update on its 32. Timed from the
        trainer's step-end callbacks, grouped by 4.

Each (size, arm) runs in a fresh child process, arms alternating, `--repeats` times; a child
discards `--warmup` RL steps and times `--steps`. Peak RSS is that child's ru_maxrss (the
whole process: Python, torch, the model, the optimizer, activations); "growth" is its rise
during training. Prints a table, then where this project's step time goes.

    .venv/bin/python benchmarks/vs_trl.py
    .venv/bin/python benchmarks/vs_trl.py --steps 4 --repeats 1 --sizes 128 256 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import our_breakdown, peak_rss_mib, time_our_steps, train_timed

UPDATES_PER_STEP = 4
OVERRIDES = [
    "train.steps=100000",
    "eval.every=100000",
    "train.prompts_per_step=16",
    "train.group_size=8",
    "train.mini_batches=4",
    "train.temperature=1.0",
]


def _config(hidden_size: int):
    from entropy_rl.config import load_config

    size = [f"model.hidden_size={hidden_size}", f"model.intermediate_size={4 * hidden_size}"]
    return load_config(None, [*OVERRIDES, *size])


def make_model(hidden_size: int, directory: Path) -> int:
    """Save an untrained policy of this width (default depth) and its tokenizer; its size."""
    from entropy_rl.tasks import make_task
    from entropy_rl.training.models import (
        build_model,
        build_tokenizer,
        count_parameters,
        save_pretrained_atomic,
    )
    from entropy_rl.training.pretrain import max_positions

    config = _config(hidden_size)
    task = make_task(config.task)
    tokenizer = build_tokenizer(task.alphabet)
    model = build_model(config.model, len(tokenizer), max_positions(task), seed=0)
    save_pretrained_atomic(model, tokenizer, directory)
    return count_parameters(model)


# ---- arm: this project ------------------------------------------------------------------


def run_ours(directory: Path, hidden_size: int, warmup: int, steps: int) -> dict:
    import torch

    from entropy_rl.tasks import make_task
    from entropy_rl.training import trainer
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.models import load_pretrained
    from entropy_rl.training.policy import Policy, local_worker
    from entropy_rl.training.run_state import RunState

    config = _config(hidden_size)
    parts: dict[str, float] = {}
    time_our_steps(parts, "update")

    model, tokenizer = load_pretrained(directory)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    state = RunState.fresh(config.train.seed)
    state.step = 1  # not an evaluation step
    policy = Policy(model.eval(), tokenizer)
    worker = local_worker(policy, make_task(config.task))
    rss_before = peak_rss_mib()
    times, tokens = [], 0
    for index in range(warmup + steps):
        if index == warmup:
            parts.clear()
        start = time.perf_counter()
        record = trainer.run_step(policy, worker, optimizer, config, state, [], Dist())
        times.append(time.perf_counter() - start)
        state.step += 1
        if index >= warmup:
            tokens += record["response/len_mean"] * 128
    return {
        "step_s": times[warmup:],
        "parts": our_breakdown(parts, steps, "old log-probs + stats"),
        "peak_mib": peak_rss_mib(),
        "growth_mib": peak_rss_mib() - rss_before,
        "response_tokens": tokens / steps,
    }


# ---- arm: TRL ---------------------------------------------------------------------------


def run_trl(directory: Path, hidden_size: int, warmup: int, steps: int) -> dict:
    import numpy as np
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    from entropy_rl.tasks import Problem, make_task

    config = _config(hidden_size)
    task = make_task(config.task)
    problems = task.sample_problems(16 * (warmup + steps + 2), np.random.default_rng(0))
    dataset = Dataset.from_dict(
        {"prompt": [p.prompt for p in problems], "answer": [p.answer for p in problems]}
    )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
    eos = tokenizer.eos_token

    def reward(prompts, completions, answer, **kwargs):
        return [
            task.reward(Problem(prompt, right), text.split(eos)[0])
            for prompt, text, right in zip(prompts, completions, answer, strict=True)
        ]

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vs_trl_"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=32,
        gradient_accumulation_steps=1,
        steps_per_generation=UPDATES_PER_STEP,  # generation_batch_size = 32 x 4 = 128
        num_generations=config.train.group_size,
        num_iterations=1,
        max_completion_length=task.max_response_tokens + 1,
        temperature=config.train.temperature,
        beta=0.0,
        learning_rate=config.train.lr,
        lr_scheduler_type="constant",
        weight_decay=config.train.weight_decay,
        max_grad_norm=config.train.grad_clip,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        max_steps=UPDATES_PER_STEP * (warmup + steps),
        seed=config.train.seed,
        activation_checkpointing=False,  # the same work as ours: TRL's default recomputes
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=str(directory),
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    times, before, parts = train_timed(trainer, UPDATES_PER_STEP, warmup, steps, peak_rss_mib)
    return {
        "step_s": times,
        "parts": parts,
        "peak_mib": peak_rss_mib(),
        "growth_mib": peak_rss_mib() - before,
    }


# ---- driver -----------------------------------------------------------------------------


def measure(arm: str, directory: Path, hidden_size: int, warmup: int, steps: int) -> dict:
    args = [sys.executable, __file__, "--child", arm, str(directory), str(hidden_size)]
    args += ["--warmup", str(warmup), "--steps", str(steps)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"{arm} child failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed RL steps per run (default 8)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded RL steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per arm and size (default 2)")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[128, 256],
        help="model.hidden_size values (default: 128, the embedded default, and 256, ~4x params)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arm, directory, hidden = args.child
        run = run_ours if arm == "ours" else run_trl
        print(json.dumps(run(Path(directory), int(hidden), args.warmup, args.steps)))
        return

    wall = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vs_trl_models_") as tmp:
        for hidden in args.sizes:
            directory = Path(tmp) / f"h{hidden}"
            params = make_model(hidden, directory)
            runs: dict[str, list[dict]] = {"ours": [], "TRL": []}
            for repeat in range(args.repeats):
                for arm in ("ours", "TRL") if repeat % 2 == 0 else ("TRL", "ours"):
                    print(f"hidden {hidden}: {arm}, run {repeat + 1}", file=sys.stderr)
                    runs[arm].append(measure(arm, directory, hidden, args.warmup, args.steps))
            rows.append((hidden, params, runs))

    print(
        f"RL step = 16 prompts x 8 responses (<= 8 tokens), 4 updates of 32; CPU, "
        f"{torch_threads()} threads; median step over {args.repeats} run(s) x {args.steps} steps; RSS: max over runs"
    )
    print(
        f"{'hidden':>6} {'params':>9} {'arm':>5} {'s/step':>8} {'steps/s':>8}"
        f" {'peak RSS MiB':>13} {'growth MiB':>11} {'ours/TRL steps/s':>17}"
    )
    for hidden, params, runs in rows:
        median = {
            arm: statistics.median(t for r in rs for t in r["step_s"]) for arm, rs in runs.items()
        }
        for arm, rs in runs.items():
            ratio = f"{median['TRL'] / median['ours']:>17.2f}" if arm == "ours" else ""
            print(
                f"{hidden:>6} {params / 1e6:>8.2f}M {arm:>5} {median[arm]:>8.3f} {1 / median[arm]:>8.2f}"
                f" {max(r['peak_mib'] for r in rs):>13.0f} {max(r['growth_mib'] for r in rs):>11.0f}"
                f" {ratio}"
            )
    for hidden, _params, runs in rows:
        for arm, rs in runs.items():
            parts = {key: statistics.mean(r["parts"][key] for r in rs) for key in rs[0]["parts"]}
            total = sum(parts.values())
            shares = ", ".join(
                f"{key} {value:.3f}s ({value / total:.0%})" for key, value in parts.items()
            )
            print(f"where the time goes, hidden {hidden}, {arm}: {shares}")
    print(f"total wall time {time.perf_counter() - wall:.0f} s")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
