"""`entropy-rl experiment`: a grid of training runs, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from entropy_rl.commands.cli._common import error
from entropy_rl.errors import INTERRUPTED

EXPERIMENT_DESCRIPTION = """\
Run every training run an experiment file asks for, each an ordinary run directory
OUT/<task>/<size>/<method>/seed<seed>. Jobs go --jobs at a time in separate processes:
the missing base models first, and each run as soon as its base model is ready. Finished runs are skipped and interrupted ones
resumed, so the same command continues an experiment after Ctrl-C or a crash. OUT gets
experiment.json (every run's labels and status, the wall time) and logs/ (each process's
output). See experiments/paper_small.yaml for the file format.

example:
  entropy-rl experiment --config experiments/paper_small.yaml
  entropy-rl report runs/paper_small --out docs/results
"""


def _add_experiment(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl experiment`."""
    p = subparsers.add_parser(
        "experiment",
        help="run a grid of training runs (methods x seeds x model sizes x tasks), resumably",
        description=EXPERIMENT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, metavar="EXP.yaml", help="experiment file")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="experiment directory (default: runs/<experiment name>)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        metavar="N",
        help="runs at a time, each in its own process (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads per run (default: CPU cores // jobs, at least 1)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and their settings; train nothing"
    )
    p.set_defaults(handler=_run_experiment)


def _run_experiment(args: argparse.Namespace) -> int:
    """Handle `entropy-rl experiment`."""
    import os

    from rich.console import Console

    from entropy_rl.commands.experiment import describe, load_experiment, run_experiment
    from entropy_rl.config import ConfigError

    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        return error("experiment", ValueError("--jobs and --threads must be >= 1"))
    try:
        experiment = load_experiment(args.config)
    except ConfigError as err:
        return error("experiment", err)
    if args.dry_run:
        print("\n".join(describe(experiment)))
        return 0
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    out = args.out or Path("runs") / experiment.name
    manifest = run_experiment(
        experiment, out, jobs=args.jobs, threads=threads, console=Console(stderr=True)
    )
    if manifest["interrupted"]:
        return INTERRUPTED
    return 1 if manifest["failed"] else 0
