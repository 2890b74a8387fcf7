"""The base model RL starts from: supervised training on noisy demonstrations.

1. Each demonstration is a correct response whose digits are each replaced by a random digit
   with probability `pretrain.noise`, so the base model is uncertain (high entropy) and its
   sampled accuracy moderate, leaving room for RL.
2. The sequence is `<bos> prompt response <eos>`; the loss is the token-mean cross entropy on
   the response tokens and eos only, never on the prompt.
3. The result is cached: one directory per (model, task, pretrain) config, reused when
   present. While it is being made, its lock file `.<name>.lock` beside it is held: another
   process that needs it then stops at once, naming the maker (`lock.LockHeld`).
4. A task with a `base_task` (sum3_trap) starts from that task's base model (made first when
   missing, and cached as usual) and trains `pretrain.finetune_steps` steps at
   `pretrain.finetune_lr` on its own demonstrations: a base model fine-tuned on data with a
   systematic error.
5. Every `pretrain.check_every` steps, greedy accuracy on the task's held-out validation
   prompts is measured (and shown). The learning rate warms up and holds until a check
   reaches `pretrain.cooldown_at`, then decays to 0 over `pretrain.cooldown_steps`: the
   sudden transition in which the carries are learnt comes at a step that depends on the
   seed, the size and the float summation order, and every model then trains the same number
   of steps past it (at most `pretrain.max_steps` in all; a model that has not reached
   `cooldown_at` by `max_steps - cooldown_steps` cools down then). At the end the base model's
   validation metrics (sampled and greedy accuracy, pass@k, answer entropy) go into
   pretrain.json with `learnt`: greedy accuracy >= the maker's `pretrain.min_greedy` (for a fine-tuned
   base model: its parent's verdict, as the fine-tune is meant to be wrong on part of the
   prompts). RL refuses a base model that has not learnt under its own min_greedy
   (`require_learnt`; min_greedy is not in the cache key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import PreTrainedTokenizerFast

from entropy_rl.config import Config, ConfigError, EvalConfig, PretrainConfig, TaskConfig
from entropy_rl.core import masked_mean, token_entropy
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import PRETRAIN_FILE, base_model_lock
from entropy_rl.runs.lock import locked
from entropy_rl.runs.metric_keys import ENTROPY_MEAN, VAL_ACC_GREEDY
from entropy_rl.tasks import Problem, Task, inert_fields, make_task
from entropy_rl.tasks.base_models import RECIPE_VERSION, base_model_dir
from entropy_rl.training.checks import check
from entropy_rl.training.distributed import Dist
from entropy_rl.training.models import (
    build_model,
    build_tokenizer,
    count_parameters,
    load_pretrained,
    save_pretrained_atomic,
)
from entropy_rl.training.policy import Policy, local_worker
from entropy_rl.training.rollout import response_logits
from entropy_rl.training.validation import accuracy, evaluate

POSITION_SLACK = 8
"""Positions the model supports beyond bos + longest prompt + response + eos."""
_PAD_CHAR = "\0"
REWARD_TIMEOUT_S = 5.0
"""Seconds a reward call of the held-out checks may take (the task's own verifier)."""

ProgressFn = Callable[[int, int, float, float | None], None]
"""progress(step, total, loss, greedy): after each optimizer step (step counts from 1 to
total); `greedy` is the held-out greedy accuracy on check steps, else None."""


class BaseModelError(ConfigError):
    """The base model has not learnt its task: RL from it would study another regime."""


def is_saved(directory: Path) -> bool:
    """True when `directory` holds a finished base model (pretrain.json is written last)."""
    return (directory / PRETRAIN_FILE).is_file()


def read_record(directory: Path) -> dict[str, Any]:
    """The pretrain.json of a saved base model."""
    return json.loads((directory / PRETRAIN_FILE).read_text())


def deciding_greedy(record: dict[str, Any]) -> float:
    """The held-out greedy accuracy that says whether a base model learnt its task: its own,
    or for a fine-tuned one its parent's (the fine-tune is meant to be wrong on some prompts)."""
    metrics = record.get("parent_validation") or record.get("validation") or {}
    return float(metrics.get(VAL_ACC_GREEDY, float("nan")))


def passes(record: dict[str, Any], min_greedy: float) -> bool:
    """The base model of `record` counts as having learnt its task: `deciding_greedy` >=
    min_greedy (min_greedy <= 0 accepts any)."""
    return min_greedy <= 0 or deciding_greedy(record) >= min_greedy


def is_learnt(directory: Path, min_greedy: float) -> bool:
    """True when `directory` holds a finished base model that has learnt its task."""
    return is_saved(directory) and passes(read_record(directory), min_greedy)


def require_learnt(directory: Path, min_greedy: float) -> dict[str, Any]:
    """The base model's record; BaseModelError (one line: what happened, what to do) unless
    it has learnt its task (`deciding_greedy` >= min_greedy; min_greedy 0 accepts any)."""
    record = read_record(directory)
    if passes(record, min_greedy):
        return record
    greedy = deciding_greedy(record)
    pretrain = record["config"]["pretrain"]
    whose = "its parent base model's" if record.get("parent_validation") else "held-out"
    raise BaseModelError(
        f"the base model {directory} has not learnt task {record['config']['task']['name']} "
        f"({whose} greedy accuracy {greedy:.3f} < pretrain.min_greedy {min_greedy} after "
        f"{record['steps']} steps), so RL from it would not show the phenomenon; make another "
        f"with pretrain.seed={pretrain['seed'] + 1} or a higher pretrain.max_steps "
        f"(pretrain.min_greedy=0 makes one that is used unchecked)"
    )


def max_positions(task: Task) -> int:
    """Sequence length the model must support: bos + prompt + response + eos + slack."""
    return 1 + task.max_prompt_tokens + task.max_response_tokens + 1 + POSITION_SLACK


def char_table(tokenizer: PreTrainedTokenizerFast, alphabet: str) -> np.ndarray:
    """Lookup from a character code (< 128) to its token id; the pad character maps to pad."""
    if any(ord(c) >= 128 for c in alphabet):
        raise ValueError(f"fast batch encoding needs an ASCII alphabet, got {alphabet!r}")
    table = np.full(128, -1, dtype=np.int64)  # (128,)
    table[ord(_PAD_CHAR)] = tokenizer.pad_token_id
    for c in alphabet:
        table[ord(c)] = tokenizer.convert_tokens_to_ids(c)
    return table


def encode_batch(
    table: np.ndarray, tokenizer: PreTrainedTokenizerFast, prompts: list[str], responses: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`<bos> prompt response <eos>`, right-padded, and the mask of the loss targets.

    Returns input ids (B, L) and a target mask (B, L-1) that is 1 where the next token is a
    response token or eos. Right padding is safe without an attention mask: causal attention
    never lets a position see the padding after it.
    """
    texts = [p + r for p, r in zip(prompts, responses, strict=True)]
    lengths = np.array([len(t) for t in texts])  # (B,)
    prompt_lengths = np.array([len(p) for p in prompts])  # (B,)
    width = int(lengths.max())
    raw = "".join(t.ljust(width, _PAD_CHAR) for t in texts).encode("ascii")
    chars = table[np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), width)]  # (B, W)
    if (chars < 0).any():
        raise ValueError("a demonstration contains a character outside the task alphabet")
    ids = np.full((len(texts), width + 2), tokenizer.pad_token_id, dtype=np.int64)  # (B, L)
    ids[:, 0] = tokenizer.bos_token_id
    ids[:, 1 : width + 1] = chars
    ids[np.arange(len(texts)), lengths + 1] = tokenizer.eos_token_id
    target_pos = np.arange(width + 1)[None, :]  # (1, L-1): target j is token j + 1
    mask = (target_pos >= prompt_lengths[:, None]) & (target_pos <= lengths[:, None])  # (B, L-1)
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.float32))


def response_loss(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean cross entropy of the masked next-token targets."""
    logits = model(input_ids=ids[:, :-1], use_cache=False).logits  # (B, L-1, V)
    nll = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
    return (nll * mask.flatten()).sum() / mask.sum()


def demonstration_batch(
    task: Task, n: int, rng: np.random.Generator, noise: float
) -> tuple[list[str], list[str]]:
    """`n` training prompts and their noisy demonstrations."""
    problems: list[Problem] = task.sample_problems(n, rng)
    return [p.prompt for p in problems], [task.demonstration(p, rng, noise) for p in problems]


def lr_factor(step: int, warmup: int, cooldown_start: int, cooldown: int) -> float:
    """Learning-rate factor of step `step` (from 0): a linear warm-up over `warmup` steps, a
    hold at 1 until `cooldown_start`, then a cosine decay to 0 over `cooldown` steps."""
    if step < warmup:
        return (step + 1) / warmup
    if step < cooldown_start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step - cooldown_start, cooldown) / cooldown))


def held_out_greedy(model: torch.nn.Module, tokenizer, task: Task) -> float:
    """Greedy accuracy on the task's validation prompts (the model is left in eval mode)."""
    model.eval()
    problems = task.validation_problems()
    policy = Policy(model, tokenizer)
    scores, _ = accuracy(policy, local_worker(policy, task), problems, None, True, REWARD_TIMEOUT_S)
    return float(scores.mean())


def _optimizer(model: torch.nn.Module, settings: PretrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        model.parameters(),
        lr=settings.lr,
        betas=(0.9, settings.adam_beta2),
        weight_decay=settings.weight_decay,
    )


def _train(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    task: Task,
    settings: PretrainConfig,
    rng: np.random.Generator,
    progress: ProgressFn | None,
) -> tuple[list[float], list[dict[str, float]], int]:
    """The supervised loop: warm up, hold the learning rate until a held-out check reaches
    `cooldown_at` greedy accuracy (or `max_steps - cooldown_steps` steps have run), then cool
    down over `cooldown_steps`. Returns the loss of every step, the held-out checks ({step,
    loss, val/acc_greedy} every `check_every` steps and at the end) and the step the cool-down
    started at."""
    table = char_table(tokenizer, task.alphabet)
    optimizer = _optimizer(model, settings)
    cooldown = settings.cooldown_steps
    cooldown_start = settings.max_steps - cooldown
    losses, checks = [], []
    while len(losses) < cooldown_start + cooldown:
        factor = lr_factor(len(losses), settings.warmup_steps, cooldown_start, cooldown)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * factor
        model.train()
        prompts, responses = demonstration_batch(task, settings.batch_size, rng, settings.noise)
        ids, mask = encode_batch(table, tokenizer, prompts, responses)  # (B, L), (B, L-1)
        loss = response_loss(model, ids, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        step, greedy = len(losses), None
        if step % settings.check_every == 0 or step == cooldown_start + cooldown:
            greedy = held_out_greedy(model, tokenizer, task)
            window = losses[-settings.check_every :]
            checks.append({"step": step, "loss": sum(window) / len(window), VAL_ACC_GREEDY: greedy})
            if step < cooldown_start and greedy >= settings.cooldown_at:
                cooldown_start = step
        if progress is not None:
            progress(step, cooldown_start + cooldown, losses[-1], greedy)
    model.eval()
    return losses, checks, cooldown_start


FINETUNE_FIELDS = ("finetune_steps", "finetune_lr")
"""Pretrain fields of the fine-tune only: a parent base model, trained from scratch, has them
at their defaults (they are in its key all the same)."""


def parent_config(config: Config, base_task: str) -> Config:
    """The config of the base model that `config`'s base model is fine-tuned from: the same
    with task.name = `base_task` (the task's `Task.base_task`), and at their defaults the
    parent's inert fields (`EmbeddedTask.inert_fields`: sum3's trap_rate) and the fine-tune's
    `FINETUNE_FIELDS`, which do not shape it: every fine-tune shares one parent."""
    task = dataclasses.replace(config.task, name=base_task)
    task_defaults, pretrain_defaults = TaskConfig(), PretrainConfig()
    inert = {name: getattr(task_defaults, name) for name in inert_fields(task)}
    finetune = {name: getattr(pretrain_defaults, name) for name in FINETUNE_FIELDS}
    return dataclasses.replace(
        config,
        task=dataclasses.replace(task, **inert),
        pretrain=dataclasses.replace(config.pretrain, **finetune),
    )


def _start(
    config: Config, task: Task, progress
) -> tuple[torch.nn.Module, Any, PretrainConfig, np.random.Generator, str | None]:
    """The model to train, its tokenizer, the loop settings and demonstration stream, and the
    parent base model's directory (None when training from scratch)."""
    settings = config.pretrain
    if task.base_task is None:
        tokenizer = build_tokenizer(task.alphabet)
        model = build_model(config.model, len(tokenizer), max_positions(task), settings.seed)
        return model, tokenizer, settings, np.random.default_rng(settings.seed), None
    parent = pretrain(parent_config(config, task.base_task), progress)
    model, tokenizer = load_pretrained(parent)
    finetune = dataclasses.replace(  # a warm-up, then the cool-down: no hold
        settings,
        max_steps=settings.finetune_steps,
        cooldown_steps=max(settings.finetune_steps - settings.warmup_steps, 1),
        lr=settings.finetune_lr,
    )
    return model, tokenizer, finetune, np.random.default_rng([settings.seed, 1]), str(parent)


@torch.no_grad()
def base_model_metrics(model: torch.nn.Module, tokenizer, task: Task) -> dict[str, float]:
    """Validation metrics of a base model: `val/acc` (mean of 4 samples per prompt at
    temperature 1), `val/pass_at_k`, `val/acc_greedy`, and `entropy/mean`, the mean token
    entropy of sampled responses (eos included), as RL's step 0 measures them."""
    policy = Policy(model.eval(), tokenizer)
    worker = local_worker(policy, task)
    problems = task.validation_problems()
    generator = torch.Generator().manual_seed(0)
    metrics = evaluate(
        policy, worker, problems, EvalConfig(samples=4), generator, REWARD_TIMEOUT_S, Dist()
    )
    metrics.pop("faults/val_reward_errors")
    rollout, _ = worker.sample(policy, problems, torch.Generator().manual_seed(1))
    entropy = token_entropy(response_logits(model, rollout))  # (B, T)
    metrics[ENTROPY_MEAN] = float(masked_mean(entropy, rollout.response_mask.float()))
    return metrics


def pretrain(config: Config, progress: ProgressFn | None = None) -> Path:
    """Make (or reuse) the base model for `config` and return its directory.

    `progress` (see `ProgressFn`) is called after each optimizer step; it is not called when
    the cached model is reused. The global torch RNG is left unchanged. The model is saved
    whether or not it learnt its task (pretrain.json says which; see `require_learnt`).
    """
    directory = base_model_dir(config)
    if is_saved(directory):
        return directory
    with locked(base_model_lock(directory), f"base model {directory}"):
        if is_saved(directory):  # made by the process that held the lock
            return directory
        return _make(config, directory, progress)


def _make(config: Config, directory: Path, progress: ProgressFn | None) -> Path:
    """Pretrain the base model of `config` and save it to `directory`."""
    task = make_task(config.task)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        model, tokenizer, settings, rng, parent = _start(config, task, progress)
        losses, checks, cooldown_start = _train(model, tokenizer, task, settings, rng, progress)
        metrics = base_model_metrics(model, tokenizer, task)
    wall = time.perf_counter() - start
    parent_metrics = None if parent is None else read_record(Path(parent))["validation"]
    record = {
        "recipe": RECIPE_VERSION,
        "config": {
            "model": dataclasses.asdict(config.model),
            "task": dataclasses.asdict(config.task),
            "pretrain": dataclasses.asdict(config.pretrain),
        },
        "fine_tuned_from": parent,
        "validation": metrics,
        "parent_validation": parent_metrics,
        "learnt": passes(
            {"validation": metrics, "parent_validation": parent_metrics},
            config.pretrain.min_greedy,
        ),
        "checks": checks,
        "steps": len(losses),
        "cooldown_start": cooldown_start,
        "final_loss": losses[-1],
        "losses": losses,
        "wall_time_s": wall,
        "s_per_step": wall / len(losses),
        "num_parameters": count_parameters(model),
        "torch_threads": torch.get_num_threads(),
    }
    extra = {PRETRAIN_FILE: json.dumps(record, indent=2) + "\n"}
    return save_pretrained_atomic(model, tokenizer, directory, extra_files=extra)


# ---- what the commands call ---------------------------------------------------------------

CHECK_LINE = "pretrain step {step}/{total}  loss {loss:.3f}  held-out greedy {greedy:.3f}"
"""Printed at every held-out check."""


def write_check(path: Path, step: int, total: int, loss: float, greedy: float) -> None:
    """The latest held-out check, {step, total, loss, val/acc_greedy}, as JSON in `path`
    (`entropy-rl pretrain --progress FILE`), replaced atomically at each check."""
    record = {"step": step, "total": total, "loss": loss, VAL_ACC_GREEDY: greedy}
    write_atomic(path, json.dumps(record) + "\n")


def read_check(path: Path) -> tuple[int, int]:
    """(step, total) of the latest held-out check `write_check` wrote to `path`; (0, 0)
    before the first (no file yet)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0, 0
    return int(record["step"]), int(record["total"])


@contextlib.contextmanager
def progress_display(console: Console, progress_file: Path | None = None) -> Iterator[ProgressFn]:
    """A progress bar (step, loss) and one printed line per held-out check, so that a log
    written by a console that is not a terminal shows the progress too; with `progress_file`,
    each check also as JSON there (`write_check`)."""
    columns = (
        TextColumn("[bold]pretrain"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("pretrain", total=None, status="")

        def report(step: int, total: int, loss: float, greedy: float | None) -> None:
            bar.update(task, completed=step, total=total, status=f"loss {loss:.3f}")
            if greedy is not None:
                console.print(CHECK_LINE.format(step=step, total=total, loss=loss, greedy=greedy))
                if progress_file is not None:
                    write_check(progress_file, step, total, loss, greedy)

        yield report


def make_base_model(
    config: Config,
    console: Console,
    result: Console | None = None,
    progress_file: Path | None = None,
) -> Path:
    """Make (or find) the base model for `config`, showing progress on `console` (and each
    held-out check in `progress_file`: `write_check`), and print its validation metrics on
    `result` (default: `console`); returns its directory. Does not check that it learnt its
    task."""
    target = base_model_dir(check(config))
    if is_saved(target):
        console.print(f"base model: {target} (cached)")
    else:
        console.print(f"making the base model {target.name} ...")
        with progress_display(console, progress_file) as report:
            pretrain(config, report)
    record = read_record(target)
    metrics = "  ".join(f"{k} {v:.3f}" for k, v in record["validation"].items())
    min_greedy = config.pretrain.min_greedy
    if min_greedy <= 0:
        verdict = "not checked: pretrain.min_greedy=0"
    elif passes(record, min_greedy):
        verdict = "learnt"
    else:
        verdict = "[red]NOT learnt[/]"
    (result or console).print(
        f"base model: {target} ({record['steps']} steps, {record['wall_time_s']:.0f} s, "
        f"{verdict}): {metrics}"
    )
    return target
