"""What the subcommands share: the one-line user error, quieting the libraries, the config
arguments with their fields' help, and the key arguments of the commands that read logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entropy_rl.errors import os_error_line

USAGE_ERROR = 2
"""Exit code of a user error, as argparse uses for its own."""


def error(command: str, err: BaseException) -> int:
    """Print a one-line user error to stderr (rank 0 only under torchrun); return USAGE_ERROR.
    An OSError's line names the path and the OS error."""
    import os

    text = os_error_line(err) if isinstance(err, OSError) else str(err)
    message = " ".join(text.split()) or type(err).__name__
    if os.environ.get("RANK", "0") == "0":
        print(f"entropy-rl {command}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def quiet_libraries() -> None:
    """Our own progress display replaces transformers' per-file bars and notices."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class Parser(argparse.ArgumentParser):
    """A parser whose epilog may be a function, called only when help is printed (the
    config fields' help needs torch imported; parsing `fit` should not)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def fields_epilog(*scope: str):
    """The epilog (a function, for `Parser`) listing the config fields under the sections or
    field names in `scope`, with their defaults and help; every field when `scope` is empty."""

    def epilog() -> str:
        from entropy_rl.config import describe_fields

        head = "config fields (section.field, default)"
        lines = [f"{head}:" if not scope else f"{head} this command uses (train --help: all):"]
        for name, default, doc in describe_fields():
            if scope and not any(name == s or name.startswith(s + ".") for s in scope):
                continue
            lines.append(f"  {name} = {default}")
            if doc:
                lines.append(f"      {doc}")
        return "\n".join(lines)

    return epilog


def add_config_args(p: argparse.ArgumentParser, example: str = "loss.mode=clip_cov") -> None:
    """--config FILE and the positional overrides section.field=value."""
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="section.field=value",
        help=f"config overrides, applied after --config (e.g. {example})",
    )


def add_key_args(p: argparse.ArgumentParser) -> None:
    """--from and the key options of the commands that read logs (fit, report, watch)."""
    from entropy_rl.analysis.readers import PRESETS

    p.add_argument(
        "--from",
        dest="preset",
        choices=tuple(PRESETS),
        help="the framework that wrote the log, for its key names (default: the first preset "
        "whose entropy and performance keys the log has, in the order listed)",
    )
    p.add_argument(
        "--entropy-key", metavar="K", help="key of the policy entropy H (default: the preset's)"
    )
    p.add_argument(
        "--reward-key",
        metavar="K",
        help="key of the performance R, validation accuracy or reward (default: the preset's)",
    )
    p.add_argument(
        "--step-key",
        metavar="K",
        help="key of the training step; 'a|b' takes b where a record has no a (default: the "
        "preset's step key; else the format's own step, TensorBoard's and W&B's; else step, "
        "Step, _step or global_step; else the record index)",
    )


def log_keys(args: argparse.Namespace) -> dict[str, str | None]:
    """The options of `add_key_args`, as `entropy_rl.analysis.readers.entropy_reward` takes
    them."""
    return {
        "entropy_key": args.entropy_key,
        "reward_key": args.reward_key,
        "step_key": args.step_key,
        "preset": args.preset,
    }
