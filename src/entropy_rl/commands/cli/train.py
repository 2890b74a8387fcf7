"""`entropy-rl train`: an RL run, new or resumed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entropy_rl.commands.cli._common import add_config_args, error, fields_epilog, quiet_libraries
from entropy_rl.errors import INTERRUPTED

TRAIN_DESCRIPTION = """\
Train a policy with RL on verifiable rewards (GRPO-style) and log the paper's diagnostics.

Configuration: defaults, then --config FILE (YAML, sections as below), then overrides
section.field=value on the command line. The resolved config is saved in the run directory.
A field shown with two defaults depends on scale: unless set, it takes the embedded task's
value, or the paper's when --model (model.path) is given.

examples:
  entropy-rl train loss.mode=kl_cov loss.kl_cov_ratio=0.2 train.steps=100
  entropy-rl train --model ~/models/Qwen2.5-0.5B --reward math task.name=dataset task.train_file=train.jsonl
  torchrun --nproc_per_node=2 -m entropy_rl train --model DIR distributed.strategy=fsdp ...
  entropy-rl train --config my.yaml --run-dir runs/exp1
  entropy-rl train --resume runs/exp1

Resuming: one process at a time may use a run directory (a second one is told which process
holds it, exit code 2). A resume starts from the newest checkpoint whose files match their
checksums (train.keep_checkpoints are kept), saying which it skipped and why; metrics rows
it cannot trust are recomputed from an older checkpoint, or it refuses naming the line. An
edit of the run's config.yaml is applied (and reported) for the fields listed in
`entropy_rl.runs.resume_point.APPLICABLE_EDITS` (train.steps, train.lr, ...) and refused for the others.
A finished run is left as it is; one that train.stop_at_saturation stopped goes on only
once its config.yaml would not stop it there (train.stop_at_saturation: false, or a lower
train.saturation_min_gain). The first Ctrl-C stops after the current step with a
checkpoint, a second one at once; both exit with code 130.
"""


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl train`."""
    p = subparsers.add_parser(
        "train",
        help="RL training with the paper's entropy diagnostics",
        description=TRAIN_DESCRIPTION,
        epilog=fields_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="run directory (default: runs/<loss.mode>-<timestamp>)",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest checkpoint that verifies (its "
        "config.yaml is used; see 'Resuming' above)",
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="local Hugging Face model directory to train (sets model.path; never downloaded)",
    )
    p.add_argument(
        "--reward",
        metavar="SPEC",
        help="math, or package.module:function called as fn(prompt, response, answer) "
        "(sets task.reward)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=_run_train)


def _shortcuts(args: argparse.Namespace) -> list[str]:
    """--model and --reward as config overrides (applied last)."""
    out = [] if args.model is None else [f"model.path={args.model}"]
    return out + ([] if args.reward is None else [f"task.reward={args.reward}"])


def _run_train(args: argparse.Namespace) -> int:
    """Handle `entropy-rl train`."""
    from entropy_rl.commands.api import default_run_dir, load_config  # checked
    from entropy_rl.config import ConfigError
    from entropy_rl.errors import TrainingError

    try:
        if args.resume is not None:
            if (
                args.config is not None
                or args.overrides
                or args.run_dir is not None
                or _shortcuts(args)
            ):
                raise ConfigError(
                    "--resume uses the run's saved config: drop --config, --run-dir, --model, "
                    "--reward and overrides"
                )
            config, run_dir = None, args.resume
        else:
            overrides = [*args.overrides, *_shortcuts(args)]
            config = load_config(args.config, overrides)  # checked before any directory is made
            run_dir = args.run_dir or default_run_dir(config)
        quiet_libraries()
        from entropy_rl.training.runner import train

        result = train(config, run_dir, resume=config is None, show_progress=not args.quiet)
    except ConfigError as err:
        return error("train", err)
    except TrainingError as err:
        print(f"entropy-rl train: {err}", file=sys.stderr)
        return 1
    return INTERRUPTED if "stopped_at" in result else 0
