"""What `entropy-rl report` reads: run directories, experiment directories and foreign logs,
all turned into runs with labels (task, model size, method, seed) and metrics records."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.analysis.readers import LogFormatError, read_entropy_reward
from entropy_rl.config import Config, ConfigError, load_config
from entropy_rl.config.methods import method_label
from entropy_rl.runs.layout import CONFIG_FILE, MANIFEST_FILE, METRICS_FILE, PRETRAIN_FILE
from entropy_rl.runs.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC
from entropy_rl.runs.metrics_log import read_records, record_columns
from entropy_rl.runs.status import RunStatus
from entropy_rl.tasks import TASKS
from entropy_rl.tasks.base_models import base_model_dir


@dataclass(frozen=True)
class RunData:
    """One run: where it came from, its labels and its metrics records in step order."""

    source: str
    task: str
    size: str
    method: str
    seed: int | None
    params: int | None
    records: tuple[dict[str, Any], ...]
    val_prompts: int | None = None
    """Held-out prompts behind each val/acc, when known (a run directory of a generated task)."""
    val_samples: int | None = None
    """Samples per prompt behind each val/acc (eval.samples), when known."""

    def column(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of the records holding a number under `key`."""
        steps, values = record_columns(self.records, STEP, key).T
        return steps, values

    def first(self, key: str) -> Any:
        return next((r[key] for r in self.records if r.get(key) is not None), None)

    def last(self, key: str) -> Any:
        return next((r[key] for r in reversed(self.records) if r.get(key) is not None), None)


def _size_label(config: Config) -> str:
    if config.model.path:
        return Path(config.model.path).name
    return f"h{config.model.hidden_size}x{config.model.num_layers}"


def _num_parameters(config: Config) -> int | None:
    """The embedded model's parameter count, from its base model's pretrain.json."""
    if config.model.path:
        return None
    try:
        info = json.loads((base_model_dir(config) / PRETRAIN_FILE).read_text())
        return int(info["num_parameters"])
    except (OSError, ValueError, KeyError):
        return None


def load_run_dir(run_dir: Path, labels: dict[str, Any] | None = None) -> RunData:
    """A run directory written by `entropy-rl train`; labels default to the config's."""
    config = load_config(run_dir / CONFIG_FILE)
    records = read_records(run_dir / METRICS_FILE)
    if not records:
        raise ConfigError(f"{run_dir}: {METRICS_FILE} holds no records")
    labels = labels or {}
    return RunData(
        source=str(run_dir),
        task=str(labels.get("task", config.task.name)),
        size=str(labels.get("size", _size_label(config))),
        method=str(labels.get("method", method_label(config.loss))),
        seed=int(labels.get("seed", config.train.seed)),
        params=_num_parameters(config),
        records=tuple(records),
        val_prompts=_val_prompts(config),
        val_samples=config.eval.samples,
    )


def _val_prompts(config: Config) -> int | None:
    """The run's number of validation prompts, as its task states it from the config; None
    for a task that depends on data, or one registered in a module this process has not
    imported."""
    task = TASKS.get(config.task.name)
    return task.val_prompts(config.task) if task is not None else None


def load_log(path: Path, **keys: str | None) -> RunData:
    """Any log `entropy-rl fit` reads (`entropy_rl.analysis.readers`): entropy and performance only,
    keys as `entropy-rl fit` finds them (`keys`: entropy_key, reward_key, step_key, preset),
    labelled by the file or folder name."""
    series = read_entropy_reward(path, **keys)
    records = [
        {STEP: float(s), ENTROPY_MEAN: float(h), VAL_ACC: float(r)}
        for s, h, r in zip(series.steps, series.entropy, series.reward, strict=True)
    ]
    name = path.parent.name if path.name == "trainer_state.json" else path.stem
    return RunData(
        source=str(path),
        task="log",
        size="-",
        method=name,
        seed=None,
        params=None,
        records=tuple(records),
    )


def _experiment_runs(directory: Path, manifest: Path) -> list[RunData]:
    runs = []
    for entry in json.loads(manifest.read_text())["runs"]:
        run_dir = directory / entry["dir"]
        if (run_dir / METRICS_FILE).is_file():
            runs.append(load_run_dir(run_dir, entry))
    return runs


def load_inputs(paths: list[Path], **keys: str | None) -> list[RunData]:
    """Every run named by `paths`: experiment directories, run directories or any other log
    (`load_log`, read with `keys`: entropy_key, reward_key, step_key and preset, each
    default: as `entropy-rl fit` finds them).

    Raises:
        ConfigError: A path that holds none of these, or a log that cannot be read.
    """
    runs: list[RunData] = []
    for path in paths:
        if (path / MANIFEST_FILE).is_file():
            runs += _experiment_runs(path, path / MANIFEST_FILE)
        elif (path / CONFIG_FILE).is_file() and (path / METRICS_FILE).is_file():
            runs.append(load_run_dir(path))
        else:
            try:
                runs.append(load_log(path, **keys))
            except LogFormatError as err:
                raise ConfigError(
                    f"{err} (not an experiment directory ({MANIFEST_FILE}) or a run directory "
                    f"({CONFIG_FILE} and {METRICS_FILE}) either; --from, --entropy-key and "
                    "--reward-key name the keys)"
                ) from None
    if not runs:
        raise ConfigError("no runs with metrics found in " + ", ".join(map(str, paths)))
    return runs


def experiment_notes(paths: list[Path]) -> list[str]:
    """One line per experiment directory among `paths`: its file, runs and wall time."""
    notes = []
    for path in paths:
        if (path / MANIFEST_FILE).is_file():
            manifest = json.loads((path / MANIFEST_FILE).read_text())
            done = sum(r["status"] == RunStatus.DONE for r in manifest["runs"])
            notes.append(
                f"Experiment {manifest['name']} ({manifest['experiment_file']}): "
                f"{done} of {len(manifest['runs'])} runs finished, wall time "
                f"{manifest['wall_time_s'] / 60:.1f} min (`entropy-rl experiment` in {path})."
            )
    return notes


def plural(n: int, noun: str) -> str:
    """'1 run', '2 runs'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def group_runs(runs: list[RunData], *keys: str) -> dict[tuple, list[RunData]]:
    """Runs grouped by the given label names, groups and members in input order."""
    groups: dict[tuple, list[RunData]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, k) for k in keys)].append(run)
    return dict(groups)


def main_size(runs: list[RunData], task: str) -> str:
    """The model size of `task` with the most methods: where methods are compared. On a tie
    (a size axis of one method), the embedded default size when it is there, else the first
    seen."""
    methods: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        if run.task == task:
            methods[run.size].add(run.method)
    default = _size_label(Config())
    return max(methods, key=lambda size: (len(methods[size]), size == default))
