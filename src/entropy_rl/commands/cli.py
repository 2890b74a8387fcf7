"""The `entropy-rl` command: one subcommand per function pair `_add_<name>` / `_run_<name>`.

To add a subcommand, write an `_add_<name>(subparsers)` that registers its parser with
`set_defaults(handler=_run_<name>)`, and list it in `SUBCOMMANDS`. A handler returns the
exit code; user errors print one line `entropy-rl <name>: error: ...` and return 2. `main`
does the same for what any command may meet: a run directory that cannot be used
(`RunError`: another process holds it, no checkpoint verifies, ...) and I/O errors (one line
naming the path and the OS error); Ctrl-C outside a training loop ends with one line and
exit code 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from entropy_rl import __version__
from entropy_rl.errors import INTERRUPTED, RunError, os_error_line
from entropy_rl.runs.layout import LAW_PLOT, LAW_RESULT

if TYPE_CHECKING:  # the rest is imported where used, so that Ctrl-C finds `main` running
    from rich.table import Table

    from entropy_rl.analysis import law
    from entropy_rl.analysis.readers import LogSeries

USAGE_ERROR = 2
"""Exit code of a user error, as argparse uses for its own."""

FIT_DESCRIPTION = """\
Fit the entropy-performance law R = -a*exp(H) + b (Cui et al. 2025) to a training log,
where H is the policy entropy and R the validation performance at the same step. Reports
a, b, the ceiling b - a (R at H = 0) with a confidence interval, and the paper's test:
fit the first part of the run and predict the rest. Writes a figure and a JSON summary.

LOG is any of: our run directory or its metrics.jsonl; TensorBoard event files or their
folder (verl, TRL, OpenRLHF); a Weights & Biases run directory (offline or synced) or its
.wandb file; a TRL trainer_state.json, checkpoint or output directory; verl's console
output (saved with tee) or file-logger JSONL; any JSON lines or CSV (W&B exports work).
Records lacking either key are skipped, so a validation score logged every few steps is
fine; records of the same step are merged.

Keys: --entropy-key / --reward-key / --step-key when given (K may hold * for any text);
else those of the --from preset; else of the first preset whose keys the log has:
{presets}

examples:
  entropy-rl fit runs/demo/grpo
  entropy-rl fit checkpoints/gsm8k/qwen-grpo/verl_console.log --from verl
  entropy-rl fit tensorboard_log/gsm8k/qwen-grpo --reward-key 'val-core/openai/gsm8k/acc/mean@8'
  entropy-rl fit trl-output/runs --json
  entropy-rl fit wandb/offline-run-20261203_120000-abc123
"""


def _presets_text() -> str:
    """One line per preset: its H keys and R keys, as `--help` shows them."""
    from entropy_rl.analysis.readers import PRESETS

    return "\n".join(
        f"  {p.name:<11} H: {', '.join(p.entropy)}\n  {'':<11} R: {', '.join(p.reward)}"
        for p in PRESETS.values()
    )


def build_parser() -> argparse.ArgumentParser:
    """The `entropy-rl` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="entropy-rl",
        description="Study policy entropy in RL of language models (Cui et al. 2025).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
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
    except KeyboardInterrupt:
        print(f"entropy-rl {command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except RunError as err:
        return _error(command, err)
    except OSError as err:
        return _error(command, err)
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


def _quiet_libraries() -> None:
    """Our own progress display replaces transformers' per-file bars and notices."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _error(command: str, err: BaseException) -> int:
    """Print a one-line user error to stderr (rank 0 only under torchrun); return USAGE_ERROR.
    An OSError's line names the path and the OS error."""
    import os

    text = os_error_line(err) if isinstance(err, OSError) else str(err)
    message = " ".join(text.split()) or type(err).__name__
    if os.environ.get("RANK", "0") == "0":
        print(f"entropy-rl {command}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


# --- fit -------------------------------------------------------------------------------


def _add_key_args(p: argparse.ArgumentParser) -> None:
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


def _log_keys(args: argparse.Namespace) -> dict[str, str | None]:
    """The options of `_add_key_args`, as `entropy_rl.analysis.readers.entropy_reward` takes them."""
    return {
        "entropy_key": args.entropy_key,
        "reward_key": args.reward_key,
        "step_key": args.step_key,
        "preset": args.preset,
    }


def _add_fit(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl fit`."""
    from entropy_rl.analysis import law

    p = subparsers.add_parser(
        "fit",
        help="fit R = -a*exp(H) + b to a training log and forecast from its start",
        description=FIT_DESCRIPTION.format(presets=_presets_text()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "log",
        type=Path,
        metavar="LOG",
        help="a run directory, TensorBoard events, a W&B run, a trainer_state.json, a verl "
        "console log, JSONL or CSV (see above)",
    )
    _add_key_args(p)
    p.add_argument(
        "--fit-fraction",
        type=float,
        default=law.DEFAULT_FIT_FRACTION,
        metavar="F",
        help="share of the points, from the start, fitted for the forecast (default: %(default)s)",
    )
    p.add_argument(
        "--ci-level",
        type=float,
        default=law.DEFAULT_CI_LEVEL,
        metavar="P",
        help="confidence level of the ceiling's interval (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"folder for {LAW_PLOT} and {LAW_RESULT} (default: <log stem>_fit/ next to LOG)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the JSON summary to stdout instead of tables"
    )
    p.set_defaults(handler=_run_fit)


def _run_fit(args: argparse.Namespace) -> int:
    """Handle `entropy-rl fit`."""
    from entropy_rl.analysis import law
    from entropy_rl.analysis.readers import read_entropy_reward
    from entropy_rl.analysis.report.figures import plot_entropy_law  # matplotlib only when needed
    from entropy_rl.runs.atomic import write_atomic

    try:
        series = read_entropy_reward(args.log, **_log_keys(args))
        fit = law.fit_entropy_law(series.entropy, series.reward, ci_level=args.ci_level)
        n_fit = law.fit_size(fit.n, args.fit_fraction)
        forecast = None
        if n_fit < fit.n:
            forecast = law.forecast(
                series.entropy, series.reward, args.fit_fraction, ci_level=args.ci_level
            )
        out = args.out if args.out is not None else args.log.with_name(f"{args.log.stem}_fit")
        figure = plot_entropy_law(series, fit, forecast, out / LAW_PLOT)
        summary = _fit_summary(args.log, series, fit, forecast, n_fit)
        summary["outputs"] = {"figure": str(figure), "json": str(out / LAW_RESULT)}
        write_atomic(out / LAW_RESULT, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    except (ValueError, OSError) as err:
        return _error("fit", err)
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print_fit(summary)
    return 0


def _fit_summary(
    log: Path,
    series: LogSeries,
    fit: law.EntropyLawFit,
    forecast: law.EntropyLawForecast | None,
    n_fit: int,
) -> dict[str, object]:
    """JSON-ready record of a fit and its forecast (None, with the reason, if too few points)."""
    summary: dict[str, object] = {
        "log": str(log),
        "source": str(series.source),
        "format": series.kind,
        "preset": series.preset,
        "keys": {
            "entropy": series.entropy_key,
            "reward": series.reward_key,
            "step": series.step_key,
        },
        "law": "R = -a*exp(H) + b",
        "fit": fit.to_dict(),
        "forecast": None,
        "forecast_note": None,
    }
    if forecast is None:
        summary["forecast_note"] = (
            f"too few points to forecast: fitting {n_fit} of {fit.n} leaves none to predict"
        )
    else:
        summary["forecast"] = {
            **forecast.to_dict(),
            "heldout_steps": series.steps[forecast.n_fit :].tolist(),
        }
    return summary


def _print_fit(summary: dict) -> None:
    """Readable tables of a fit summary, then the paths written."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, markup=False)  # paths may hold "[...]"
    fit, keys = summary["fit"], summary["keys"]
    table = Table(title="Entropy-performance law R = -a*exp(H) + b", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("log", summary["log"])
    table.add_row("a", f"{fit['a']:.4f}")
    table.add_row("b", f"{fit['b']:.4f}")
    table.add_row("ceiling b - a", _ceiling_text(fit))
    table.add_row("R²", f"{fit['r2']:.4f}")
    table.add_row("RMSE", f"{fit['rmse']:.4f}")
    table.add_row("points", str(fit["n"]))
    table.add_row("read", f"{summary['source']} ({summary['format']})")
    preset = f" (preset {summary['preset']})" if summary["preset"] else ""
    table.add_row(
        "keys", f"H: {keys['entropy']}, R: {keys['reward']}, step: {keys['step']}{preset}"
    )
    console.print(table)
    console.print(_forecast_table(summary))
    for path in summary["outputs"].values():
        print(f"wrote {path}")  # never wrapped, so it can be copied


def _ceiling_text(fit: dict) -> str:
    """'0.9189  [0.9115, 0.9264] (95% CI)' from a fit's dict, and why it is unreliable when
    it is (`law.fit_caveat`)."""
    low, high = fit["ceiling_ci"]
    text = f"{fit['ceiling']:.4f}  [{low:.4f}, {high:.4f}] ({fit['ci_level']:.0%} CI)"
    return text if fit["reliable"] else f"{text}, unreliable: {fit['caveat']}"


def _forecast_table(summary: dict) -> Table | str:
    """The forecast block, or the note saying why there is none."""
    from rich.table import Table

    forecast = summary["forecast"]
    if forecast is None:
        return f"Forecast: {summary['forecast_note']}"
    title = (
        f"Forecast: fit on first {forecast['fit_fraction']:.0%} "
        f"({forecast['n_fit']} points), predict {forecast['n_heldout']}"
    )
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("early-fit ceiling", _ceiling_text(forecast["fit"]))
    table.add_row("held-out RMSE", f"{forecast['rmse_heldout']:.4f}")
    final_step = forecast["heldout_steps"][-1]
    table.add_row(
        "final-step error",
        f"{forecast['final_error']:+.4f} (predicted - actual, step {final_step:g})",
    )
    return table


# --- watch -----------------------------------------------------------------------------

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
    _add_key_args(p)
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
        return _error("watch", ValueError(problem))
    rules = Rules(
        args.collapse_spent, args.collapse_gain, args.explosion_rise, args.explosion_window,
        args.min_gain,
    )  # fmt: skip
    options = Options(
        rules, exit_on, args.interval, args.once, args.idle_timeout, args.json, args.tensorboard
    )
    followers = [Follower(path, _log_keys(args)) for path in args.paths]
    try:
        return watch(followers, options, sys.stdout, lambda text: print(text, file=sys.stderr))
    except LogFormatError as err:
        return _error("watch", err)


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


# --- train / pretrain / demo -----------------------------------------------------------

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


DEMO_METHODS = ("grpo", "kl_cov", "clip_cov")
"""Run names of the demo, in order; each is a loss.mode (GRPO is mode ppo)."""


class _Parser(argparse.ArgumentParser):
    """A parser whose epilog may be a function, called only when help is printed (the
    config fields' help needs torch imported; parsing `fit` should not)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


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
"""The config sections and fields `entropy-rl eval` reads (model_eval.py; a test checks)."""
PRETRAIN_FIELDS = ("model", "task", "pretrain")
"""The config sections `entropy-rl pretrain` reads (pretrain.py, base_model_cache.py)."""


def _fields_epilog(*scope: str):
    """The epilog (a function, for `_Parser`) listing the config fields under the sections or
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


def _add_config_args(p: argparse.ArgumentParser, example: str = "loss.mode=clip_cov") -> None:
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="section.field=value",
        help=f"config overrides, applied after --config (e.g. {example})",
    )


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl train`."""
    p = subparsers.add_parser(
        "train",
        help="RL training with the paper's entropy diagnostics",
        description=TRAIN_DESCRIPTION,
        epilog=_fields_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(p)
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
    from entropy_rl.commands.api import default_run_dir
    from entropy_rl.config import ConfigError, load_config
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
            config = load_config(args.config, overrides)  # validated before heavy imports
            run_dir = args.run_dir or default_run_dir(config)
        _quiet_libraries()
        from entropy_rl.training.runner import train

        result = train(config, run_dir, resume=config is None, show_progress=not args.quiet)
    except ConfigError as err:
        return _error("train", err)
    except TrainingError as err:
        print(f"entropy-rl train: {err}", file=sys.stderr)
        return 1
    return INTERRUPTED if "stopped_at" in result else 0


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
        epilog=_fields_epilog(*PRETRAIN_FIELDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(p, "pretrain.max_steps=4000")
    p.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    """Handle `entropy-rl pretrain`."""
    from rich.console import Console

    _quiet_libraries()
    from entropy_rl.config import ConfigError, load_config
    from entropy_rl.training.pretrain import make_base_model, require_learnt

    try:
        config = load_config(args.config, args.overrides)
        target = make_base_model(config, Console(stderr=True), result=Console(soft_wrap=True))
        require_learnt(target, config.pretrain.min_greedy)
    except ConfigError as err:
        return _error("pretrain", err)
    return 0


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

    _quiet_libraries()
    from entropy_rl.commands.demo import run_demo
    from entropy_rl.config import ConfigError
    from entropy_rl.errors import TrainingError

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in DEMO_METHODS]
    if unknown or not methods:
        return _error(
            "demo",
            ValueError(
                f"--methods must be a subset of {','.join(DEMO_METHODS)}, got {args.methods!r}"
            ),
        )
    try:
        summaries = run_demo(args.out, methods, args.overrides, Console(stderr=True))
    except ConfigError as err:
        return _error("demo", err)
    except TrainingError as err:
        print(f"entropy-rl demo: {err}", file=sys.stderr)
        return 1
    return INTERRUPTED if any("stopped_at" in s for s in summaries.values()) else 0


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


def _run_experiment(args: argparse.Namespace) -> int:
    """Handle `entropy-rl experiment`."""
    import os

    from rich.console import Console

    from entropy_rl.commands.experiment import describe, load_experiment, run_experiment
    from entropy_rl.config import ConfigError

    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        return _error("experiment", ValueError("--jobs and --threads must be >= 1"))
    try:
        experiment = load_experiment(args.config)
    except ConfigError as err:
        return _error("experiment", err)
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


REPORT_DESCRIPTION = """\
Write a self-contained HTML report (one file, figures embedded, opens offline) plus the
figures as PNG and verdicts.json, testing the paper's claims on the given runs:
  1. entropy and validation accuracy over training, per method (mean and range over seeds)
  2. the law R = -a exp(H) + b on the GRPO runs, its ceiling, and the 15% early-fit forecast
  3. Lemma 1: predicted vs actual entropy change; batch covariance vs entropy change
  4. the share of steps with positive covariance, per method
  5. Clip-Cov / KL-Cov over the GRPO-fitted curve: above or below its ceiling
  6. a and b per method, and per model size with a log-linear fit and its prediction
  7. start/end accuracy (sampled, greedy, pass@k), entropy and ceiling per method
  8. entropy by response position at the start and the end
Each INPUT is an experiment directory (from `entropy-rl experiment`), a run directory (from
`entropy-rl train`), or any log `entropy-rl fit` reads (TensorBoard events, a W&B run, a
TRL trainer_state.json or output directory, verl's console or file log, JSONL, CSV; keys
as `entropy-rl fit` finds them); sections without data in the inputs say so.

example:
  entropy-rl report runs/paper_small --out docs/results/paper_small
  entropy-rl report runs/demo/grpo runs/demo/kl_cov --out runs/demo/report
  entropy-rl report output/checkpoint-500/trainer_state.json --out trl-report
  entropy-rl report tensorboard_log/gsm8k/grpo tensorboard_log/gsm8k/klcov --from verl --out r
"""


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl report`."""
    p = subparsers.add_parser(
        "report",
        help="HTML report of the paper's claims over runs, experiments or logs",
        description=REPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="runs or logs")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report directory")
    p.add_argument("--title", default="Entropy mechanism report", help="heading of the report")
    _add_key_args(p)
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    """Handle `entropy-rl report`."""
    from entropy_rl.analysis.report.build import build_report
    from entropy_rl.analysis.report.data import experiment_notes, load_inputs, plural
    from entropy_rl.config import ConfigError

    try:
        runs = load_inputs(args.inputs, **_log_keys(args))
    except ConfigError as err:
        return _error("report", err)
    command = "entropy-rl report " + " ".join(map(str, args.inputs)) + f" --out {args.out}"
    path = build_report(runs, args.out, args.title, command, experiment_notes(args.inputs))
    print(f"report: {path} ({plural(len(runs), 'run')})")
    return 0


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


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    """Register `entropy-rl eval`."""
    p = subparsers.add_parser(
        "eval",
        help="pass@k, greedy accuracy and answer entropy of a model or a run's checkpoint",
        description=EVAL_DESCRIPTION,
        epilog=_fields_epilog(*EVAL_FIELDS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", type=Path, metavar="TARGET", help="run, checkpoint or model dir")
    _add_config_args(p, "eval.samples=16")
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

    _quiet_libraries()
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
        return _error("eval", err)
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


SUBCOMMANDS = (
    _add_demo,
    _add_train,
    _add_eval,
    _add_pretrain,
    _add_experiment,
    _add_report,
    _add_fit,
    _add_watch,
)
"""Registrars of the subcommands, in --help order."""
