"""`entropy-rl fit`: the entropy-performance law fitted to a training log, and its forecast."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from entropy_rl.commands.cli._common import add_key_args, error, log_keys
from entropy_rl.runs.layout import LAW_PLOT, LAW_RESULT

if TYPE_CHECKING:
    from rich.table import Table

    from entropy_rl.analysis import law
    from entropy_rl.analysis.readers import LogSeries

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
    add_key_args(p)
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
        series = read_entropy_reward(args.log, **log_keys(args))
        fit = law.fit_entropy_law(series.entropy, series.reward, ci_level=args.ci_level)
        n_fit = law.fit_size_by_step(series.steps, args.fit_fraction)
        forecast = None
        if n_fit < fit.n:
            forecast = law.forecast(
                series.entropy,
                series.reward,
                args.fit_fraction,
                ci_level=args.ci_level,
                steps=series.steps,
            )
        out = args.out if args.out is not None else args.log.with_name(f"{args.log.stem}_fit")
        figure = plot_entropy_law(series, fit, forecast, out / LAW_PLOT)
        summary = _fit_summary(args.log, series, fit, forecast, n_fit)
        summary["outputs"] = {"figure": str(figure), "json": str(out / LAW_RESULT)}
        write_atomic(out / LAW_RESULT, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    except (ValueError, OSError) as err:
        return error("fit", err)
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
