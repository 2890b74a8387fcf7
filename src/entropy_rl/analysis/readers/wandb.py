"""Weights & Biases run directories, read with W&B's own reader.

A run writes its records to `run-<id>.wandb` (a transaction log) in its run directory,
`wandb/offline-run-<time>-<id>/` offline and `wandb/run-<time>-<id>/` online (kept after
sync). W&B reads it back with `wandb leet inspect --json`, one JSON record per line; the
"history" records are the rows `wandb.log` wrote, each with its `_step`. A PATH is the
`.wandb` file, a run directory, or a `wandb/` folder holding exactly one run (several are
listed; name one, or `wandb/latest-run`).

A live run is read as far as W&B has written its log: W&B buffers the file, so the newest
rows can show up seconds after `wandb.log` (seen: none of a 0.25 s-a-row offline run's rows
after 6 s, all of them once it finished).

Needs the `wandb` package (`pip install 'entropy-rl[wandb]'`); it runs in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from entropy_rl.analysis.readers.table import LogFormatError, LogIncomplete, Table, make_table

SUFFIX = ".wandb"
STEP_COLUMN = "_step"
TIMEOUT_S = 300
"""The most a read of one run may take (W&B's reader, a few seconds for a long run)."""


def is_run(path: Path) -> bool:
    """Whether `path` is a W&B transaction log or a folder holding one (see the docstring)."""
    if path.is_file():
        return path.suffix == SUFFIX
    return bool(_logs_under(path)) if path.is_dir() else False


def _logs_under(path: Path) -> list[Path]:
    direct = sorted(path.glob(f"*{SUFFIX}"))
    if direct:
        return direct
    return sorted(path.glob(f"*run-*/*{SUFFIX}"))


def transaction_log(path: Path) -> Path:
    """The one `.wandb` file PATH names (see the module docstring)."""
    if path.is_file():
        return path
    logs = _logs_under(path)
    if not logs:
        raise LogIncomplete(f"{path}: no W&B run (*{SUFFIX}) in it")
    if len(logs) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in logs[:8])
        raise LogFormatError(f"{path}: {len(logs)} W&B runs ({names}); name one of them")
    return logs[0]


def read_wandb(path: Path) -> Table:
    """The history rows of the W&B run at `path`, in the order written."""
    if importlib.util.find_spec("wandb") is None:
        raise LogFormatError(
            f"{path}: reading W&B runs needs the wandb package: pip install 'entropy-rl[wandb]'"
        )
    log = transaction_log(path)
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise LogFormatError(f"{log}: W&B's reader took over {TIMEOUT_S} s") from err
    if done.returncode != 0:
        why = " ".join(done.stderr.split())[-300:] or f"exit code {done.returncode}"
        raise LogFormatError(f"{log}: W&B's reader failed ({why})")
    rows = []
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("type") == "history":
            item = record["history"].get("item", {})
            rows.append((f"history record {record.get('num', len(rows) + 1)}", item))
    return make_table(log, "wandb", rows, step_key=STEP_COLUMN)
