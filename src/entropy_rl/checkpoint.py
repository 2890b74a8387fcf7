"""Atomic checkpoints and atomic file writes.

A checkpoint is a directory `checkpoint/` in the run directory holding the model (with
`save_pretrained`, safetensors) and `trainer_state.pt` (optimizer, RNG states, step,
counters). It is written as `checkpoint.tmp/` and swapped in by renames, so a crash at any
moment leaves a complete checkpoint (`checkpoint/`, or `checkpoint.old/` mid-swap).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    run_dir: Path, model, tokenizer, state: dict[str, Any], state_dict: dict | None = None
) -> Path:
    """Write model, tokenizer and trainer state; returns the checkpoint directory.

    `state_dict`: the model's full weights when `model` holds only a shard of them (FSDP).
    """
    final, tmp, old = (run_dir / f"{CHECKPOINT}{s}" for s in ("", ".tmp", ".old"))
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model", state_dict=state_dict)
    tokenizer.save_pretrained(tmp / "model")
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of a run directory, if any (survives a crash mid-swap)."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        candidate = run_dir / name
        if (candidate / STATE_FILE).exists() and (candidate / "model").is_dir():
            return candidate
    return None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=False)
