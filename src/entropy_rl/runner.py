"""A training run around the loop of `trainer`: run directory, resume, checkpoints, Ctrl-C,
progress display, and the end-of-run summary (law fit and plots)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from entropy_rl import checkpoint
from entropy_rl.atomic import write_atomic
from entropy_rl.config import Config, ConfigError, dump_config, load_config
from entropy_rl.distributed import Dist, init_distributed, shutdown, wrap_model
from entropy_rl.law import RELIABLE_MIN_POINTS, fit_entropy_law
from entropy_rl.logs import METRICS_FILE, MetricsWriter
from entropy_rl.models import load_pretrained
from entropy_rl.policy import Policy
from entropy_rl.pretrain import base_model_dir, make_base_model, require_learnt
from entropy_rl.rollout import make_engine
from entropy_rl.summary import SUMMARY_FILE, summarize_run
from entropy_rl.tasks import make_reward, make_task
from entropy_rl.tracking import Trackers, check_trackers
from entropy_rl.trainer import CONFIG_FILE, RunState, micro_batch_size, run_step

LAW_MIN_EVALS = RELIABLE_MIN_POINTS
"""Validation points needed before the progress display shows the law's ceiling."""


def run_status(run_dir: Path) -> str:
    """'done' (summary written), 'partial' (a checkpoint to resume from) or 'new'."""
    if (run_dir / SUMMARY_FILE).is_file():
        return "done"
    if checkpoint.find_checkpoint(run_dir) is not None:
        return "partial"
    return "new"


def discard_unsaved(run_dir: Path) -> None:
    """Remove the metrics of a run killed before its first checkpoint, so it starts afresh."""
    if run_status(run_dir) == "new":
        (run_dir / METRICS_FILE).unlink(missing_ok=True)


def prepare_run_dir(run_dir: Path, config: Config) -> None:
    """A new run directory with the resolved config; refuses to overwrite a run."""
    if (run_dir / METRICS_FILE).exists() or checkpoint.find_checkpoint(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run: resume it with --resume {run_dir}, or pick another --run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, dump_config(config))


def load_run_config(run_dir: Path) -> Config:
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    return load_config(run_dir / CONFIG_FILE)


def check_world(config: Config, dist: Dist) -> None:
    """ConfigError unless the batch splits evenly over the ranks and their micro-batches."""
    train, world = config.train, dist.world_size
    if train.prompts_per_step % world:
        raise ConfigError(
            f"train.prompts_per_step ({train.prompts_per_step}) must be divisible by the "
            f"number of ranks ({world})"
        )
    if micro_batch_size(config, dist) == 0 or (
        train.prompts_per_step * train.group_size // world
    ) % (train.mini_batches * train.micro_batches):
        raise ConfigError(
            f"each rank's {train.prompts_per_step * train.group_size // world} responses must be "
            f"divisible by train.mini_batches * train.micro_batches"
        )


def _optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )


def _on_main(dist: Dist, fn, *args):
    """Run fn(*args) on rank 0 only; a ConfigError there is raised on every rank."""
    error = None
    if dist.is_main:
        try:
            fn(*args)
        except ConfigError as err:
            error = str(err)
    error = dist.broadcast_object(error)
    if error is not None:
        raise ConfigError(error)


def _model_source(run_dir: Path, config: Config, dist: Dist, console: Console):
    """(directory, dtype) to load the policy from: the last checkpoint, model.path, or the
    embedded base model (pretrained on rank 0 first when missing; BaseModelError when it has
    not learnt its task)."""
    found = checkpoint.find_checkpoint(run_dir)
    if found is not None:
        return found / "model", "auto"
    if config.model.path:
        return Path(config.model.path), config.model.dtype
    _on_main(dist, make_base_model, config, console)
    base = base_model_dir(config)
    require_learnt(base, config.pretrain.min_greedy)
    return base, "auto"


def _load_model(source: Path, dtype: str, config: Config, dist: Dist):
    try:
        model, tokenizer = load_pretrained(source, dtype)
    except ValueError as err:
        raise ConfigError(f"model.path: {err}") from None
    model = model.to(dist.device).eval()
    if config.model.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    return model, tokenizer


def _restore(run_dir: Path, config: Config, console: Console, dist: Dist, task, reward):
    """Policy, optimizer and run state: from the last checkpoint, else fresh."""
    source, dtype = _model_source(run_dir, config, dist, console)
    model, tokenizer = _load_model(source, dtype, config, dist)
    trainable = wrap_model(model, dist)
    optimizer = _optimizer(trainable, config)
    autocast = (
        config.model.autocast and dist.device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    policy = Policy(
        model,
        tokenizer,
        task,
        reward,
        chat_template=config.model.chat_template,
        autocast=autocast,
        trainable=None if trainable is model else trainable,
        dist=dist,
    )
    policy = replace(policy, engine=make_engine(config, policy, source, dist))
    found = checkpoint.find_checkpoint(run_dir)
    if found is None:
        return policy, optimizer, RunState.fresh(config.train.seed, dist.rank, dist.device)
    saved = checkpoint.load_trainer_state(found)
    if saved.get("world_size", 1) != dist.world_size:
        raise ConfigError(
            f"{run_dir} was checkpointed by {saved.get('world_size', 1)} ranks: resume it "
            f"with the same number (now {dist.world_size})"
        )
    _load_optimizer(policy, optimizer, saved["optimizer"], dist)
    state = RunState.from_dict(saved["run_state"], dist.device)
    if "rollout_gens" in saved:
        state.rollout_gen.set_state(saved["rollout_gens"][dist.rank])
    if dist.is_main:
        console.print(f"resuming {run_dir} at step {state.step}")
    return policy, optimizer, state


def _load_optimizer(policy: Policy, optimizer, saved: dict, dist: Dist) -> None:
    if not dist.active:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not saved.get("state"):
        return  # nothing to shard (no step taken yet); the hyperparameters come from the config
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(policy.module, optimizer, saved, options=options)


def _save(run_dir: Path, policy: Policy, optimizer, state: RunState, dist: Dist) -> None:
    """A checkpoint written by rank 0; under torchrun the full (unsharded) model and optimizer
    state are gathered to it first, with every rank's sampling generator."""
    if not dist.active:
        payload = {"optimizer": optimizer.state_dict(), "run_state": state.to_dict()}
        checkpoint.save_checkpoint(run_dir, policy.model, policy.tokenizer, payload)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(policy.module, options=options)
    optim = get_optimizer_state_dict(policy.module, optimizer, options=options)
    gens = dist.gather_objects(state.rollout_gen.get_state())
    if dist.is_main:
        payload = {
            "optimizer": optim,
            "run_state": state.to_dict(),
            "rollout_gens": gens,
            "world_size": dist.world_size,
        }
        checkpoint.save_checkpoint(
            run_dir, policy.model, policy.tokenizer, payload, state_dict=weights
        )
    dist.barrier()


@contextlib.contextmanager
def _stop_on_interrupt(state: RunState, console: Console) -> Iterator[None]:
    """The first Ctrl-C asks the loop to stop after the current step; a second one aborts."""

    def handler(signum, frame):
        if state.stop_requested:
            raise KeyboardInterrupt
        state.stop_requested = True
        console.print("[yellow]stopping after this step (Ctrl-C again to abort)[/yellow]")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Display:
    """One progress line: step, reward, validation accuracy, entropy, predicted ceiling."""

    def __init__(self, total: int, start: int, console: Console, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, status="")
        self.entropy: list[float] = []
        self.accuracy: list[float] = []
        self.last_val: float | None = None

    def update(self, record: dict) -> None:
        if "val/acc" in record:
            self.entropy.append(record["entropy/mean"])
            self.accuracy.append(record["val/acc"])
            self.last_val = record["val/acc"]
        status = f"reward {record['reward/mean']:.3f}  H {record['entropy/mean']:.3f}"
        if self.last_val is not None:
            status += f"  val/acc {self.last_val:.3f}"
        if len(self.entropy) >= LAW_MIN_EVALS:
            with contextlib.suppress(ValueError):
                status += f"  ceiling {fit_entropy_law(self.entropy, self.accuracy).ceiling_text()}"
        self.progress.update(self.task, advance=1, status=status)


def train(
    config: Config | None,
    run_dir: Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict:
    """Run (or resume) training in `run_dir`; returns the end-of-run summary (on rank 0;
    other ranks of a torchrun job return {})."""
    console = console or Console(stderr=True)
    config = load_run_config(run_dir) if resume else config
    dist = init_distributed(config.distributed)
    try:
        return _train(config, run_dir, resume, console, show_progress, dist)
    finally:
        shutdown(dist)


def _train(config: Config, run_dir: Path, resume: bool, console, show_progress, dist) -> dict:
    check_world(config, dist)
    check_trackers(config.log)
    task = make_task(config.task)  # data and reward checked before the run directory exists
    reward = make_reward(config.task, task)
    if not resume:
        _on_main(dist, prepare_run_dir, run_dir, config)
    policy, optimizer, state = _restore(run_dir, config, console, dist, task, reward)
    val_problems = policy.task.validation_problems()
    total = config.train.steps + 1
    display = _Display(total, state.step, console, show_progress and dist.is_main)
    writer = (
        MetricsWriter(run_dir / METRICS_FILE, keep_before=state.step)
        if dist.is_main
        else contextlib.nullcontext()
    )
    trackers = Trackers(config, run_dir, state.step) if dist.is_main else contextlib.nullcontext()
    with writer, trackers, _stop_on_interrupt(state, console), display.progress:
        while state.step < total and not state.stop_requested:
            record = run_step(policy, optimizer, config, state, val_problems)
            if dist.is_main:
                writer.write(record)
                trackers.write(record)
                display.update(record)
            state.step += 1
            if state.step % config.train.save_every == 0 or state.step == total:
                _save(run_dir, policy, optimizer, state, dist)
            state.stop_requested = not dist.all_done(not state.stop_requested)
    if state.stop_requested:
        _save(run_dir, policy, optimizer, state, dist)
        if dist.is_main:
            console.print(
                f"stopped at step {state.step}; resume with: entropy-rl train --resume {run_dir}"
            )
        return {"stopped_at": state.step}
    return summarize_run(run_dir, console) if dist.is_main else {}
