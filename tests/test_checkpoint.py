"""Checkpoints: a manifest of checksums written last, the newest few kept, nothing trusted
blindly, nothing unpickled but plain data, and a full disk reported as one."""

import errno
import json
import os

import pytest
import torch

from entropy_rl.config import ModelConfig
from entropy_rl.runs import checkpoint
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.checkpoint import (
    Checkpoint,
    CheckpointError,
    find_checkpoint,
    list_checkpoints,
    load_verified,
    save_checkpoint,
)
from entropy_rl.training.models import build_model, build_tokenizer

MARKER = "pwned"


@pytest.fixture(scope="module")
def policy():
    tokenizer = build_tokenizer("0123456789+=")
    shape = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    return build_model(shape, len(tokenizer), max_positions=32, seed=0), tokenizer


def _state(step):
    return {"optimizer": {"state": {}, "param_groups": []}, "run_state": {"step": step}}


def _save(run_dir, policy, step, keep=2):
    return save_checkpoint(run_dir, step, *policy, _state(step), "train: {}\n", keep)


def _rewrite_manifest(directory, name):
    """Forge the manifest entry of `name` to match its present bytes (as an attacker could)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    data = (directory / name).read_bytes()
    import hashlib

    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_save_writes_a_manifest_of_every_file_and_keeps_the_newest(tmp_path, policy):
    for step in (2, 4, 6):
        _save(tmp_path, policy, step)
    assert [c.path.name for c in list_checkpoints(tmp_path)] == [
        "checkpoint-000006",
        "checkpoint-000004",
    ]
    newest = tmp_path / "checkpoint-000006"
    manifest = json.loads((newest / "manifest.json").read_text())
    on_disk = {p.relative_to(newest).as_posix() for p in newest.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert manifest["step"] == 6 and set(manifest["files"]) == on_disk
    assert "model/model.safetensors" in on_disk and "trainer_state.pt" in on_disk
    assert load_verified(list_checkpoints(tmp_path)[0])["run_state"]["step"] == 6
    _save(tmp_path, policy, 5)  # a resume went back to step 4: the future is dropped
    assert [c.step for c in list_checkpoints(tmp_path)] == [5, 4]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_flipped_byte_fails_verification_and_the_older_checkpoint_is_found(tmp_path, policy):
    _save(tmp_path, policy, 2)
    newest = _save(tmp_path, policy, 4)
    weights = newest / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-50] ^= 0x01  # tensor data, not the header: safetensors itself would not notice
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{weights}: checksum mismatch"):
        load_verified(list_checkpoints(tmp_path)[0])
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint-000002"


def test_a_truncated_state_or_a_missing_file_names_the_file(tmp_path, policy):
    newest = _save(tmp_path, policy, 4)
    state = newest / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{state}: 100 bytes, the manifest says"):
        load_verified(list_checkpoints(tmp_path)[0])
    _rewrite_manifest(newest, "trainer_state.pt")
    with pytest.raises(CheckpointError, match=rf"{state}: unreadable"):
        load_verified(list_checkpoints(tmp_path)[0])
    (newest / "model" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: No such file"):
        load_verified(list_checkpoints(tmp_path)[0])


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_state_that_would_run_code_is_refused_without_running_it(tmp_path, policy):
    newest = _save(tmp_path, policy, 4)
    state = newest / "trainer_state.pt"
    marker = tmp_path / MARKER
    torch.save({**_state(4), "extra": _Payload(marker)}, state)
    _rewrite_manifest(newest, "trainer_state.pt")  # checksums alone do not make it safe
    with pytest.raises(CheckpointError, match=r"holds more than plain data, refused"):
        load_verified(list_checkpoints(tmp_path)[0])
    assert not marker.exists()


def test_a_finished_temporary_checkpoint_is_used_and_an_unfinished_one_ignored(tmp_path, policy):
    done = _save(tmp_path, policy, 4)
    done.rename(tmp_path / ".checkpoint-000004.0123abcd.tmp")  # killed before the rename
    unfinished = tmp_path / ".checkpoint-000006.89abcdef.tmp"
    (unfinished / "model").mkdir(parents=True)  # killed while writing: no manifest
    found = list_checkpoints(tmp_path)
    assert [c.path.name for c in found] == [".checkpoint-000004.0123abcd.tmp"]
    assert load_verified(found[0])["run_state"]["step"] == 4
    _save(tmp_path, policy, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000006"]


def test_an_older_versions_checkpoint_is_read_safely(tmp_path, policy):
    legacy = tmp_path / "checkpoint"
    policy[0].save_pretrained(legacy / "model")
    policy[1].save_pretrained(legacy / "model")
    torch.save(_state(8), legacy / "trainer_state.pt")
    (found,) = list_checkpoints(tmp_path)
    assert found == Checkpoint(legacy, None) and found.legacy
    assert load_verified(found)["run_state"]["step"] == 8
    _save(tmp_path, policy, 10)
    assert not legacy.exists()


def test_a_full_disk_is_an_os_error_naming_the_path_and_keeps_the_last_checkpoint(
    tmp_path, policy, monkeypatch
):
    from safetensors import SafetensorError

    good = _save(tmp_path, policy, 2)

    def full(*args, **kwargs):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", full)
    with pytest.raises(OSError) as caught:
        _save(tmp_path, policy, 4)
    assert caught.value.errno == errno.ENOSPC
    assert ".checkpoint-000004." in caught.value.filename
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]
    assert load_verified(list_checkpoints(tmp_path)[0])["run_state"]["step"] == 2


def test_a_failed_cleanup_never_masks_the_error(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", args[0])

    monkeypatch.setattr("entropy_rl.runs.atomic.os.replace", read_only)
    monkeypatch.setattr("pathlib.Path.unlink", read_only)
    with pytest.raises(OSError) as caught:
        write_atomic(tmp_path / "summary.json", "{}")
    assert caught.value.errno == errno.EROFS
    assert caught.value.filename == str(tmp_path / "summary.json")


def test_the_trainer_state_round_trips_with_weights_only(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    state = {"run_state": {"prompt_rng": rng.bit_generator.state}, "optimizer": {}}
    checkpoint.write_state(tmp_path / "s.pt", state)
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)
    assert loaded["run_state"]["prompt_rng"] == rng.bit_generator.state


def test_a_full_disk_under_torch_save_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    """torch's zip writer turns the failed write into "unexpected pos": the sink keeps it."""

    real_open = open

    class Full:
        """A file on a disk that fills after 1000 bytes."""

        def __init__(self, *args):
            self.fh, self.size = real_open(*args), 0

        def write(self, data):
            self.size += len(data)
            if self.size > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(checkpoint, "open", Full, raising=False)
    with pytest.raises(OSError) as caught:
        checkpoint.write_state(tmp_path / "s.pt", {"x": torch.ones(100_000)})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "s.pt")
