"""A training run around the loop of `trainer`: run directory and its lock, resume,
checkpoints, Ctrl-C, the stop at saturation, progress display, and the end-of-run summary
(law fit and plots)."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from entropy_rl.analysis.law import ceiling_text
from entropy_rl.analysis.live_law import saturated
from entropy_rl.analysis.summary import summarize_run
from entropy_rl.config import Config, ConfigError, dump_config
from entropy_rl.errors import RunError
from entropy_rl.runs import checkpoint
from entropy_rl.runs.layout import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from entropy_rl.runs.lock import lock_dir, stale_note
from entropy_rl.runs.metric_keys import (
    ENTROPY_MEAN,
    LAW_CEILING,
    LAW_N,
    LAW_R2,
    REWARD_MEAN,
    VAL_ACC,
)
from entropy_rl.runs.metrics_log import MetricsWriter
from entropy_rl.runs.resume_point import ResumePoint, resume_point
from entropy_rl.runs.run_dir import (
    RUN_LOCK,
    load_run_config,
    prepare_run_dir,
    run_status,
    stopped_early,
)
from entropy_rl.runs.status import RunStatus
from entropy_rl.runs.tracking import Trackers, check_trackers
from entropy_rl.tasks import make_reward, make_task
from entropy_rl.tasks.base_models import base_model_dir
from entropy_rl.training import lora
from entropy_rl.training.checks import check
from entropy_rl.training.distributed import Dist, init_distributed, shutdown, wrap_model
from entropy_rl.training.engines import make_engine
from entropy_rl.training.models import check_saved_model, load_pretrained
from entropy_rl.training.policy import Policy, RolloutWorker
from entropy_rl.training.pretrain import make_base_model, require_learnt
from entropy_rl.training.rollout import logits_post_processing
from entropy_rl.training.run_state import EarlyStop, RunState
from entropy_rl.training.trainer import micro_batch_size, run_step


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
    """AdamW over the trainable parameters: all of them, or the LoRA adapters only."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)


def _on_main(dist: Dist, fn, *args):
    """fn(*args) on rank 0 only, its result sent to every rank; an error a user can act on
    (ConfigError, RunError, OSError) raised there is raised on every rank (there as itself,
    on the others as a RunError of the same message, which they do not print)."""
    if not dist.active:
        return fn(*args)
    result = error = None
    if dist.is_main:
        try:
            result = fn(*args)
        except (ConfigError, RunError, OSError) as err:
            error = err
    message = dist.broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise RunError(message)
    return dist.broadcast_object(result)


def _model_source(start: ResumePoint, config: Config, dist: Dist, console: Console):
    """(directory, dtype) to load the policy from: the checkpoint resumed from (with LoRA,
    whose checkpoints hold the adapter only: the base model below), model.path, or the
    embedded base model (pretrained on rank 0 first when missing; BaseModelError when it has
    not learnt its task)."""
    if start.checkpoint is not None and not config.model.lora_rank:
        return start.checkpoint.model_dir, "auto"
    if config.model.path:
        return Path(config.model.path), config.model.dtype
    _on_main(dist, make_base_model, config, console)
    base = base_model_dir(config)
    require_learnt(base, config.pretrain.min_greedy)
    return base, "auto"


def require_plain_logits(model, source) -> None:
    """ConfigError for a model whose code changes its head's logits (`rollout.logits_post_processing`)."""
    changed = logits_post_processing(model)
    if changed is not None:
        raise ConfigError(
            f"model.path: {source}: the model changes its logits after the output head "
            f"({changed}); entropy-rl scores responses from the head's projection and does not "
            "support that"
        )


def _check_model_path(config: Config) -> None:
    """ConfigError for a model.path that is not a saved model and tokenizer: checked before a
    new run directory is made."""
    if config.model.path:
        try:
            check_saved_model(Path(config.model.path))
        except ValueError as err:
            raise ConfigError(f"model.path: {err}") from None


def _load_model(source: Path, dtype: str, config: Config, dist: Dist, adapter: Path | None):
    """The policy from `source`; with LoRA, adapters added (from the `adapter` directory of
    the checkpoint resumed from, else new) and every other weight frozen."""
    try:
        model, tokenizer = load_pretrained(source, dtype)
    except ValueError as err:
        raise ConfigError(f"model.path: {err}") from None
    except Exception as err:  # a checkpoint's weights that verified but do not load
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RunError(f"{source}: the model does not load ({first})") from None
    require_plain_logits(model, source)
    if config.model.lora_rank:
        lora.add_lora(model, config.model, config.train.seed)
        if adapter is not None:
            lora.load_adapter(model, adapter)
    model = model.to(dist.device).eval()
    if config.model.gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
    return model, tokenizer


def _restore(start: ResumePoint, config: Config, console: Console, dist: Dist, task, reward):
    """Policy, its rollout worker (the engine `rollout.engine` names, on `task` and `reward`),
    optimizer and run state: from the checkpoint of `start`, else fresh."""
    source, dtype = _model_source(start, config, dist, console)
    adapter = None if start.checkpoint is None else start.checkpoint.model_dir
    model, tokenizer = _load_model(source, dtype, config, dist, adapter)
    if config.model.lora_rank and dist.is_main:
        trained, total = lora.trainable_share(model)
        say(console, f"LoRA: training {trained:,} adapter parameters, {total - trained:,} frozen")
    trainable = wrap_model(model, dist)
    optimizer = _optimizer(trainable, config)
    autocast = (
        config.model.autocast and dist.device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    policy = Policy(
        model,
        tokenizer,
        chat_template=config.model.chat_template,
        autocast=autocast,
        trainable=None if trainable is model else trainable,
    )
    worker = RolloutWorker(make_engine(config, policy, source, dist), task, reward)
    if start.checkpoint is None:
        return policy, worker, optimizer, RunState.fresh(config.train.seed, dist.rank, dist.device)
    saved = start.state if dist.is_main else checkpoint.read_state(start.checkpoint)
    _load_optimizer(policy, optimizer, saved["optimizer"], dist)
    for group in optimizer.param_groups:  # the config's values (an applied edit) win
        group["lr"], group["weight_decay"] = config.train.lr, config.train.weight_decay
    state = RunState.from_dict(saved["run_state"], dist.device)
    if "rollout_gens" in saved:
        state.rollout_gen.set_state(saved["rollout_gens"][dist.rank])
    return policy, worker, optimizer, state


def _load_optimizer(policy: Policy, optimizer, saved: dict, dist: Dist) -> None:
    if not dist.active:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not saved.get("state"):
        return  # nothing to shard (no step taken yet); the hyperparameters come from the config
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(policy.module, optimizer, saved, options=options)


def _write_checkpoint(run_dir: Path, policy: Policy, config: Config, payload, weights=None):
    """The checkpoint: the whole model, or with LoRA its adapter only."""
    step, keep = payload["run_state"]["step"], config.train.keep_checkpoints
    model, tokenizer, text = policy.model, policy.tokenizer, dump_config(config)
    if config.model.lora_rank:
        model = lora.Adapter(policy.model, config.model.path or str(base_model_dir(config)))
    checkpoint.save_checkpoint(run_dir, step, model, tokenizer, payload, text, keep, weights)


def _save(run_dir: Path, policy: Policy, optimizer, state: RunState, config, dist) -> None:
    """A checkpoint written by rank 0; under torchrun the full (unsharded) model and optimizer
    state are gathered to it first, with every rank's sampling generator."""
    if not dist.active:
        payload = {"optimizer": optimizer.state_dict(), "run_state": state.to_dict()}
        _write_checkpoint(run_dir, policy, config, payload)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    lora_only = bool(config.model.lora_rank)  # the frozen base is not gathered
    options = StateDictOptions(
        full_state_dict=True, cpu_offload=True, ignore_frozen_params=lora_only
    )
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
        _write_checkpoint(run_dir, policy, config, payload, weights)
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


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """The progress display of training and `entropy-rl eval`: a task's description, its bar,
    done/total, time left and its `status` field; nothing when not `enabled`. On a console
    that is not a terminal rich draws no live bar, only the last state once, at the end."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not enabled,
    )


class _Display:
    """One progress line: step, reward, validation accuracy, entropy, and the ceiling of the
    law fitted so far (the row's `law/*` keys, flagged when unreliable)."""

    def __init__(self, total: int, start: int, console: Console, enabled: bool) -> None:
        self.progress = progress_bar(console, enabled)
        self.task = self.progress.add_task("train", total=total, completed=start, status="")
        self.last_val: float | None = None
        self.ceiling: str | None = None

    def update(self, record: dict) -> None:
        if VAL_ACC in record:
            self.last_val = record[VAL_ACC]
        if LAW_CEILING in record:
            self.ceiling = ceiling_text(record[LAW_CEILING], record[LAW_N], record[LAW_R2])
        status = f"reward {record[REWARD_MEAN]:.3f}  H {record[ENTROPY_MEAN]:.3f}"
        if self.last_val is not None:
            status += f"  val/acc {self.last_val:.3f}"
        if self.ceiling is not None:
            status += f"  ceiling {self.ceiling}"
        self.progress.update(self.task, advance=1, status=status)


def train(
    config: Config | None,
    run_dir: Path,
    *,
    resume: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict:
    """Run (or resume) training in `run_dir`, holding its lock; returns the end-of-run
    summary (on rank 0; other ranks of a torchrun job return {}), or {"stopped_at": step}
    after a Ctrl-C. Progress and notices go to `console` (default: stderr), the summary
    table to stdout. Resuming a finished run changes nothing and returns its summary, unless
    it stopped at saturation and its config.yaml was edited so that it goes on
    (`continues`)."""
    console = console or Console(stderr=True)
    if resume and run_status(run_dir) == RunStatus.DONE and not continues(run_dir):
        return finished(run_dir, console)
    config = check(load_run_config(run_dir) if resume else config)
    dist = init_distributed(config.distributed)
    try:
        result = _train(config, run_dir, resume, console, show_progress, dist)
        dist.barrier()  # no rank exits (and has torchrun stop the others) before rank 0 wrote
        return result
    finally:
        shutdown(dist)


def say(console: Console, line: str) -> None:
    """Print `line` as it is: one line however long, no markup (paths may hold "[...]")."""
    console.print(line, soft_wrap=True, markup=False, highlight=False)


def finished(run_dir: Path, console: Console) -> dict:
    """Say that the run is finished (or stopped at saturation, and how to go on); its
    summary."""
    stop = stopped_early(run_dir)
    if stop is None:
        say(
            console,
            f"{run_dir} is finished ({SUMMARY_FILE} is written): nothing to resume, nothing "
            f"changed (to train longer, start a new run with more train.steps)",
        )
    else:
        say(
            console,
            f"{run_dir} already stopped at saturation at step {stop['step']} "
            f"({stop['reason']}): nothing changed; to train past it, set "
            f"train.stop_at_saturation: false in {run_dir / CONFIG_FILE} and resume again "
            f"(more train.steps alone would stop it at the same step)",
        )
    with contextlib.suppress(OSError, ValueError):
        return json.loads((run_dir / SUMMARY_FILE).read_text())
    return {}


def continues(run_dir: Path) -> bool:
    """Whether a resume goes on past a stop at saturation: the run stopped so, and its
    config.yaml, as edited since, would not have stopped it there (train.stop_at_saturation
    false, or a train.saturation_min_gain at or below the gain left)."""
    stop = stopped_early(run_dir)
    if stop is None:
        return False
    train = load_run_config(run_dir).train
    return not (
        train.stop_at_saturation and saturated(stop["gain_left"], train.saturation_min_gain)
    )


def _train(config: Config, run_dir: Path, resume: bool, console, show_progress, dist) -> dict:
    check_world(config, dist)
    check_trackers(config.log)
    if not resume:  # a resume may load its checkpoint's model without model.path
        _check_model_path(config)
    task = make_task(config.task)  # data and reward checked before the run directory exists
    reward = make_reward(config.task, task)
    with contextlib.ExitStack() as held:
        _on_main(dist, _lock, held, run_dir, console)
        if resume and run_status(run_dir) == RunStatus.DONE and not continues(run_dir):
            return finished(run_dir, console)  # finished by the previous holder
        start = _on_main(dist, _start, run_dir, config, resume, dist.world_size, console)
        policy, worker, optimizer, state = _restore(start, config, console, dist, task, reward)
        return _loop(
            run_dir, config, policy, worker, optimizer, state, dist, console, show_progress
        )


def _lock(held: contextlib.ExitStack, run_dir: Path, console: Console) -> None:
    """Take the run directory's lock into `held`: LockHeld, naming the holder, when another
    process has it; a note when it was left by a process that died."""
    note = stale_note(held.enter_context(lock_dir(run_dir, RUN_LOCK)), run_dir)
    if note is not None:
        say(console, note)


def _start(run_dir: Path, config: Config, resume: bool, world_size: int, console) -> ResumePoint:
    """A new run directory, or the checkpoint a resume starts from (printing how it was
    chosen)."""
    if not resume:
        prepare_run_dir(run_dir, config)
        return ResumePoint(None, None, ())
    start = resume_point(run_dir, config, world_size)
    stop = stopped_early(run_dir)
    if stop is not None:  # `continues`: its config no longer stops it there
        say(console, f"{run_dir} stopped at saturation at step {stop['step']}: going on past it")
        (run_dir / SUMMARY_FILE).unlink()
    for note in start.notes:
        say(console, note)
    if start.checkpoint is None:
        say(console, f"resuming {run_dir} at step 0 (it has no checkpoint yet)")
    else:
        step = start.state["run_state"]["step"]
        say(console, f"resuming {run_dir} at step {step} from {start.checkpoint.path.name}")
    return start


def _loop(run_dir: Path, config: Config, policy, worker, optimizer, state, dist, console, progress):
    """Steps until the last (checkpointing every save_every, and at the end) or a Ctrl-C."""
    val_problems = worker.task.validation_problems()
    if dist.is_main:
        for note in worker.task.notes:  # what the task chose that the config did not say
            say(console, note)
    total = config.train.steps + 1
    display = _Display(total, state.step, console, progress and dist.is_main)
    writer = (
        MetricsWriter(run_dir / METRICS_FILE, keep_before=state.step)
        if dist.is_main
        else contextlib.nullcontext()
    )
    trackers = Trackers(config, run_dir, state.step) if dist.is_main else contextlib.nullcontext()
    with writer, trackers, _stop_on_interrupt(state, console), display.progress:
        while state.step < total and not state.stop_requested:
            record = run_step(policy, worker, optimizer, config, state, val_problems, dist)
            for line in state.notices if dist.is_main else ():
                say(console, line)
            state.notices.clear()
            if dist.is_main:
                writer.write(record)
                trackers.write(record)
                display.update(record)
            state.step += 1
            if state.early_stop is not None:
                break
            if state.step % config.train.save_every == 0 or state.step == total:
                _save(run_dir, policy, optimizer, state, config, dist)
            state.stop_requested = not dist.all_done(not state.stop_requested)
    if state.early_stop is not None:
        return _stop_early(run_dir, config, policy, optimizer, state.early_stop, dist, console)
    if state.stop_requested:
        _save(run_dir, policy, optimizer, state, config, dist)
        if dist.is_main:
            console.print(
                f"stopped at step {state.step}; resume with: entropy-rl train --resume {run_dir}"
            )
        return {"stopped_at": state.step}
    return summarize_run(run_dir, Console()) if dist.is_main else {}  # the result: stdout


def _stop_early(run_dir: Path, config: Config, policy, optimizer, stop: EarlyStop, dist, console):
    """The end of a run stopped at saturation: its checkpoint at the stopping row (resumed,
    the row is recomputed), one line saying why, and its summary with `stopped_early`."""
    _save(run_dir, policy, optimizer, stop.state, config, dist)
    if not dist.is_main:
        return {}
    say(console, f"stopped early at step {stop.step}, saturated: {stop.reason}")
    return summarize_run(run_dir, Console(), stopped_early=stop.to_dict())
