"""`entropy-rl demo`: the paper's phenomenon on the embedded toy setting, in minutes on a CPU.

Makes (or reuses) the base model, then trains GRPO, KL-Cov and Clip-Cov from it with the
default config (the embedded task's values of `config.SCALE_DEFAULTS`) and the method's
loss.mode, one run directory each under the demo directory, and prints a side-by-side
summary. Finished runs are reused and interrupted ones resumed, so running the demo again
is cheap. The demo directory is locked while the demo runs (as each run directory is by its
run): a second demo there stops at once, naming the first.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from entropy_rl.analysis.summary import summary_table
from entropy_rl.config import Config, load_config
from entropy_rl.config.methods import method_overrides
from entropy_rl.runs.layout import SUMMARY_FILE
from entropy_rl.runs.lock import lock_dir, stale_note
from entropy_rl.runs.run_dir import discard_unsaved, run_status
from entropy_rl.runs.status import RunStatus
from entropy_rl.training.checks import check
from entropy_rl.training.pretrain import make_base_model, require_learnt
from entropy_rl.training.runner import train


def method_config(method: str, overrides: list[str]) -> Config:
    """The defaults, the method's overrides (`config.methods`), then the user's."""
    return check(load_config(None, [*method_overrides(method), *overrides]))


def run_demo(out: Path, methods: tuple[str, ...], overrides: list[str], console: Console) -> dict:
    """Train each method in out/<method>/ (reusing finished runs), holding the lock of `out`,
    with notices and progress on `console` and the side-by-side table on stdout; returns
    their summaries (an interrupted run's is {"stopped_at": step}, and the last)."""
    with lock_dir(out, "demo directory") as stale:
        note = stale_note(stale, out)
        if note is not None:
            console.print(note, soft_wrap=True, markup=False, highlight=False)
        return _run_methods(out, methods, overrides, console)


def _run_methods(out: Path, methods, overrides: list[str], console: Console) -> dict:
    config = method_config(methods[0], overrides)
    require_learnt(make_base_model(config, console), config.pretrain.min_greedy)
    summaries = {}
    for method in methods:
        run_dir = out / method
        status = run_status(run_dir)
        if status == RunStatus.DONE:
            console.print(f"{method}: finished run in {run_dir}, reused")
            summaries[method] = json.loads((run_dir / SUMMARY_FILE).read_text())
            continue
        resume = status == RunStatus.PARTIAL
        discard_unsaved(run_dir)
        console.rule(f"{method}")
        summaries[method] = train(
            None if resume else method_config(method, overrides),
            run_dir,
            resume=resume,
            console=console,
        )
        if "stopped_at" in summaries[method]:
            return summaries
    Console().print(summary_table(summaries))  # the result: stdout, notices on `console`
    return summaries
