"""Checkpoints that are verified before they are trusted, kept a few deep, and loaded
without unpickling code.

A checkpoint is a directory `checkpoint-<step>/` of the run directory (`step` zero-padded
to 6 digits: the metrics rows written before it, the row the run goes on with):

    model/            the policy: `save_pretrained` (safetensors) and its tokenizer; with
                      LoRA (model.lora_rank > 0) the adapter only, in PEFT's format
                      (adapter_config.json, adapter_model.safetensors), and the tokenizer
    trainer_state.pt  optimizer, RNG states, step, counters: tensors and plain containers,
                      read with `torch.load(weights_only=True)`, which builds nothing else
    config.yaml       the config it was trained with (a resume compares the run's with it)
    manifest.json     written last: the step, and the size and sha256 of every other file

It is written under a name of its own, `.checkpoint-<step>.<random>.tmp/`, and renamed into
place, so a crash at any moment leaves every earlier checkpoint whole; one left complete
under its temporary name (a crash between its manifest and the rename) is used too. After
each save the newest `train.keep_checkpoints` are kept (and none past the step saved: they
belong to a future a resume has discarded).

`load_verified` checks a checkpoint against its manifest, parses its safetensors headers
and reads its trainer state safely; a resume uses the newest that passes. Run directories of
older versions hold `checkpoint/` (or `checkpoint.old/` mid-swap) without a manifest: they
are read after the same safe loading, with their files unchecked (`Checkpoint.legacy`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from entropy_rl.errors import RunError, os_errors_of
from entropy_rl.runs.layout import (
    ADAPTER_CONFIG_FILE,
    CHECKPOINT_MANIFEST_FILE,
    CHECKPOINT_MODEL_DIR,
    CHECKPOINT_PREFIX,
    CHECKPOINT_STATE_FILE,
    CONFIG_FILE,
    checkpoint_dir,
)

TMP_SUFFIX = ".tmp"
LEGACY_NAMES = ("checkpoint", "checkpoint.old")
"""An older version's single checkpoint, and its copy kept during a swap."""
MANIFEST_FORMAT = 1
_FINAL = re.compile(rf"{CHECKPOINT_PREFIX}(\d+)")
_TEMPORARY = re.compile(rf"\.{CHECKPOINT_PREFIX}(\d+)\.[0-9a-f]+{re.escape(TMP_SUFFIX)}")


class CheckpointError(RunError):
    """A checkpoint that does not verify; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory, not yet verified. `step` is None for an older version's,
    whose step is in its trainer state only."""

    path: Path
    step: int | None

    @property
    def legacy(self) -> bool:
        """Written by an older version: no manifest, no config.yaml."""
        return self.step is None

    @property
    def model_dir(self) -> Path:
        return self.path / CHECKPOINT_MODEL_DIR


# ---- writing ----------------------------------------------------------------------------


class _Sink:
    """The file `torch.save` writes through, keeping the OSError of a failed write, which
    torch's zip writer reports as a RuntimeError without errno ("unexpected pos ...")."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.fh.flush()


def write_state(path: Path, state: dict[str, Any]) -> None:
    """`torch.save` the trainer state to a new file and flush it to disk, streamed (an
    optimizer state can be as large as the model several times); an OSError names `path`."""
    with os_errors_of(path), open(path, "xb") as fh:
        sink = _Sink(fh)
        try:
            torch.save(state, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None
        fh.flush()
        os.fsync(fh.fileno())


def write_file(path: Path, data: bytes) -> None:
    """Write a new file and flush it to disk; an OSError names `path`."""
    with os_errors_of(path), open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _sha256(path: Path) -> str:
    """The file's sha256; it is flushed to disk on the way (a manifest vouches for it)."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.fsync(fh.fileno())
    return digest


def _manifest(directory: Path, step: int) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return {"format": MANIFEST_FORMAT, "step": step, "files": files}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an existing `final` (a step a resume went back before) is
    moved aside first and removed after."""
    aside = None
    if final.exists():
        aside = final.with_name(f".{final.name}.{secrets.token_hex(4)}.old{TMP_SUFFIX}")
        os.replace(final, aside)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model,
    tokenizer,
    state: dict[str, Any],
    config_text: str,
    keep: int,
    state_dict: dict | None = None,
) -> Path:
    """Write checkpoint `step` (model, tokenizer, trainer `state`, the config, then the
    manifest), keep the newest `keep`, and return its directory.

    `state_dict`: the model's full weights when `model` holds only a shard of them (FSDP).
    On any failure the partial directory is removed (quietly: the original error is the one
    raised) and the earlier checkpoints are left as they were.
    """
    final = checkpoint_dir(run_dir, step)
    tmp = run_dir / f".{final.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        with os_errors_of(tmp / CHECKPOINT_MODEL_DIR):
            model.save_pretrained(tmp / CHECKPOINT_MODEL_DIR, state_dict=state_dict)
            tokenizer.save_pretrained(tmp / CHECKPOINT_MODEL_DIR)
        write_state(tmp / CHECKPOINT_STATE_FILE, state)
        write_file(tmp / CONFIG_FILE, config_text.encode())
        manifest = json.dumps(_manifest(tmp, step), indent=1) + "\n"
        write_file(tmp / CHECKPOINT_MANIFEST_FILE, manifest.encode())
        _rename_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(run_dir, step, keep)
    return final


def _prune(run_dir: Path, step: int, keep: int) -> None:
    """Remove what a save of `step` makes obsolete: checkpoints past `step`, all but the
    newest `keep`, temporary directories (dead processes'; the lock rules out live ones) and
    an older version's checkpoint."""
    finals = [c for c in list_checkpoints(run_dir) if _FINAL.fullmatch(c.path.name)]
    kept = [c for c in finals if c.step <= step][:keep]
    doomed = [c.path for c in finals if c not in kept]
    doomed += [
        *run_dir.glob(f".{CHECKPOINT_PREFIX}*{TMP_SUFFIX}"),
        *(run_dir / n for n in LEGACY_NAMES),
    ]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)


# ---- finding and verifying -----------------------------------------------------------------


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Every checkpoint of a run directory, newest first, unverified: finished ones (before
    a temporary one of the same step), temporary ones that got as far as their manifest,
    then an older version's."""
    found = []
    if not run_dir.is_dir():
        return found
    for path in run_dir.iterdir():
        match = _FINAL.fullmatch(path.name) or _TEMPORARY.fullmatch(path.name)
        if match and (match.re is _FINAL or (path / CHECKPOINT_MANIFEST_FILE).is_file()):
            found.append((int(match.group(1)), match.re is _FINAL, path))
    found.sort(key=lambda item: (item[0], item[1], item[2].name), reverse=True)
    checkpoints = [Checkpoint(path, step) for step, _, path in found]
    legacy = [run_dir / name for name in LEGACY_NAMES]
    return checkpoints + [
        Checkpoint(p, None) for p in legacy if (p / CHECKPOINT_STATE_FILE).is_file()
    ]


def load_verified(checkpoint: Checkpoint) -> dict[str, Any]:
    """The trainer state of a checkpoint whose files all match its manifest, whose weights
    have readable safetensors headers and whose state holds plain data only; else
    CheckpointError naming the first file that fails."""
    if not checkpoint.legacy:
        _check_manifest(checkpoint)
    _check_weights(checkpoint.model_dir)
    state = read_state(checkpoint)
    saved_step = state["run_state"].get("step")
    if not checkpoint.legacy and saved_step != checkpoint.step:
        raise CheckpointError(
            f"{checkpoint.path / CHECKPOINT_STATE_FILE}: holds step {saved_step}, its directory says "
            f"{checkpoint.step}"
        )
    return state


def _problem(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}")


def _read_manifest(checkpoint: Checkpoint) -> dict[str, Any]:
    path = checkpoint.path / CHECKPOINT_MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise _problem(path, "missing (the checkpoint was never finished)") from None
    except (OSError, ValueError) as err:
        raise _problem(path, f"unreadable ({err})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("step") != checkpoint.step:
        raise _problem(path, f"not a manifest of step {checkpoint.step}")
    return files


def _check_manifest(checkpoint: Checkpoint) -> None:
    files = _read_manifest(checkpoint)
    model = [f"{CHECKPOINT_MODEL_DIR}/{name}" for name in ("config.json", ADAPTER_CONFIG_FILE)]
    for required in (CHECKPOINT_STATE_FILE, CONFIG_FILE):
        if required not in files:
            raise _problem(checkpoint.path / CHECKPOINT_MANIFEST_FILE, f"lists no {required}")
    if not any(name in files for name in model):
        raise _problem(checkpoint.path / CHECKPOINT_MANIFEST_FILE, f"lists no {model[0]}")
    for name, entry in files.items():
        _check_file(checkpoint.path, name, entry)


def _check_file(root: Path, name: str, entry: Any) -> None:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise _problem(
            root / CHECKPOINT_MANIFEST_FILE, f"names a file outside the checkpoint: {name}"
        )
    path = root / relative
    if not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
        raise _problem(root / CHECKPOINT_MANIFEST_FILE, f"bad entry for {name}")
    try:
        size = path.stat().st_size
        if size != entry["size"]:
            raise _problem(path, f"{size} bytes, the manifest says {entry['size']}")
        if _sha256(path) != entry.get("sha256"):
            raise _problem(path, "checksum mismatch (the file changed after it was written)")
    except OSError as err:
        raise _problem(path, err.strerror or str(err)) from None


def _check_weights(model_dir: Path) -> None:
    """Every safetensors file of the model has a readable header (there is at least one)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise _problem(model_dir, "no *.safetensors weights")
    for path in files:
        try:
            with safe_open(path, "pt"):
                pass
        except Exception as err:  # safetensors raises its own error types
            raise _problem(path, f"not a readable safetensors file ({_first_line(err)})") from None


def read_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The trainer state, unpickled with `weights_only=True`: tensors and plain containers
    only, so a file crafted to run code when unpickled is refused; CheckpointError if it
    cannot be read so or is not a trainer state."""
    path = checkpoint.path / CHECKPOINT_STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _problem(path, f"holds more than plain data, refused ({_why(err)})") from None
    except Exception as err:  # truncated or garbled: torch and pickle raise many types
        raise _problem(path, f"unreadable ({_first_line(err)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("run_state"), dict):
        raise _problem(path, "not a trainer state")
    if "optimizer" not in state:
        raise _problem(path, "not a trainer state")
    return state


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _why(err: pickle.UnpicklingError) -> str:
    """The refused global from torch's long weights_only message."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return f"it asks for {found.group(1)}" if found else _first_line(err)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint of a run directory that verifies, or None."""
    for checkpoint in list_checkpoints(run_dir):
        try:
            load_verified(checkpoint)
        except CheckpointError:
            continue
        return checkpoint.path
    return None
