"""The one home of every default: a frozen dataclass tree, loaded from YAML and overridden
from the command line with dotted `section.field=value` pairs (e.g. `loss.mode=kl_cov`).

Each field's docstring is its `--help` text. Values are validated when the tree is built;
nothing mutates a config at run time (derive a new one with `dataclasses.replace`).

Defaults that depend on the scale of the run live in one table, `SCALE_DEFAULTS`: each entry
has its value on the embedded task (a ~1M-parameter model, ~10^3 tokens a rollout batch) and
its value with a real model (`--model` / `model.path`: the paper's, Cui et al. 2025, for
7B-32B models and ~10^6-10^7 tokens a batch), and why they differ. The rule: `load_config`
(every command: train, demo, experiment, pretrain) gives each table field the user did not
set, in the YAML file or a `section.field=value` override, its embedded value when
model.path is empty and its real-model value when it is set. An explicit value always wins,
and the resolved values are saved in the run's config.yaml, so a resumed run reads them back
unchanged.

`Config()` built directly in Python has the embedded values (the embedded task is the
default), so it equals `load_config(None)`; the dataclass defaults are read from the table.
A `Config(model=ModelConfig(path=...))` built by hand keeps the embedded values of the
fields it does not pass: use `default_config(path)` or `load_config(None, ["model.path=..."])`
for a real model's defaults. The core's `PolicyLossConfig` keeps the paper's values as its
own defaults (the TRL adapter uses it directly); the table reads its real-model loss values
from them.
"""

from entropy_rl.config.load import (
    VERL_FIELDS,
    config_to_dict,
    default_config,
    describe_fields,
    dump_config,
    load_config,
    override,
)
from entropy_rl.config.scale import SCALE_DEFAULTS, ScaleDefault, scale_defaults
from entropy_rl.config.sections import (
    EvalConfig,
    ModelConfig,
    PretrainConfig,
    TaskConfig,
    TrainConfig,
    lora_targets,
)
from entropy_rl.config.tree import (
    BACKENDS,
    STRATEGIES,
    WANDB_MODES,
    Config,
    DiagnosticsConfig,
    DistributedConfig,
    LogConfig,
    RolloutConfig,
)
from entropy_rl.errors import ConfigError

__all__ = [
    "BACKENDS",
    "SCALE_DEFAULTS",
    "STRATEGIES",
    "VERL_FIELDS",
    "WANDB_MODES",
    "Config",
    "ConfigError",
    "DiagnosticsConfig",
    "DistributedConfig",
    "EvalConfig",
    "LogConfig",
    "ModelConfig",
    "PretrainConfig",
    "RolloutConfig",
    "ScaleDefault",
    "TaskConfig",
    "TrainConfig",
    "config_to_dict",
    "default_config",
    "describe_fields",
    "dump_config",
    "load_config",
    "lora_targets",
    "override",
    "scale_defaults",
]
