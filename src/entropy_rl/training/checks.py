"""`check(config)`: the checks of a run config that need the registries (tasks, loss modes,
controller knobs, advantage estimators, rollout engines) and those across sections.

A config's sections check their own fields when built (`entropy_rl.config`, which imports
no registry); every command, the Python API and a run call `check` before they start, so a
misnamed entry or a combination no run can make is refused before any directory is made.
"""

from __future__ import annotations

from entropy_rl.config import Config, ConfigError
from entropy_rl.core.advantages import ADVANTAGE_ESTIMATORS
from entropy_rl.core.control import check_loss_config, control_rule
from entropy_rl.loss_config import AUTO_GAINS, PI_RULE
from entropy_rl.tasks import TASKS
from entropy_rl.training.engines import ROLLOUT_ENGINES


def check(config: Config) -> Config:
    """ConfigError naming the field for what the registries refuse; returns `config`."""
    _check_task(config)
    try:
        check_loss_config(config.loss)
    except ValueError as err:  # core names the field without its section
        raise ConfigError(f"loss.{err}") from None
    _check_gains(config)
    _check_advantage(config)
    _check_engine(config)
    return config


def _check_gains(config: Config) -> None:
    """loss.control_gains=auto measures the knob's authority with the Lemma-1 probe, in a
    rule that learns from it."""
    loss = config.loss
    if loss.entropy_target is None or loss.control_gains != AUTO_GAINS:
        return
    if control_rule(loss).learn is None:
        raise ConfigError(
            f"loss.control_gains={AUTO_GAINS} needs loss.control_rule={PI_RULE} (the rule "
            f"{loss.control_rule} has no gains to set)"
        )
    if config.diagnostics.probe_size == 0:
        raise ConfigError(
            f"loss.control_gains={AUTO_GAINS} needs diagnostics.probe_size > 0: the knob's "
            "authority is measured from the probe's entropy change"
        )


def _check_task(config: Config) -> None:
    task = TASKS.check(config.task.name, "task.name")
    task.check(config.task)
    if task.needs_model and not config.model.path:
        raise ConfigError(f"task.name={config.task.name} needs a model: --model PATH (model.path)")


def _check_advantage(config: Config) -> None:
    train = config.train
    estimator = ADVANTAGE_ESTIMATORS.check(train.advantage, "train.advantage")
    if train.group_size < estimator.min_group:
        raise ConfigError(
            f"train.group_size must be >= {estimator.min_group} for train.advantage="
            f"{train.advantage} (it compares each response with the others of its prompt's group)"
        )


def _check_engine(config: Config) -> None:
    rollout = config.rollout
    engine = ROLLOUT_ENGINES.check(rollout.engine, "rollout.engine")
    if rollout.sampling not in engine.samplings:
        raise ConfigError(
            f"rollout.sampling={rollout.sampling} is not offered by rollout.engine="
            f"{rollout.engine} (it offers: {', '.join(engine.samplings)})"
        )
    if config.model.lora_rank and not engine.lora:
        raise ConfigError(
            f"model.lora_rank > 0 needs a rollout engine that samples LoRA policies "
            f"(rollout.engine={rollout.engine} loads full weights, not adapters)"
        )
