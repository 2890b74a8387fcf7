"""`entropy-rl report`: the HTML report of the paper's claims over runs, experiments or logs."""

from __future__ import annotations

import argparse
from pathlib import Path

from entropy_rl.commands.cli._common import add_key_args, error, log_keys

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
    add_key_args(p)
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    """Handle `entropy-rl report`."""
    from entropy_rl.analysis.report.build import build_report
    from entropy_rl.analysis.report.data import experiment_notes, load_inputs, plural
    from entropy_rl.config import ConfigError

    try:
        runs = load_inputs(args.inputs, **log_keys(args))
    except ConfigError as err:
        return error("report", err)
    command = "entropy-rl report " + " ".join(map(str, args.inputs)) + f" --out {args.out}"
    path = build_report(runs, args.out, args.title, command, experiment_notes(args.inputs))
    print(f"report: {path} ({plural(len(runs), 'run')})")
    return 0
