"""Loading the run config: YAML, `section.field=value` overrides, the scale defaults, and
the field descriptions `--help` shows."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from entropy_rl.config.scale import SCALE_DEFAULTS, scale_defaults
from entropy_rl.config.tree import Config
from entropy_rl.errors import ConfigError


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(path: str, value: Any, annotation: Any) -> Any:
    """Check or convert `value` to the field's annotated type; strings come from the CLI."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
        for option in options:
            if option is not type(None):
                return _coerce(path, value, option)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ConfigError(
        f"{path} must be {getattr(annotation, '__name__', annotation)}, got {value!r}"
    )


_ACTOR, _ROLLOUT = "actor_rollout_ref.actor.", "actor_rollout_ref.rollout."
VERL_FIELDS = {
    "data.train_files": "task.train_file",
    "data.val_files": "task.val_file",
    "data.prompt_key": "task.prompt_key",
    "data.max_response_length": "task.max_response_tokens",
    "data.train_batch_size": "train.prompts_per_step",
    "actor_rollout_ref.model.path": "model.path",
    "actor_rollout_ref.model.lora_rank": "model.lora_rank",
    "actor_rollout_ref.model.lora_alpha": "model.lora_alpha",
    "actor_rollout_ref.model.enable_gradient_checkpointing": "model.gradient_checkpointing",
    f"{_ACTOR}optim.lr": "train.lr",
    f"{_ACTOR}optim.weight_decay": "train.weight_decay",
    f"{_ACTOR}grad_clip": "train.grad_clip",
    f"{_ACTOR}ppo_epochs": "train.ppo_epochs",
    f"{_ACTOR}clip_ratio_low": "loss.clip_low",
    f"{_ACTOR}clip_ratio_high": "loss.clip_high",
    f"{_ACTOR}entropy_coeff": "loss.entropy_coef",
    f"{_ACTOR}loss_agg_mode": "loss.agg",
    f"{_ACTOR}policy_loss.loss_mode": "loss.mode",
    f"{_ACTOR}policy_loss.clip_cov_ratio": "loss.clip_cov_ratio",
    f"{_ACTOR}policy_loss.clip_cov_lb": "loss.clip_cov_lb",
    f"{_ACTOR}policy_loss.clip_cov_ub": "loss.clip_cov_ub",
    f"{_ACTOR}policy_loss.kl_cov_ratio": "loss.kl_cov_ratio",
    f"{_ACTOR}policy_loss.ppo_kl_coef": "loss.kl_cov_coef",
    f"{_ROLLOUT}n": "train.group_size",
    f"{_ROLLOUT}temperature": "train.temperature",
    f"{_ROLLOUT}response_length": "task.max_response_tokens",
    f"{_ROLLOUT}gpu_memory_utilization": "rollout.gpu_memory_utilization",
    "algorithm.adv_estimator": "train.advantage",
    "trainer.total_training_steps": "train.steps",
    "trainer.save_freq": "train.save_every",
    "trainer.test_freq": "eval.every",
    "trainer.max_actor_ckpt_to_keep": "train.keep_checkpoints",
}
"""verl's name (its ppo_trainer.yaml) -> ours, for the fields that mean the same; an unknown
field named as verl names it is refused with ours. Some values are spelled differently
(verl's loss_agg_mode token-mean is our token_mean, its loss_mode vanilla our ppo, its
reinforce_plus_plus our reinforce_pp). Not here, as nothing of ours means the same: verl's
ppo_mini_batch_size (a size; train.mini_batches is a count) and max_prompt_length."""


def _leaves(where: str, value: Any) -> list[str]:
    """The dotted names of the leaf fields under `where` in a config tree."""
    if not isinstance(value, dict):
        return [where]
    return [leaf for k, v in value.items() for leaf in _leaves(f"{where}.{k}", v)]


def _unknown(path: str, name: str, known: list[str], value: Any = None) -> ConfigError:
    prefix = f"{path}." if path else ""
    where = f"{prefix}{name}"
    for leaf in _leaves(where, value):
        if leaf in VERL_FIELDS:
            return ConfigError(
                f"unknown config field '{leaf}' (verl's name; ours is {VERL_FIELDS[leaf]})"
            )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config field '{where}'{hint}")


def _build(cls: type, values: dict[str, Any], path: str = "") -> Any:
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        if name not in hints:
            raise _unknown(path, name, names, value)
        where = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a mapping of fields, got {value!r}")
            kwargs[name] = _build(hints[name], value, where)
        else:
            kwargs[name] = _coerce(where, value, hints[name])
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # core's PolicyLossConfig names the field without its section
        raise ConfigError(f"{path}.{err}" if path else str(err)) from None


def _set_dotted(tree: dict[str, Any], key: str, value: str) -> None:
    *sections, leaf = key.split(".")
    node = tree
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field '{key}': '{section}' is not a section")
    node[leaf] = value


def _apply_overrides(tree: dict[str, Any], overrides: list[str]) -> None:
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        _set_dotted(tree, key.strip(), value.strip())


def override(config: Config, overrides: list[str]) -> Config:
    """A new config: `config` with `section.field=value` overrides, checked as `load_config`
    checks them. Every field of `config` is set, so `SCALE_DEFAULTS` changes nothing here."""
    tree = config_to_dict(config)
    _apply_overrides(tree, list(overrides))
    return _build(Config, tree)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Build the config from an optional YAML file, then `section.field=value` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        tree = loaded or {}
    _apply_overrides(tree, list(overrides))
    return _build(Config, _with_scale_defaults(tree))


def default_config(model_path: str = "") -> Config:
    """The defaults of a run on the embedded task (model_path empty, the same as `Config()`)
    or on the local model at model_path: what `load_config` gives with nothing else set."""
    return _build(Config, _with_scale_defaults({"model": {"path": model_path}}))


def _with_scale_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of `tree` (the user's sections) where every `SCALE_DEFAULTS` field the user did
    not set has its value for the run's scale: embedded when model.path is empty or unset,
    the real model's when it is set. Malformed sections are left for `_build` to reject."""
    model = tree.get("model")
    path = model.get("path", "") if isinstance(model, dict) else ""
    out = {name: dict(node) if isinstance(node, dict) else node for name, node in tree.items()}
    for key, value in scale_defaults(path if isinstance(path, str) else "").items():
        section, name = key.split(".")
        node = out.setdefault(section, {})
        if isinstance(node, dict):
            node.setdefault(name, value)
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field docstrings: the string literal right after each annotated field."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def describe_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every leaf field, for `--help`. A field of
    `SCALE_DEFAULTS` shows both its values and, after its help, why they differ."""
    return _describe(cls(), prefix)


def _describe(section: Any, prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    docs = _attribute_docs(type(section))
    for f in dataclasses.fields(section):
        name, value = f"{prefix}{f.name}", getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            rows += _describe(value, f"{name}.")
        elif name in SCALE_DEFAULTS:
            scaled = SCALE_DEFAULTS[name]
            default = f"{_short(scaled.embedded)} (embedded task) / {_short(scaled.real)} (--model)"
            doc = " ".join(filter(None, [docs.get(f.name, ""), f"Scale-dependent: {scaled.why}."]))
            rows.append((name, default, doc))
        else:
            rows.append((name, _short(value), docs.get(f.name, "")))
    return rows


def _short(value: Any) -> str:
    """repr, with small floats in the paper's notation: 1e-4, not 0.0001."""
    if isinstance(value, float) and value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return repr(value)
