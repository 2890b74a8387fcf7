"""Reading training logs, ours and other frameworks', into the law's (step, H, R) series.

A log is a file or a directory:

| what | format | read with |
|---|---|---|
| our run directory, or its metrics.jsonl | JSON lines | `readers.text` |
| verl's file logger (`{"step", "data"}` lines), any JSON lines | JSON lines | `readers.text` |
| verl's console output (`step:N - key:value - ...`), as `tee` saved it | console text | `readers.text` |
| a CSV export (W&B's "Download CSV", TensorBoard's) | CSV | `readers.text` |
| TRL / Hugging Face `trainer_state.json`, a checkpoint or output directory | trainer state | `readers.text` |
| TensorBoard event files or their folder (verl, TRL, OpenRLHF, ours) | events | TensorBoard's reader |
| a W&B run directory (offline or synced) or its `.wandb` file | W&B | W&B's reader |

Keys are found by `readers.keys` from the framework presets of `readers.presets`.
Layer: reads files only; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from entropy_rl.analysis.law import MIN_POINTS
from entropy_rl.analysis.readers import tensorboard, wandb
from entropy_rl.analysis.readers.keys import choose_keys, merged_by_step, resolve, with_step_column
from entropy_rl.analysis.readers.presets import PRESETS, Preset
from entropy_rl.analysis.readers.table import LogFormatError, LogIncomplete, Table, column
from entropy_rl.analysis.readers.text import read_text_log
from entropy_rl.runs.layout import METRICS_FILE

__all__ = [
    "PRESETS",
    "LogFormatError",
    "LogIncomplete",
    "LogReader",
    "LogSeries",
    "Preset",
    "Table",
    "entropy_reward",
    "open_log",
    "read_entropy_reward",
    "read_log_columns",
]

TRAINER_STATE = "trainer_state.json"


@dataclass(frozen=True, eq=False)
class LogSeries:
    """Records of a log that hold both the entropy and the reward, in the log's order.

    Compared by identity (`eq=False`): it holds arrays.

    Attributes:
        steps: Training step of each record, shape (n,); the record index (0-based, over
            all records) when the log has no step.
        entropy: Policy entropy H, shape (n,).
        reward: Performance R, shape (n,).
        entropy_key: Key the entropy was read from.
        reward_key: Key the reward was read from.
        step_key: Key the steps were read from ("a|b": a, else b), or None for the record
            index.
        preset: The framework preset the keys came from (None: all named).
        source: The file or folder read.
        kind: Its format ("jsonl", "csv", "trainer_state", "verl_console", "tensorboard",
            "wandb").
    """

    steps: np.ndarray
    entropy: np.ndarray
    reward: np.ndarray
    entropy_key: str
    reward_key: str
    step_key: str | None
    preset: str | None = None
    source: Path | None = None
    kind: str | None = None


class LogReader:
    """A log read again and again as it grows (`entropy-rl watch`): `table()` is everything
    logged so far. A TensorBoard log keeps its reader's place; the others are read whole,
    with a half-written last JSON line left for the next read when `partial_tail`."""

    def __init__(self, path: str | Path, partial_tail: bool = False) -> None:
        self.path = Path(path)
        self.partial_tail = partial_tail
        self._events: tensorboard.TensorBoardLog | None = None

    def table(self) -> Table:
        """The log as it is now.

        Raises:
            LogFormatError: No such path, a folder holding no log, or a malformed log.
        """
        if self._events is not None:
            return self._events.table()
        if not self.path.exists():
            raise LogIncomplete(f"{self.path}: no such file or directory")
        path, kind = _log_in_folder(self.path) if self.path.is_dir() else (self.path, None)
        if kind == "tensorboard" or tensorboard.is_event_file(path):
            self._events = tensorboard.TensorBoardLog(path)
            return self._events.table()
        if kind == "wandb" or path.suffix == wandb.SUFFIX:
            return wandb.read_wandb(path)
        return read_text_log(path, self.partial_tail)


def _log_in_folder(folder: Path) -> tuple[Path, str | None]:
    """The log a folder holds and its kind (None: a text file), in this order: our
    metrics.jsonl, a trainer_state.json, TensorBoard events (anywhere under it), a W&B run,
    the newest `checkpoint-N/trainer_state.json` (a TRL output folder without events)."""
    for name in (METRICS_FILE, TRAINER_STATE):
        if (folder / name).is_file():
            return folder / name, None
    if tensorboard.event_folders(folder):
        return folder, "tensorboard"
    if wandb.is_run(folder):
        return folder, "wandb"
    states = list(folder.glob(f"checkpoint-*/{TRAINER_STATE}"))
    numbered = [s for s in states if s.parent.name.removeprefix("checkpoint-").isdigit()]
    if numbered:
        newest = max(numbered, key=lambda s: int(s.parent.name.removeprefix("checkpoint-")))
        return newest, None
    raise LogIncomplete(
        f"{folder}: no log in it (looked for {METRICS_FILE}, {TRAINER_STATE}, TensorBoard "
        f"events, a W&B run, checkpoint-*/{TRAINER_STATE})"
    )


def open_log(path: str | Path) -> Table:
    """The table of the log at `path` (a file or a folder; see the module docstring)."""
    return LogReader(path).table()


def read_log_columns(path: str | Path, keys: list[str]) -> dict[str, np.ndarray]:
    """One float array per key, one entry per record of the log, NaN where a record lacks it.

    Raises:
        LogFormatError: Unreadable or malformed log, a key in no record, or a value present
            but not a number.
    """
    table = open_log(path)
    return {key: column(table, resolve(table, key)) for key in keys}


def read_entropy_reward(
    path: str | Path,
    entropy_key: str | None = None,
    reward_key: str | None = None,
    step_key: str | None = None,
    *,
    preset: str | None = None,
) -> LogSeries:
    """The (step, H, R) series of the log at `path` (see `entropy_reward`)."""
    return entropy_reward(open_log(path), entropy_key, reward_key, step_key, preset=preset)


def entropy_reward(
    table: Table,
    entropy_key: str | None = None,
    reward_key: str | None = None,
    step_key: str | None = None,
    *,
    preset: str | None = None,
    min_points: int = MIN_POINTS,
) -> LogSeries:
    """The (step, H, R) series of a table, keeping records where both H and R are numbers.

    Training logs record validation accuracy every few steps only, so most records lack R;
    they are skipped. Records of the same step are merged first (`keys.merged_by_step`).
    Keys left as None come from `preset`, or the first preset the log matches
    (`keys.choose_keys`).

    Raises:
        LogFormatError: As `keys.choose_keys`, a value that is not a number, a kept record
            without a step, or fewer than `min_points` records with both H and R.
    """
    keys = choose_keys(table, preset, entropy_key, reward_key, step_key)
    table = merged_by_step(with_step_column(table, keys.step), keys.step)
    entropy, reward = column(table, keys.entropy), column(table, keys.reward)
    keep = ~np.isnan(entropy) & ~np.isnan(reward)
    n_both = int(keep.sum())
    if n_both < min_points:
        raise LogIncomplete(
            f"{table.path}: only {n_both} record(s) have both {keys.entropy!r} "
            f"({int((~np.isnan(entropy)).sum())} records) and {keys.reward!r} "
            f"({int((~np.isnan(reward)).sum())} records); need at least {min_points}"
        )
    return LogSeries(
        steps=_steps(table, keys.step, keep),
        entropy=entropy[keep],
        reward=reward[keep],
        entropy_key=keys.entropy,
        reward_key=keys.reward,
        step_key=keys.step,
        preset=keys.preset,
        source=table.path,
        kind=table.kind,
    )


def _steps(table: Table, step_key: str | None, keep: np.ndarray) -> np.ndarray:
    """Step of each kept record: from `step_key`, or the record index when it is None."""
    if step_key is None:
        return np.flatnonzero(keep).astype(float)
    steps = column(table, step_key)
    missing = keep & np.isnan(steps)
    if missing.any():
        where = table.rows[int(np.flatnonzero(missing)[0])][0]
        raise LogFormatError(
            f"{table.path}: {where}: record has entropy and reward but no {step_key!r}"
        )
    return steps[keep]
