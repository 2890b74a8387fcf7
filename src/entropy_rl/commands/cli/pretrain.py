"""`entropy-rl pretrain`: make (or find) the base model of an embedded task."""

from __future__ import annotations

import argparse
from pathlib import Path

from entropy_rl.commands.cli._common import add_config_args, error, fields_epilog, quiet_libraries

PRETRAIN_FIELDS = ("model", "task", "pretrain")
"""The config sections `entropy-rl pretrain` reads (training/pretrain.py, tasks/base_models.py)."""


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl pretrain`."""
    p = subparsers.add_parser(
        "pretrain",
        help="make (or find) the base model: a short supervised run on demonstrations",
        description="Make the base model RL starts from, by supervised training on noisy "
        "demonstrations of the task, and report its validation accuracy and entropy. Saved "
        "with save_pretrained under pretrain.cache_dir (metrics in its pretrain.json) and "
        "reused by later runs. Exit code 2 when it has not learnt its task (held-out greedy "
        "accuracy below pretrain.min_greedy).",
        epilog=fields_epilog(*PRETRAIN_FIELDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, "pretrain.max_steps=4000")
    p.add_argument(
        "--progress",
        type=Path,
        metavar="FILE",
        help="also write each held-out check (step, total, loss, greedy accuracy) to FILE as "
        "JSON, replaced at each check (how `entropy-rl experiment` follows its base models)",
    )
    p.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    """Handle `entropy-rl pretrain`."""
    from rich.console import Console

    quiet_libraries()
    from entropy_rl.config import ConfigError, load_config
    from entropy_rl.training.pretrain import make_base_model, require_learnt

    try:
        config = load_config(args.config, args.overrides)
        target = make_base_model(
            config, Console(stderr=True), Console(soft_wrap=True), progress_file=args.progress
        )
        require_learnt(target, config.pretrain.min_greedy)
    except ConfigError as err:
        return error("pretrain", err)
    return 0
