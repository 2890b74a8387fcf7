"""`entropy-rl demo`: the paper's phenomenon on the embedded toy setting, in minutes on a CPU.

Makes (or reuses) the base model, then trains GRPO, KL-Cov and Clip-Cov from it with the
default config (the embedded task's values of `config.SCALE_DEFAULTS`) and the method's
loss.mode, one run directory each under the demo directory, and prints a side-by-side
summary. Finished runs are reused and interrupted ones resumed, so running the demo again
is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console

from entropy_rl.config import Config, load_config
from entropy_rl.core import masked_mean, token_entropy
from entropy_rl.evaluation import UNLEARNT_GREEDY, evaluate
from entropy_rl.models import load_pretrained
from entropy_rl.policy import Policy
from entropy_rl.pretrain import base_model_dir, is_saved, pretrain
from entropy_rl.rollout import response_logits
from entropy_rl.runner import discard_unsaved, run_status, train
from entropy_rl.summary import SUMMARY_FILE, summary_table
from entropy_rl.tasks import make_task


def method_config(method: str, overrides: list[str]) -> Config:
    """The defaults, the method's loss.mode (GRPO is mode ppo), then the user's overrides."""
    mode = "ppo" if method == "grpo" else method
    return load_config(None, [f"loss.mode={mode}", *overrides])


def _make_base(config: Config, console: Console) -> None:
    target = base_model_dir(config)
    if is_saved(target):
        console.print(f"base model: {target} (cached)")
        return
    console.print(f"making the base model ({config.pretrain.steps} supervised steps) ...")
    with console.status("pretraining") as status:
        pretrain(
            config,
            progress=lambda step, loss: status.update(f"pretrain step {step} loss {loss:.3f}"),
        )
    info = json.loads((target / "pretrain.json").read_text())
    console.print(f"base model: {target} ({info.get('wall_time_s', 0):.0f} s)")


def describe_base_model(config: Config, console: Console) -> dict[str, float]:
    """Make (or find) the base model and print its validation accuracy and entropy."""
    _make_base(config, console)
    model, tokenizer = load_pretrained(base_model_dir(config))
    policy = Policy(model.eval(), tokenizer, make_task(config.task))
    problems = policy.task.validation_problems()
    metrics = evaluate(
        policy,
        problems,
        config.eval,
        torch.Generator().manual_seed(0),
        config.train.reward_timeout_s,
    )
    rollout, _ = policy.sample(problems, torch.Generator().manual_seed(1))
    with torch.no_grad():
        entropy = token_entropy(response_logits(policy.model, rollout))  # (B, T)
    metrics["entropy/mean"] = float(masked_mean(entropy, rollout.response_mask.float()))
    for key, value in metrics.items():
        console.print(f"  {key:16s} {value:.3f}")
    if metrics.get("val/acc_greedy", 1.0) < UNLEARNT_GREEDY:
        console.print(
            f"[yellow]warning[/]: the base model has not learnt the task (greedy accuracy "
            f"{metrics['val/acc_greedy']:.2f} < {UNLEARNT_GREEDY}): the carries are learnt in a "
            "sudden transition whose timing depends on the model size and on float summation "
            "order (thread count); RL from this model studies another regime"
        )
    return metrics


def run_demo(out: Path, methods: tuple[str, ...], overrides: list[str], console: Console) -> dict:
    """Train each method in out/<method>/ (reusing finished runs); returns their summaries."""
    _make_base(method_config(methods[0], overrides), console)
    summaries = {}
    for method in methods:
        run_dir = out / method
        status = run_status(run_dir)
        if status == "done":
            console.print(f"{method}: finished run in {run_dir}, reused")
            summaries[method] = json.loads((run_dir / SUMMARY_FILE).read_text())
            continue
        resume = status == "partial"
        discard_unsaved(run_dir)
        console.rule(f"{method}")
        summaries[method] = train(
            None if resume else method_config(method, overrides),
            run_dir,
            resume=resume,
            console=console,
        )
        if "stopped_at" in summaries[method]:
            return summaries
    console.print(summary_table(summaries))
    return summaries
