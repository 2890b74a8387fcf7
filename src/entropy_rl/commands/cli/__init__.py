"""The `entropy-rl` command: one module per subcommand, each with a function pair
`_add_<name>` / `_run_<name>`.

To add a subcommand, write a module `cli/<name>.py` with an `_add_<name>(subparsers)` that
registers its parser with `set_defaults(handler=_run_<name>)`, and list it in `SUBCOMMANDS`.
A handler returns the exit code; user errors print one line `entropy-rl <name>: error: ...`
and return 2 (`_common.error`). `main` does the same for what any command may meet: a run
directory that cannot be used (`RunError`: another process holds it, no checkpoint verifies,
...) and I/O errors (one line naming the path and the OS error); Ctrl-C outside a training
loop ends with one line and exit code 130.
"""

from __future__ import annotations

import argparse
import signal
import sys

from entropy_rl import __version__
from entropy_rl.commands.cli import demo, eval, experiment, fit, pretrain, report, train, watch
from entropy_rl.commands.cli._common import USAGE_ERROR, Parser, error
from entropy_rl.errors import INTERRUPTED, RunError

__all__ = ["SUBCOMMANDS", "USAGE_ERROR", "build_parser", "main", "run"]

SUBCOMMANDS = (
    demo._add_demo,
    train._add_train,
    eval._add_eval,
    pretrain._add_pretrain,
    experiment._add_experiment,
    report._add_report,
    fit._add_fit,
    watch._add_watch,
)
"""Registrars of the subcommands, in --help order."""


def build_parser() -> argparse.ArgumentParser:
    """The `entropy-rl` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="entropy-rl",
        description="Study policy entropy in RL of language models (Cui et al. 2025).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit code."""
    command = "command"
    hook = sys.unraisablehook
    sys.unraisablehook = _interrupt_again(hook)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        _take_late_overrides(parser, args, extra)
        command = args.command
        return args.handler(args)
    except KeyboardInterrupt:  # before the command line was read: the program's own line
        name = "entropy-rl" if command == "command" else f"entropy-rl {command}"
        print(f"{name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except RunError as err:
        return error(command, err)
    except OSError as err:
        return error(command, err)
    finally:
        sys.unraisablehook = hook


def run() -> None:
    """The `entropy-rl` executable: `main`, then exit with its code. After a Ctrl-C the exit
    skips the interpreter's own, which dies by SIGINT instead of exiting with code 130 when
    the KeyboardInterrupt passed through code a C extension ran (pybind11's `exec`) even
    though `main` caught it; the shell sees 130 either way, a parent process does not."""
    import os

    code = main()
    if code == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def _interrupt_again(hook):
    """An unraisable-exception hook that sends SIGINT again when a Ctrl-C's KeyboardInterrupt
    was raised inside a `__del__` (where Python ignores it): without it, a Ctrl-C during
    start-up is sometimes lost and the run goes on. Other exceptions go to `hook`."""

    def handle(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            return
        hook(unraisable)

    return handle


def _take_late_overrides(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> None:
    """Overrides may stand anywhere on a command line: argparse takes only the first run of
    positionals (`train a=1 --run-dir X b=2` leaves `b=2` over); those left over are appended
    to `args.overrides` in order. Anything else left over (an unknown option) is an error."""
    late = [item for item in extra if not item.startswith("-")]
    unknown = [item for item in extra if item.startswith("-")]
    if unknown or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if late:
        args.overrides = [*args.overrides, *late]
