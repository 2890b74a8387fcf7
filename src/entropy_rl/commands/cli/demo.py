"""`entropy-rl demo`: the paper's phenomenon on the embedded toy setting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entropy_rl.commands.cli._common import error, quiet_libraries
from entropy_rl.config.methods import DEMO_METHODS
from entropy_rl.errors import INTERRUPTED


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl demo`."""
    p = subparsers.add_parser(
        "demo",
        help="the paper's phenomenon on the embedded toy setting: GRPO vs KL-Cov vs Clip-Cov",
        description="Make (or reuse) the base model, train GRPO, KL-Cov and Clip-Cov on the "
        "embedded task with the default config (its toy-scale values), and print a side-by-side "
        "summary (entropy and validation accuracy start -> end, the law's fitted ceiling, Lemma-1 "
        "agreement). Finished runs are reused, interrupted ones resumed.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="demo directory, one run directory per method (default: %(default)s)",
    )
    p.add_argument(
        "--methods",
        default=",".join(DEMO_METHODS),
        metavar="LIST",
        help="comma-separated subset of %(default)s",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="section.field=value",
        help="config overrides applied to every method (e.g. train.steps=50)",
    )
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    """Handle `entropy-rl demo`."""
    from rich.console import Console

    quiet_libraries()
    from entropy_rl.commands.demo import run_demo
    from entropy_rl.config import ConfigError
    from entropy_rl.errors import TrainingError

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in DEMO_METHODS]
    if unknown or not methods:
        return error(
            "demo",
            ValueError(
                f"--methods must be a subset of {','.join(DEMO_METHODS)}, got {args.methods!r}"
            ),
        )
    try:
        summaries = run_demo(args.out, methods, args.overrides, Console(stderr=True))
    except ConfigError as err:
        return error("demo", err)
    except TrainingError as err:
        print(f"entropy-rl demo: {err}", file=sys.stderr)
        return 1
    return INTERRUPTED if any("stopped_at" in s for s in summaries.values()) else 0
