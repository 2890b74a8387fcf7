"""Where a base model is cached: `<pretrain.cache_dir>/<task>-<key>/`, and its cache key.

The key hashes what shapes a base model: the recipe version, the model fields below, the
fields the task declares (`EmbeddedTask.base_model_fields`, with its name; those unset,
None, left out) and the pretrain fields but `PRETRAIN_UNKEYED_FIELDS` (and
`PRETRAIN_KEYED_AT_DEFAULT` at its default, whatever is set). No torch: the report finds a run's base model (its
pretrain.json) without the training stack. Making a base model is `entropy_rl.training.pretrain`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from entropy_rl.config import Config, PretrainConfig
from entropy_rl.runs.layout import base_model_name
from entropy_rl.tasks import base_model_fields

PRETRAIN_MODEL_FIELDS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "init_std",
    "dtype",
)
"""The model fields that shape the base model."""
PRETRAIN_UNKEYED_FIELDS = ("cache_dir",)
"""Pretrain fields left out of the cache key: every other one shapes the base model (the
check interval too, as a check starts the cool-down)."""
PRETRAIN_KEYED_AT_DEFAULT = ("min_greedy",)
"""Pretrain fields that do not shape the base model either, keyed at their default value
whatever the config sets, so the keys of base models made when they were keyed stay valid.
`min_greedy` only judges a base model (`pretrain.passes`, under each run's own threshold)."""
RECIPE_VERSION = 6
"""Part of the cache key: bump it when a change to `entropy_rl.training.pretrain` would make a
different base model."""


def config_fingerprint(config: Config) -> str:
    """10 hex characters identifying the model, task and pretrain settings that shape the base
    model (not `PRETRAIN_UNKEYED_FIELDS` nor `PRETRAIN_KEYED_AT_DEFAULT`) and the recipe version. ConfigError for a task without an
    embedded base model."""
    pretrain = dataclasses.asdict(config.pretrain)
    for name in PRETRAIN_UNKEYED_FIELDS:
        pretrain.pop(name)
    for name in PRETRAIN_KEYED_AT_DEFAULT:
        pretrain[name] = getattr(PretrainConfig, name)
    task_fields = ("name", *base_model_fields(config.task))
    task = {name: getattr(config.task, name) for name in task_fields}
    payload = {
        "recipe": RECIPE_VERSION,
        "model": {name: getattr(config.model, name) for name in PRETRAIN_MODEL_FIELDS},
        # an unset task field (None) is left out: one added later keeps the old keys valid
        "task": {name: value for name, value in task.items() if value is not None},
        "pretrain": pretrain,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


def base_model_dir(config: Config) -> Path:
    """Where the base model for `config` is (or will be) saved."""
    name = base_model_name(config.task.name, config_fingerprint(config))
    return Path(config.pretrain.cache_dir) / name
