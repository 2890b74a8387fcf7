"""The base model RL starts from: supervised training on noisy demonstrations.

1. Each demonstration is a correct response whose digits are each replaced by a random digit
   with probability `pretrain.noise`, so the base model is uncertain (high entropy) and its
   sampled accuracy moderate, leaving room for RL.
2. The sequence is `<bos> prompt response <eos>`; the loss is the token-mean cross entropy on
   the response tokens and eos only, never on the prompt.
3. The result is cached: one directory per (model, task, pretrain) config, reused when present.
4. A task with a `base_task` (sum3_trap) starts from that task's base model (made first when
   missing, and cached as usual) and trains `pretrain.finetune_steps` steps at
   `pretrain.finetune_lr` on its own demonstrations: a base model fine-tuned on data with a
   systematic error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast

from entropy_rl.config import Config, PretrainConfig
from entropy_rl.models import (
    build_model,
    build_tokenizer,
    count_parameters,
    load_pretrained,
    save_pretrained_atomic,
)
from entropy_rl.tasks import Problem, Task, make_task

PRETRAIN_MODEL_FIELDS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "init_std",
    "dtype",
)
PRETRAIN_TASK_FIELDS = ("name", "seed", "val_size", "trap_rate")
"""The model and task fields that shape the base model (the cache key covers only these)."""
RECIPE_VERSION = 2
"""Part of the cache key: bump it when a change here would make a different base model."""
POSITION_SLACK = 8
"""Positions the model supports beyond bos + longest prompt + response + eos."""
_PAD_CHAR = "\0"


def config_fingerprint(config: Config) -> str:
    """10 hex characters identifying the model, task and pretrain settings (not cache_dir)
    and the recipe version."""
    pretrain = dataclasses.asdict(config.pretrain)
    pretrain.pop("cache_dir")
    payload = {
        "recipe": RECIPE_VERSION,
        "model": {name: getattr(config.model, name) for name in PRETRAIN_MODEL_FIELDS},
        "task": {name: getattr(config.task, name) for name in PRETRAIN_TASK_FIELDS},
        "pretrain": pretrain,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


def base_model_dir(config: Config) -> Path:
    """Where the base model for `config` is (or will be) saved."""
    return Path(config.pretrain.cache_dir) / f"{config.task.name}-{config_fingerprint(config)}"


def is_saved(directory: Path) -> bool:
    """True when `directory` holds a finished base model (pretrain.json is written last)."""
    return (directory / "pretrain.json").is_file()


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


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup` steps, then a cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def _train(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    task: Task,
    settings: PretrainConfig,
    rng: np.random.Generator,
    progress: Callable[[int, float], None] | None,
) -> list[float]:
    """The supervised loop over `settings.steps` steps; returns the loss of every step."""
    table = char_table(tokenizer, task.alphabet)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, settings.warmup_steps, settings.steps)
    )
    model.train()
    losses = []
    for step in range(1, settings.steps + 1):
        prompts, responses = demonstration_batch(task, settings.batch_size, rng, settings.noise)
        ids, mask = encode_batch(table, tokenizer, prompts, responses)  # (B, L), (B, L-1)
        loss = response_loss(model, ids, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    return losses


def parent_config(config: Config, base_task: str) -> Config:
    """The config of the base model that `config`'s base model is fine-tuned from: the same
    with task.name = `base_task` (the task's `Task.base_task`)."""
    return dataclasses.replace(config, task=dataclasses.replace(config.task, name=base_task))


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
    finetune = dataclasses.replace(settings, steps=settings.finetune_steps, lr=settings.finetune_lr)
    return model, tokenizer, finetune, np.random.default_rng([settings.seed, 1]), str(parent)


def pretrain(config: Config, progress: Callable[[int, float], None] | None = None) -> Path:
    """Make (or reuse) the base model for `config` and return its directory.

    `progress(step, loss)` is called after each optimizer step (step counts from 1); it is
    not called when the cached model is reused. The global torch RNG is left unchanged.
    """
    directory = base_model_dir(config)
    if is_saved(directory):
        return directory
    task = make_task(config.task)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        model, tokenizer, settings, rng, parent = _start(config, task, progress)
        losses = _train(model, tokenizer, task, settings, rng, progress)
    wall = time.perf_counter() - start
    record = {
        "recipe": RECIPE_VERSION,
        "config": {
            "model": dataclasses.asdict(config.model),
            "task": dataclasses.asdict(config.task),
            "pretrain": dataclasses.asdict(config.pretrain),
        },
        "fine_tuned_from": parent,
        "final_loss": losses[-1],
        "losses": losses,
        "wall_time_s": wall,
        "s_per_step": wall / len(losses),
        "num_parameters": count_parameters(model),
    }
    extra = {"pretrain.json": json.dumps(record, indent=2) + "\n"}
    return save_pretrained_atomic(model, tokenizer, directory, extra_files=extra)
