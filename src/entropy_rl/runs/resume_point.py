"""Where a resumed run starts, decided before anything is loaded or written.

1. Checkpoints are tried newest first (`checkpoint.load_verified`: manifest checksums,
   safetensors headers, a trainer state of plain data); each one skipped is reported with the
   file that failed. When some exist and none verifies: RunError naming the files.
2. The checkpoint at `step` needs metrics.jsonl rows 0 .. step - 1 whole and in order
   (`logs.whole_rows`): a damaged or missing row before it sends the resume to an older
   checkpoint, which recomputes the row; with none old enough: RunError naming the line.
3. The run's config.yaml is compared with the one the checkpoint was trained with: edits of
   `APPLICABLE_EDITS` are applied (and reported); any other edit is refused (RunError).
A run killed before its first checkpoint has none: it starts again from step 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from entropy_rl.config import Config, load_config
from entropy_rl.errors import RunError
from entropy_rl.runs.checkpoint import (
    CONFIG_FILE,
    Checkpoint,
    CheckpointError,
    list_checkpoints,
    load_verified,
)
from entropy_rl.runs.layout import METRICS_FILE
from entropy_rl.runs.metrics_log import whole_rows

APPLICABLE_EDITS = (
    "train.steps",
    "train.save_every",
    "train.keep_checkpoints",
    "train.max_bad_steps",
    "train.reward_timeout_s",
    "train.stop_at_saturation",
    "train.saturation_min_gain",
    "train.lr",
    "train.weight_decay",
    "train.grad_clip",
    "train.micro_batches",
    "diagnostics.chunk_size",
    "rollout.gpu_memory_utilization",
    "rollout.sampling",
    "distributed.backend",
    "distributed.strategy",
    "log.tensorboard",
    "log.wandb",
    "log.wandb_project",
    "log.wandb_entity",
    "log.wandb_name",
    "log.wandb_mode",
)
"""config.yaml fields whose edit a resume applies from the checkpoint's step on: the length
and saving of the run (with whether it stops at saturation), the optimizer's hyperparameters
(set on the restored optimizer), fault limits, settings of memory and speed that leave the
update unchanged (rollout.sampling: the same distribution, drawn another way), and where
the metrics are logged besides metrics.jsonl. An edit of any other field would mix two
experiments in one run, and is refused."""


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The checkpoint to resume from (None: from step 0), its trainer state, and the lines
    to print about how it was chosen."""

    checkpoint: Checkpoint | None
    state: dict[str, Any] | None
    notes: tuple[str, ...]

    def __getstate__(self) -> dict[str, Any]:
        """Sent to the other ranks without the state: each reads its own from the checkpoint."""
        return {**self.__dict__, "state": None}


def resume_point(run_dir: Path, config: Config, world_size: int) -> ResumePoint:
    """The newest checkpoint of `run_dir` that verifies, that no damaged metrics row precedes,
    and that was saved by `world_size` ranks; RunError when there are checkpoints and none
    is usable, or when config.yaml was edited in a way a resume cannot apply."""
    rows, problem = whole_rows(run_dir / METRICS_FILE)
    found = list_checkpoints(run_dir)
    notes, failures, blocked = [], [], False
    for checkpoint in found:
        try:
            state = load_verified(checkpoint)
        except CheckpointError as err:
            failures.append(str(err))
            notes.append(f"skipping {checkpoint.path.name}: {err}")
            continue
        step = state["run_state"]["step"]
        if step > len(rows):
            blocked = True
            notes.append(
                f"skipping {checkpoint.path.name}: {_gap(run_dir, rows, problem)} before its "
                f"step {step}; an older checkpoint recomputes it"
            )
            continue
        _check_world(run_dir, state, world_size)
        notes += config_edits(run_dir, checkpoint, config, step)
        return ResumePoint(checkpoint, state, tuple(notes))
    if not found:
        return ResumePoint(None, None, ())
    raise _no_usable(run_dir, rows, problem, failures, blocked)


def _gap(run_dir: Path, rows: list[str], problem: str | None) -> str:
    """'RUN/metrics.jsonl line 4 is not a whole JSON row' (or: it ends after step N)."""
    path = run_dir / METRICS_FILE
    if problem is None:
        return f"{path} ends after step {len(rows) - 1}" if rows else f"{path} has no rows"
    return f"{path} {problem}"


def _no_usable(run_dir: Path, rows, problem, failures: list[str], blocked: bool) -> RunError:
    """Why no checkpoint can be resumed from: a damaged row that every checkpoint that
    verifies comes after, else the files that failed."""
    over = (
        f"start the run over in a new directory: entropy-rl train --config "
        f"{run_dir / CONFIG_FILE} --run-dir NEW_DIR"
    )
    if blocked:
        return RunError(
            f"{_gap(run_dir, rows, problem)}, and no checkpoint that verifies is at or before "
            f"step {len(rows)}, so the row cannot be recomputed: repair the line, or {over}"
        )
    return RunError(f"no checkpoint of {run_dir} verifies: {'; '.join(failures)}; {over}")


def _check_world(run_dir: Path, state: dict[str, Any], world_size: int) -> None:
    saved = state.get("world_size", 1)
    if saved != world_size:
        raise RunError(
            f"{run_dir} was checkpointed by {saved} ranks: resume it with the same number "
            f"(now {world_size})"
        )


def _flat(config: Config) -> dict[str, Any]:
    """{"section.field": value} of every leaf field."""
    tree = dataclasses.asdict(config)
    return {f"{s}.{k}": v for s, fields in tree.items() for k, v in fields.items()}


def config_edits(run_dir: Path, checkpoint: Checkpoint, config: Config, step: int) -> list[str]:
    """The lines reporting the config.yaml edits applied since `checkpoint` (none when
    unedited); RunError for an edit outside `APPLICABLE_EDITS`, or of train.steps to below
    `step` (the last row, which only measures, would be a row already trained on)."""
    if checkpoint.legacy:
        return [
            f"{checkpoint.path.name} was written by an older version: its files have no "
            f"checksums, and there is no config of its own to compare {CONFIG_FILE} with"
        ]
    before, after = _flat(load_config(checkpoint.path / CONFIG_FILE)), _flat(config)
    edits = {name: (before[name], value) for name, value in after.items() if before[name] != value}
    refused = [name for name in edits if name not in APPLICABLE_EDITS]
    where = f"{run_dir / CONFIG_FILE} was edited since {checkpoint.path.name}"
    if refused:
        listed = ", ".join(f"{n}: {edits[n][0]!r} -> {edits[n][1]!r}" for n in refused)
        raise RunError(
            f"{where} ({listed}); a resume applies edits of {', '.join(APPLICABLE_EDITS)} "
            f"only: undo the others, or start a new run"
        )
    if "train.steps" in edits and config.train.steps < step:
        raise RunError(
            f"{where}: train.steps {config.train.steps} is below step {step}, which the run "
            f"has reached; set it to {step} or more"
        )
    if not edits:
        return []
    listed = ", ".join(f"{n} {old!r} -> {new!r}" for n, (old, new) in edits.items())
    return [f"{where}: applying {listed} from step {step} on"]
