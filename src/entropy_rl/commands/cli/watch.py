"""`entropy-rl watch`: follow live logs, the law fitted as they grow, and its alarms."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entropy_rl.commands.cli._common import add_key_args, error, log_keys

WATCH_DESCRIPTION = """\
Follow one or more training logs while they grow and print, for every new evaluation, the
step, H, R, the law R = -a*exp(H) + b fitted on the evaluations so far (from 5 on), its
ceiling b - a with its 95% interval, the forecast gain left (the interval's upper end minus
the best R so far) and a status: ok, or the alarms that hold. PATH is any log `entropy-rl
fit` reads (a run directory, TensorBoard events, a W&B run directory, a verl console or
file log, a TRL output directory, JSONL, CSV); one that does not exist yet is waited for.

alarms (H_0: the entropy at the first evaluation; H: at the latest):
  collapse    at least --collapse-spent of H_0 is spent (1 - H/H_0) while the law is
              reliable and its forecast gain left is below --collapse-gain
  explosion   H > (1 + --explosion-rise) * H_0, or H rose at each of the last
              --explosion-window evaluations, by more than --explosion-rise * H_0 in all
  saturation  the law is reliable and its forecast gain left is below --min-gain: the
              rule of train.stop_at_saturation (the same function)
A reliable law: 5 evaluations or more and R² >= 0.8.

exit codes: 0 done (--once, or --idle-timeout reached), 2 a log that cannot be read or a
bad option, 3 collapse, 4 explosion, 5 saturation (each only when named in --exit-on),
130 Ctrl-C.

examples:
  entropy-rl watch runs/grpo-20261203-101500
  entropy-rl watch tensorboard_log/gsm8k/qwen-grpo --exit-on collapse,explosion
  entropy-rl watch verl_console.log --from verl --json --tensorboard tensorboard_log/law
  entropy-rl watch runs/exp/*/metrics.jsonl --once
"""


def _add_watch(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl watch`."""
    from entropy_rl.analysis.watch import ALARMS, Options, Rules

    rules, options = Rules(), Options()
    p = subparsers.add_parser(
        "watch",
        help="follow live logs: the law, its ceiling and alarms (collapse, explosion, saturation)",
        description=WATCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="logs to follow")
    add_key_args(p)
    p.add_argument(
        "--exit-on",
        default="",
        metavar="LIST",
        help=f"stop with the alarm's exit code when one of these fires: a comma-separated "
        f"subset of {','.join(ALARMS)} (default: none, only report)",
    )
    numbers = (
        ("--collapse-spent", float, rules.collapse_spent, "F",
         "share of the start entropy spent for a collapse"),
        ("--collapse-gain", float, rules.collapse_gain, "G",
         "forecast gain left below which a spent entropy is a collapse"),
        ("--explosion-rise", float, rules.explosion_rise, "F",
         "rise, as a share of the start entropy, for an explosion"),
        ("--explosion-window", int, rules.explosion_window, "N",
         "evaluations of steady rise for an explosion"),
        ("--min-gain", float, rules.min_gain, "G",
         "forecast gain left below which the run is saturated, as train.saturation_min_gain"),
        ("--interval", float, options.interval, "S", "seconds between reads of the logs"),
        ("--idle-timeout", float, options.idle_timeout, "S",
         "stop (exit 0) after this many seconds without a new evaluation; 0: never"),
    )  # fmt: skip
    for flag, kind, default, metavar, text in numbers:
        p.add_argument(
            flag, type=kind, default=default, metavar=metavar, help=f"{text} (default: %(default)s)"
        )
    p.add_argument(
        "--once", action="store_true",
        help="read each log once, report every evaluation in it, and stop",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per evaluation")
    p.add_argument(
        "--tensorboard", type=Path, metavar="DIR",
        help="also write the law's law/* scalars, at each evaluation's step, to TensorBoard "
        "event files in DIR/<the log's name>; point TensorBoard at a "
        "folder above it and your own runs to see them side by side",
    )  # fmt: skip
    p.set_defaults(handler=_run_watch)


def _run_watch(args: argparse.Namespace) -> int:
    """Handle `entropy-rl watch`."""
    from entropy_rl.analysis.readers import LogFormatError
    from entropy_rl.analysis.watch import ALARMS, Follower, Options, Rules, watch

    exit_on = tuple(k.strip() for k in args.exit_on.split(",") if k.strip())
    problem = _watch_problem(args, exit_on, ALARMS)
    if problem:
        return error("watch", ValueError(problem))
    rules = Rules(
        args.collapse_spent, args.collapse_gain, args.explosion_rise, args.explosion_window,
        args.min_gain,
    )  # fmt: skip
    options = Options(
        rules, exit_on, args.interval, args.once, args.idle_timeout, args.json, args.tensorboard
    )
    followers = [Follower(path, log_keys(args)) for path in args.paths]
    try:
        return watch(followers, options, sys.stdout, lambda text: print(text, file=sys.stderr))
    except LogFormatError as err:
        return error("watch", err)


def _watch_problem(args: argparse.Namespace, exit_on: tuple[str, ...], alarms) -> str | None:
    """What is wrong with watch's options, or None."""
    unknown = [k for k in exit_on if k not in alarms]
    if unknown:
        return f"--exit-on takes {','.join(alarms)}, got {','.join(unknown)}"
    if not 0.0 < args.collapse_spent <= 1.0:
        return f"--collapse-spent must be in (0, 1], got {args.collapse_spent:g}"
    if args.explosion_window < 1:
        return f"--explosion-window must be >= 1, got {args.explosion_window}"
    for name in ("collapse_gain", "explosion_rise", "min_gain", "interval", "idle_timeout"):
        value = getattr(args, name)
        if not value >= 0.0 or value == float("inf"):
            return f"--{name.replace('_', '-')} must be a finite number >= 0, got {value:g}"
    return None
