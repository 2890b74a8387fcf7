"""TRL's adaptive entropy bonus (`GRPOConfig.use_adaptive_entropy`, Skywork-OR1's rule) as a
rule of the entropy controller, `loss.control_rule=fixed_step`, to compare ours with.

After each optimizer step, with H the mean token entropy of the tokens the step trained on
(every rank's), under the policy before the step, and T the target:

    v <- min(v + delta, v_max)   if H <= T
    v <- max(v - delta, v_min)   otherwise

and the next optimizer step applies v if that H was at or below T, else 0 (TRL's first
step: 0, its last entropy starting at +inf). delta = `control_step_size` (TRL's
entropy_coef_delta, 0.005), [v_min, v_max] = [`control_min`, `control_max`] (TRL's
entropy_coef_min and _max, 0 and 1); v starts at the knob's configured value (TRL's
entropy_coef) and is absolute, not a scale of it. The state (v, H) is the run's
`ControlState` and is saved in its checkpoints, as TRL saves `entropy_ctrl_state.json`.

Departures from TRL:
 1. TRL steers the entropy bonus only; here any knob (`loss.entropy_control`).
 2. TRL measures H over the tokens its loss acts on (with `top_entropy_quantile`, the
    selected ones); here over every valid token of the optimizer step's mini-batch.
 3. The target may move (`entropy_target_end`), as for the 'pi' rule; TRL's is constant.
"""

from __future__ import annotations

import dataclasses

from entropy_rl.core.control import (
    CONTROL_ERROR,
    CONTROL_TARGET,
    CONTROL_VALUE,
    ControlDecision,
    ControlRule,
    ControlState,
    control_knob,
    entropy_target_at,
    register_control_rule,
    step_loss,
)
from entropy_rl.loss_config import PolicyLossConfig

FIXED_STEP_RULE = "fixed_step"
FIXED_STEP_KEYS = (CONTROL_TARGET, CONTROL_ERROR, CONTROL_VALUE)
"""A fixed_step run's `control/*` metrics: the target, its error and the knob's applied
value at the step's first update (0 while gated off)."""


def _level(config: PolicyLossConfig, state: ControlState) -> float:
    """v: the knob's value, before the gate."""
    return getattr(config, control_knob(config).name) if state.value is None else state.value


def _loss(config: PolicyLossConfig, state: ControlState, target: float) -> PolicyLossConfig:
    """The next optimizer step's loss: the knob at v, or 0 when the last H was above T."""
    applied = _level(config, state) if state.last_entropy <= target else 0.0
    knob = control_knob(config).name
    return step_loss(config, **{knob: applied})


def fixed_step_start(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """A rollout step's first update: the knob as the last optimizer step left it; the state
    is unchanged (it moves after each optimizer step, `fixed_step_update`)."""
    target = entropy_target_at(config, step, total_steps)
    loss = _loss(config, state, target)
    metrics = {
        CONTROL_TARGET: target,
        CONTROL_ERROR: target - entropy,
        CONTROL_VALUE: getattr(loss, control_knob(config).name),
    }
    return ControlDecision(loss, state, metrics)


def fixed_step_update(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """After an optimizer step whose tokens had mean entropy `entropy`: v one step toward the
    target, and the next optimizer step's loss."""
    target = entropy_target_at(config, step, total_steps)
    level = _level(config, state)
    if entropy <= target:
        level = min(level + config.control_step_size, config.control_max)
    else:
        level = max(level - config.control_step_size, config.control_min)
    moved = dataclasses.replace(state, value=level, last_entropy=entropy)
    return ControlDecision(_loss(config, moved, target), moved, {})


FIXED_STEP = register_control_rule(
    ControlRule(
        FIXED_STEP_RULE,
        fixed_step_start,
        after_update=fixed_step_update,
        keys=FIXED_STEP_KEYS,
        needs_strength=False,
    )
)
