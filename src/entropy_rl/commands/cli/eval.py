"""`entropy-rl eval`: pass@k, greedy accuracy and answer entropy of a model or a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from entropy_rl.commands.cli._common import add_config_args, error, fields_epilog, quiet_libraries

if TYPE_CHECKING:
    from rich.table import Table

EVAL_DESCRIPTION = """\
Evaluate a saved model, or a run's last checkpoint, on a data file or on its task's
validation prompts: eval.samples (n) samples per prompt at eval.temperature, drawn with
eval.seed. Prints the unbiased pass@k (1 - C(n-c,k)/C(n,k), Chen et al. 2021) for k up to
n (all of them in --json), greedy accuracy, the answer entropy (entropy of the distinct
final answers among a prompt's samples, nats, mean over prompts) and the samples' token
entropy. pass@1 is the mean reward of the samples: the estimator of training's val/acc.

TARGET is a run directory (its task, prompts and config, plus overrides), a checkpoint
directory, or a model directory saved with save_pretrained (defaults, --config, overrides).
--data FILE takes every row of a .jsonl/.json/.parquet file instead (task.prompt_key,
task.answer_key), scored by the math reward unless --reward names another.

examples:
  entropy-rl eval runs/demo/grpo eval.samples=16
  entropy-rl eval ~/models/Qwen2.5-Math-1.5B --data test.jsonl eval.samples=8 --json
"""

EVAL_FIELDS = (
    "model",
    "task",
    "eval.samples",
    "eval.temperature",
    "eval.greedy",
    "eval.seed",
    "rollout.sampling",
    "train.reward_timeout_s",
    "train.logits_mib",
    "pretrain.cache_dir",
)
"""The config sections and fields `entropy-rl eval` reads (commands/evaluate.py; a test checks)."""


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl eval`."""
    p = subparsers.add_parser(
        "eval",
        help="pass@k, greedy accuracy and answer entropy of a model or a run's checkpoint",
        description=EVAL_DESCRIPTION,
        epilog=fields_epilog(*EVAL_FIELDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", type=Path, metavar="TARGET", help="run, checkpoint or model dir")
    add_config_args(p, "eval.samples=16")
    p.add_argument("--data", type=Path, metavar="FILE", help="prompts and answers to evaluate on")
    p.add_argument(
        "--reward",
        metavar="SPEC",
        help="math, or package.module:function called as fn(prompt, response, answer) "
        "(sets task.reward)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result here")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    """Handle `entropy-rl eval`."""
    from rich.console import Console

    from entropy_rl.config import ConfigError
    from entropy_rl.runs.atomic import write_atomic

    quiet_libraries()
    from entropy_rl.commands.evaluate import evaluate_model

    overrides = [*args.overrides] + ([] if args.reward is None else [f"task.reward={args.reward}"])
    try:
        result = evaluate_model(
            args.target,
            args.data,
            config_file=args.config,
            overrides=overrides,
            show_progress=not args.quiet,
        )
        text = json.dumps(result, indent=2, allow_nan=False) + "\n"
        if args.out is not None:
            write_atomic(args.out, text)
    except (ConfigError, OSError) as err:
        return error("eval", err)
    if args.json:
        print(text, end="")
    else:
        Console(highlight=False, markup=False).print(_eval_table(result))
    return 0


def _eval_table(result: dict) -> Table:
    """The readable form of an `entropy-rl eval` result."""
    from rich.table import Table

    from entropy_rl.training.validation import shown_ks

    table = Table(title="entropy-rl eval", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", result["model"])
    table.add_row("data", result["data"])
    table.add_row(
        "samples",
        f"{result['prompts']} prompts x {result['samples']} at temperature "
        f"{result['temperature']:g} (seed {result['seed']})",
    )
    for k in shown_ks(result["samples"]):
        label = "pass@1 (mean reward, as val/acc)" if k == 1 else f"pass@{k}"
        table.add_row(label, f"{result['pass_at_k'][str(k)]:.4f}")
    greedy = result["acc_greedy"]
    table.add_row("greedy accuracy", "-" if greedy is None else f"{greedy:.4f}")
    table.add_row("answer entropy (nats)", f"{result['answer_entropy']:.4f}")
    table.add_row("token entropy (nats)", f"{result['entropy']:.4f}")
    table.add_row("failed reward calls", str(result["reward_errors"]))
    return table
