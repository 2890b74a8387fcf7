"""A training run around the loop of `trainer`: run directory, resume, checkpoints, Ctrl-C,
progress display, and the end-of-run summary (law fit and plots)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from entropy_rl import checkpoint
from entropy_rl.atomic import write_atomic
from entropy_rl.config import Config, ConfigError, dump_config, load_config
from entropy_rl.law import fit_entropy_law
from entropy_rl.logs import METRICS_FILE, MetricsWriter
from entropy_rl.models import load_pretrained
from entropy_rl.policy import Policy
from entropy_rl.pretrain import pretrain
from entropy_rl.summary import summarize_run
from entropy_rl.tasks import make_task
from entropy_rl.trainer import CONFIG_FILE, RunState, run_step

LAW_MIN_EVALS = 5
"""Validation points needed before the progress display shows the law's ceiling."""


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


def _optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )


def _restore(run_dir: Path, config: Config, console: Console):
    """Policy, optimizer and run state: from the last checkpoint, else fresh from the base model."""
    task = make_task(config.task)
    found = checkpoint.find_checkpoint(run_dir)
    if found is None:
        base = pretrain(config, progress=None)
        model, tokenizer = load_pretrained(base)
        console.print(f"base model: {base}")
        optimizer = _optimizer(model, config)
        return Policy(model.eval(), tokenizer, task), optimizer, RunState.fresh(config.train.seed)
    model, tokenizer = load_pretrained(found / "model")
    optimizer = _optimizer(model, config)
    saved = checkpoint.load_trainer_state(found)
    optimizer.load_state_dict(saved["optimizer"])
    state = RunState.from_dict(saved["run_state"])
    console.print(f"resuming {run_dir} at step {state.step}")
    return Policy(model.eval(), tokenizer, task), optimizer, state


def _save(run_dir: Path, policy: Policy, optimizer, state: RunState) -> None:
    payload = {"optimizer": optimizer.state_dict(), "run_state": state.to_dict()}
    checkpoint.save_checkpoint(run_dir, policy.model, policy.tokenizer, payload)


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
                status += f"  ceiling {fit_entropy_law(self.entropy, self.accuracy).ceiling:.3f}"
        self.progress.update(self.task, advance=1, status=status)


def train(
    config: Config | None,
    run_dir: Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict:
    """Run (or resume) training in `run_dir`; returns the end-of-run summary."""
    console = console or Console(stderr=True)
    if resume:
        config = load_run_config(run_dir)
    else:
        prepare_run_dir(run_dir, config)
    policy, optimizer, state = _restore(run_dir, config, console)
    val_problems = policy.task.validation_problems()
    total = config.train.steps + 1
    display = _Display(total, state.step, console, show_progress)
    with (
        MetricsWriter(run_dir / METRICS_FILE, keep_before=state.step) as writer,
        _stop_on_interrupt(state, console),
        display.progress,
    ):
        while state.step < total and not state.stop_requested:
            record = run_step(policy, optimizer, config, state, val_problems)
            writer.write(record)
            display.update(record)
            state.step += 1
            if state.step % config.train.save_every == 0 or state.step == total:
                _save(run_dir, policy, optimizer, state)
    if state.stop_requested:
        _save(run_dir, policy, optimizer, state)
        console.print(
            f"stopped at step {state.step}; resume with: entropy-rl train --resume {run_dir}"
        )
        return {"stopped_at": state.step}
    return summarize_run(run_dir, console)
