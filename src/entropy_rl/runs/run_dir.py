"""A run directory as a whole: its status (new, partial, done), the name its lock
gives, making a new one, reading its config, the metrics of a run killed before its first
checkpoint, and the stop at saturation its summary records."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from entropy_rl.config import Config, ConfigError, dump_config, load_config
from entropy_rl.runs import checkpoint
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from entropy_rl.runs.lock import lock_dir
from entropy_rl.runs.status import RunStatus

RUN_LOCK = "run directory"
"""How a run directory's lock names it to a process that finds it held."""


def run_status(run_dir: Path) -> RunStatus:
    """DONE (summary written), PARTIAL (a checkpoint to resume from, not yet verified) or
    NEW."""
    if (run_dir / SUMMARY_FILE).is_file():
        return RunStatus.DONE
    if checkpoint.list_checkpoints(run_dir):
        return RunStatus.PARTIAL
    return RunStatus.NEW


def discard_unsaved(run_dir: Path) -> None:
    """Remove the metrics of a run killed before its first checkpoint, so it starts afresh
    (under the run's lock: LockHeld if a process is at work in it)."""
    if run_status(run_dir) != RunStatus.NEW or not (run_dir / METRICS_FILE).exists():
        return
    with lock_dir(run_dir, RUN_LOCK):
        if run_status(run_dir) == RunStatus.NEW:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)


def prepare_run_dir(run_dir: Path, config: Config) -> None:
    """A new run directory with the resolved config; refuses to overwrite a run."""
    if (run_dir / METRICS_FILE).exists() or checkpoint.list_checkpoints(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run: resume it with --resume {run_dir}, or pick another --run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, dump_config(config))


def load_run_config(run_dir: Path) -> Config:
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return load_config(run_dir / CONFIG_FILE)


def stopped_early(run_dir: Path) -> dict | None:
    """summary.json's `stopped_early` ({step, reason, gain_left}) of a run stopped at
    saturation; None for any other run."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads((run_dir / SUMMARY_FILE).read_text()).get("stopped_early")
    return None
