"""A run's metrics in TensorBoard and Weights & Biases, beside metrics.jsonl (`log.*`).

Each row of metrics.jsonl goes to every tracker the config turns on, with the same keys and
the row's `step` as its step. Trackers take scalars only: a number is logged as it is, a list
(entropy/by_position) as one scalar per element under key/i, and a missing value (null,
non-finite) is left out. Only rank 0 writes (the runner opens trackers there only).

Resuming: TensorBoard's writer is opened with `purge_step` at the resumed step, so the rows a
killed run wrote after its last checkpoint are hidden, not doubled; the W&B run id is kept in
<run dir>/wandb_id.txt and the resumed run continues it (W&B ignores rows for steps it has
already seen, which a resumed run recomputes identically).
"""

from __future__ import annotations

import importlib.util
import math
import secrets
from pathlib import Path
from typing import Any

from entropy_rl.config import Config, ConfigError, LogConfig, config_to_dict
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import TENSORBOARD_DIR, WANDB_ID_FILE
from entropy_rl.runs.metric_keys import STEP

EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""log.<field> -> the package it needs (also the name of the extra that installs it)."""


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics row as trackers take it: numbers as they are, lists as key/i, no step, and
    no missing (None) or non-finite values."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == STEP:
            continue
        items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for index, item in items:
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if math.isfinite(item):
                out[key if index is None else f"{key}/{index}"] = float(item)
    return out


def check_trackers(config: LogConfig) -> None:
    """ConfigError (one line) when a tracker is on but its package is not installed."""
    for name, package in EXTRAS.items():
        if getattr(config, name) and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"log.{name}=true needs the {package} package: pip install -e '.[{package}]'"
            )


class _TensorBoard:
    def __init__(self, run_dir: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = start_step if start_step > 0 else None
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=purge)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self, failed: bool) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, config: Config, run_dir: Path) -> None:
        import wandb

        id_file = run_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)
        write_atomic(id_file, run_id + "\n")
        settings = config.log
        self.run = wandb.init(
            project=settings.wandb_project,
            entity=settings.wandb_entity or None,
            name=settings.wandb_name or run_dir.resolve().name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config_to_dict(config),
            mode=settings.wandb_mode or None,
            settings=wandb.Settings(console="off"),
        )

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackers:
    """The trackers `config.log` turns on, as one context manager; `write(record)` logs a row."""

    def __init__(self, config: Config, run_dir: Path, start_step: int = 0) -> None:
        check_trackers(config.log)
        self._open: list[Any] = []
        if config.log.tensorboard:
            self._open.append(_TensorBoard(run_dir, start_step))
        if config.log.wandb:
            self._open.append(_WandB(config, run_dir))

    def write(self, record: dict[str, Any]) -> None:
        values = scalars(record)
        for tracker in self._open:
            tracker.log(values, int(record[STEP]))

    def close(self, failed: bool = False) -> None:
        for tracker in self._open:
            tracker.close(failed)
        self._open = []

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(failed=kind is not None)
