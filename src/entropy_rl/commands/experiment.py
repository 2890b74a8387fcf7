"""`entropy-rl experiment`: a grid of ordinary training runs, resumable, a few at a time.

An experiment file names building blocks and the grids that combine them:

    base: defaults                   # or omitted: the defaults (`demo` is a synonym, the old
                                     # name); or a YAML path, relative to the experiment file
    overrides: {train.steps: 150}    # applied to every run
    tasks:   {sum3: {task.name: sum3}, ...}
    methods: {grpo: {loss.mode: ppo}, clip_cov: {loss.mode: clip_cov}, ...}
    sizes:   {m: {}, s: {model.hidden_size: 96}, ...}
    seeds:   [0, 1, 2]               # each sets train.seed
    grids:                           # each is a cross product; `all` (or omitted) = every entry
      - {tasks: all, methods: all, sizes: [m]}
      - {tasks: [sum3], methods: [grpo], sizes: all}

Each run lives in OUT/<task>/<size>/<method>/seed<seed> and is an ordinary run directory
(`entropy-rl train --resume` works on it). A run that finished is skipped, an interrupted one
resumed. Jobs go `jobs` at a time, each in its own process with `threads` torch threads: the
missing base models first, one per distinct (model, task, pretrain) config, and each run as soon
as its base model is ready (largest models first); a base model that has not learnt its task
stops the runs that need it. The experiment directory is locked while it runs (each run
directory is locked by its own process): a second experiment there stops at once, naming the
first.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from entropy_rl.config import Config, ConfigError, default_config, dump_config, load_config
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import LOG_DIR, MANIFEST_FILE, METRICS_FILE
from entropy_rl.runs.lock import lock_dir, stale_note
from entropy_rl.runs.run_dir import discard_unsaved, run_status
from entropy_rl.runs.status import RunStatus
from entropy_rl.tasks import base_task_of
from entropy_rl.tasks.base_models import base_model_dir
from entropy_rl.training.checks import check
from entropy_rl.training.pretrain import is_learnt, is_saved, parent_config, read_check

AXES = ("tasks", "methods", "sizes")
"""The named axes of a grid; seeds are the fourth."""
_POLL_S = 1.0


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its labels, its resolved config and where it lives."""

    task: str
    size: str
    method: str
    seed: int
    config: Config

    @property
    def name(self) -> str:
        return f"{self.task}/{self.size}/{self.method}/seed{self.seed}"

    def labels(self) -> dict[str, Any]:
        return {"task": self.task, "size": self.size, "method": self.method, "seed": self.seed}


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file: the runs it asks for, in order, without duplicates."""

    name: str
    path: Path
    runs: tuple[RunSpec, ...]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    return value


def _overrides(block: Any, where: str) -> list[str]:
    return [f"{key}={value}" for key, value in _mapping(block, where).items()]


BASE_DEFAULTS = ("defaults", "demo")
"""Values of `base:` meaning the defaults (as omitting it does); `demo` is a synonym kept
from when the demo had its own config file."""


def _base_path(base: Any, path: Path) -> Path | None:
    """The YAML file every run starts from; None: the defaults (each run's scale-dependent
    values then follow its model.path, see `config.SCALE_DEFAULTS`)."""
    if base is None or base in BASE_DEFAULTS:
        return None
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be 'defaults' or a YAML path, got {base!r}")
    return (path.parent / base).resolve()


def _pick(grid: dict[str, Any], axis: str, known: dict[str, Any], where: str) -> list[str]:
    chosen = grid.get(axis, "all")
    if chosen == "all":
        return list(known)
    if not isinstance(chosen, list) or not chosen:
        raise ConfigError(f"{where}.{axis} must be 'all' or a non-empty list, got {chosen!r}")
    missing = [str(c) for c in chosen if c not in known]
    if missing:
        raise ConfigError(
            f"{where}.{axis}: unknown {', '.join(missing)} (known: {', '.join(known)})"
        )
    return [str(c) for c in chosen]


def _seeds(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) for s in value):
        raise ConfigError(f"{where} must be a non-empty list of integers, got {value!r}")
    return value


def load_experiment(path: Path) -> Experiment:
    """Parse and validate an experiment file; every run's config is built (and so checked)."""
    try:
        tree = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read experiment file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    tree = _mapping(tree, str(path))
    known_keys = {"name", "base", "overrides", "seeds", "grids", *AXES}
    unknown = sorted(set(tree) - known_keys)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known_keys))})"
        )
    blocks = {axis: _mapping(tree.get(axis), f"{path}: {axis}") for axis in AXES}
    for axis, entries in blocks.items():
        if not entries:
            raise ConfigError(f"{path}: {axis} must name at least one entry")
    base = _base_path(tree.get("base"), path)
    common = _overrides(tree.get("overrides"), f"{path}: overrides")
    seeds = _seeds(tree.get("seeds", [0]), f"{path}: seeds")
    grids = tree.get("grids") or [{}]
    if not isinstance(grids, list):
        raise ConfigError(f"{path}: grids must be a list of mappings")
    runs: dict[str, RunSpec] = {}
    for index, grid in enumerate(grids):
        where = f"{path}: grids[{index}]"
        grid = _mapping(grid, where)
        extra = sorted(set(grid) - {*AXES, "seeds"})
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}")
        axes = [_pick(grid, axis, blocks[axis], where) for axis in AXES]
        grid_seeds = seeds if "seeds" not in grid else _seeds(grid["seeds"], f"{where}.seeds")
        for task, method, size, seed in itertools.product(*axes, grid_seeds):
            spec = _run_spec(base, common, blocks, task, method, size, seed, path)
            runs.setdefault(spec.name, spec)
    return Experiment(name=str(tree.get("name", path.stem)), path=path, runs=tuple(runs.values()))


def _run_spec(base, common, blocks, task, method, size, seed, path) -> RunSpec:
    overrides = [
        *common,
        *_overrides(blocks["tasks"][task], f"{path}: tasks.{task}"),
        *_overrides(blocks["sizes"][size], f"{path}: sizes.{size}"),
        *_overrides(blocks["methods"][method], f"{path}: methods.{method}"),
        f"train.seed={seed}",
    ]
    try:
        config = check(load_config(base, overrides))  # a misnamed entry stops here, before any run
    except ConfigError as err:
        raise ConfigError(f"{path}: run {task}/{size}/{method}/seed{seed}: {err}") from None
    return RunSpec(task=task, size=size, method=method, seed=seed, config=config)


# ---- running ----------------------------------------------------------------------------


@dataclass
class _Job:
    label: str
    argv: list[str]
    log: Path
    needs: tuple[Path, ...] = ()
    """Base model directories that must be saved, and have learnt their task (greedy accuracy
    >= min_greedy), before the job can start."""
    min_greedy: float = 0.0
    metrics: Path | None = None
    """A training job's metrics.jsonl (a row per step); None for a base-model job, whose
    progress is its `progress` file."""
    progress: Path | None = None
    """A base-model job's latest held-out check (`pretrain --progress`, `pretrain.write_check`)."""
    total_steps: int = 0
    process: subprocess.Popen | None = None
    task_id: int | None = None

    def ready(self) -> bool:
        return all(is_learnt(path, self.min_greedy) for path in self.needs)

    def steps_done(self) -> tuple[int, int]:
        """(steps done, steps in all): a base model's total is its cap until its cool-down starts."""
        if self.metrics is None:
            step, total = (0, 0) if self.progress is None else read_check(self.progress)
            return step, total or self.total_steps
        if not self.metrics.is_file():
            return 0, self.total_steps
        with self.metrics.open("rb") as f:
            return sum(1 for _ in f), self.total_steps


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "entropy_rl", *args]


def _config_file(out: Path, key: str, config: Config) -> Path:
    target = out / LOG_DIR / f"{key}.yaml"
    write_atomic(target, dump_config(config))
    return target


def _base_model_jobs(out: Path, pending: list[RunSpec]) -> list[_Job]:
    """One job per base model the pending runs need that is not saved yet; a fine-tuned
    one (sum3_trap) waits for its parent, so no two processes make the same base model."""
    jobs: dict[Path, _Job] = {}
    for spec in pending:
        config, needs = spec.config, ()
        if config.model.path:
            continue  # a local Hugging Face model: nothing to pretrain
        base_task = base_task_of(config.task)
        if base_task is not None:
            parent = parent_config(config, base_task)
            _add_base_job(jobs, out, parent, ())
            needs = (base_model_dir(parent),)
        _add_base_job(jobs, out, config, needs)
    return list(jobs.values())


def _add_base_job(jobs: dict[Path, _Job], out: Path, config: Config, needs: tuple) -> None:
    target = base_model_dir(config)
    if target in jobs or is_saved(target):
        return
    key = f"base-{target.name}"
    settings = config.pretrain
    progress = out / LOG_DIR / f"{key}.progress.json"
    config_path = _config_file(out, key, config)
    jobs[target] = _Job(
        label=f"base model {target.name}",
        argv=_cli("pretrain", "--config", str(config_path), "--progress", str(progress)),
        log=out / LOG_DIR / f"{key}.log",
        progress=progress,
        needs=needs,
        min_greedy=settings.min_greedy,
        total_steps=settings.max_steps
        if base_task_of(config.task) is None
        else settings.finetune_steps,
    )


def _train_job(out: Path, spec: RunSpec) -> _Job:
    run_dir = out / spec.name
    if run_status(run_dir) == RunStatus.PARTIAL:
        argv = _cli("train", "--quiet", "--resume", str(run_dir))
    else:
        discard_unsaved(run_dir)
        key = spec.name.replace("/", "-")
        config_path = _config_file(out, key, spec.config)
        argv = _cli("train", "--quiet", "--config", str(config_path), "--run-dir", str(run_dir))
    return _Job(
        label=spec.name,
        argv=argv,
        log=out / LOG_DIR / f"{spec.name.replace('/', '-')}.log",
        needs=() if spec.config.model.path else (base_model_dir(spec.config),),
        min_greedy=spec.config.pretrain.min_greedy,
        metrics=run_dir / METRICS_FILE,
        total_steps=spec.config.train.steps + 1,
    )


def _thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


class _Pool:
    """Runs jobs `jobs` at a time as child processes, with a progress row for each."""

    def __init__(self, jobs: int, threads: int, progress: Progress, overall, console) -> None:
        self.jobs, self.env = jobs, _thread_env(threads)
        self.progress, self.overall, self.console = progress, overall, console
        self.active: list[_Job] = []
        self.failed: list[_Job] = []
        self.interrupted = False

    def run(self, queue: list[_Job]) -> list[_Job]:
        """Start jobs in order as their base models become ready; returns the jobs never
        started (interrupted, or waiting on a base model that failed)."""
        queue = list(queue)
        while (queue and not self.interrupted) or self.active:
            ready = [job for job in queue if job.ready()]
            if not ready and not self.active:
                break  # what is left waits on a base model that failed or did not learn
            for job in ready[: max(0, self.jobs - len(self.active))]:
                if not self.interrupted:
                    queue.remove(job)
                    self.active.append(self._start(job))
            time.sleep(_POLL_S)
            for job in list(self.active):
                if job.total_steps:
                    done, total = job.steps_done()
                    self.progress.update(job.task_id, completed=done, total=total)
                if job.process.poll() is not None:
                    self.active.remove(job)
                    self._finish(job)
        return queue

    def interrupt(self) -> None:
        """Ctrl-C: ask every running job to checkpoint and stop; start nothing more."""
        self.interrupted = True
        for job in self.active:
            if job.process.poll() is None:
                os.killpg(job.process.pid, signal.SIGINT)

    def _start(self, job: _Job) -> _Job:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with job.log.open("ab") as log:
            job.process = subprocess.Popen(
                job.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        job.task_id = self.progress.add_task(job.label, total=job.total_steps or None)
        return job

    def _finish(self, job: _Job) -> None:
        self.progress.remove_task(job.task_id)
        code = job.process.returncode
        if self.interrupted:
            self.console.print(f"stopped {job.label}")
        elif code == 0:
            self.progress.advance(self.overall)
            self.console.print(f"[green]done[/] {job.label}")
        else:
            self.failed.append(job)
            self.console.print(f"[red]failed[/] {job.label} (exit {code}); see {job.log}")


def _manifest(experiment: Experiment, out: Path, wall_s: float) -> dict[str, Any]:
    return {
        "name": experiment.name,
        "experiment_file": str(experiment.path),
        "wall_time_s": wall_s,
        "runs": [
            {**spec.labels(), "dir": spec.name, "status": run_status(out / spec.name)}
            for spec in experiment.runs
        ],
    }


def run_experiment(
    experiment: Experiment, out: Path, *, jobs: int, threads: int, console: Console
) -> dict[str, Any]:
    """Make the missing base models and train every unfinished run, holding the lock of
    `out`; returns the manifest (also written to OUT/experiment.json, with the wall time
    summed over invocations)."""
    with lock_dir(out, "experiment directory") as stale:
        note = stale_note(stale, out)
        if note is not None:
            console.print(note, soft_wrap=True, markup=False, highlight=False)
        return _run_locked(experiment, out, jobs, threads, console)


def _run_locked(experiment: Experiment, out: Path, jobs: int, threads: int, console) -> dict:
    start = time.monotonic()
    previous = _previous_wall_time(out)
    pending = [s for s in experiment.runs if run_status(out / s.name) != RunStatus.DONE]
    console.print(
        f"experiment {experiment.name}: {len(experiment.runs)} runs, "
        f"{len(experiment.runs) - len(pending)} already finished; {jobs} at a time, "
        f"{threads} thread(s) each"
    )
    largest_first = sorted(
        pending, key=lambda s: -s.config.model.hidden_size * s.config.model.num_layers
    )
    base_jobs = _base_model_jobs(out, pending)
    train_jobs = [_train_job(out, spec) for spec in largest_first]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("[bold]experiment", total=len(base_jobs) + len(train_jobs))
        # One pool: the base models first, and each run as soon as its base model is ready,
        # so the runs of one size train while another size's base model is being made.
        pool = _Pool(jobs, threads, progress, overall, console)
        # Ctrl-C, or a `kill` (SIGTERM) of this process alone: each running job checkpoints
        # and stops (its process group gets SIGINT), rather than training on unwatched.
        handlers = {
            sig: signal.signal(sig, lambda signum, frame: pool.interrupt())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            not_started = pool.run(base_jobs + train_jobs)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    manifest = _manifest(experiment, out, previous + time.monotonic() - start)
    write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    failed, interrupted = pool.failed, pool.interrupted
    _explain_end(failed, interrupted, not_started, out, console)
    manifest["failed"] = [job.label for job in failed]
    manifest["interrupted"] = interrupted
    return manifest


def _previous_wall_time(out: Path) -> float:
    try:
        return float(json.loads((out / MANIFEST_FILE).read_text())["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _explain_end(
    failed: list[_Job], interrupted: bool, not_started: list[_Job], out: Path, console: Console
) -> None:
    if interrupted:
        console.print(
            "interrupted: finished runs are kept, the others checkpointed; run the same command to resume"
        )
    elif failed:
        console.print(
            f"{len(failed)} job(s) failed (logs in {out / LOG_DIR}); {len(not_started)} "
            "waited on a base model that failed or has not learnt its task (its log says "
            "what to do); the same command retries and skips finished runs"
        )
    else:
        console.print(f"all runs finished; report with: entropy-rl report {out} --out {out}/report")


def describe(experiment: Experiment) -> list[str]:
    """One line per run, for --dry-run."""
    return [
        f"{spec.name}: " + ", ".join(f"{k}={v}" for k, v in _differences(spec.config).items())
        for spec in experiment.runs
    ]


def _differences(config: Config) -> dict[str, Any]:
    """The fields that differ from the defaults of the run's scale (embedded or model.path)."""
    default = dataclasses.asdict(default_config(config.model.path))
    changed = {}
    for section, values in dataclasses.asdict(config).items():
        for key, value in values.items():
            if default[section][key] != value:
                changed[f"{section}.{key}"] = value
    return changed


__all__ = ["Experiment", "RunSpec", "describe", "load_experiment", "run_experiment"]
