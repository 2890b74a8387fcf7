"""EntroPIC's controller (arXiv 2511.15248, its code yk7333/EntroPIC) as the rule
`loss.control_rule=entropic`, which steers mode 'entropic''s alpha, to compare ours with.

After each optimizer step, with H the mean token entropy of the tokens the step trained on
(every rank's), under the policy before the step, and T the target:

    alpha <- clip(entropic_kp (H - T) + entropic_ki I, -1, 1)
    I     <- I + (H - T)

The error is absolute (nats) and positive when the entropy is too high; the integral is not
clamped (as in EntroPIC's code); alpha starts at `entropic_alpha`. The state (alpha, I) is
the run's `ControlState` and is saved in its checkpoints.

Departures from EntroPIC's code:
 1. Its alpha for a micro-batch comes from that micro-batch's own entropy, measured in the
    same forward pass, per rank; here from the last optimizer step's tokens, every rank's:
    one optimizer step later, and the same on every rank.
 2. Its integral grows by each micro-batch's error times its share of the mini-batch; here by
    each optimizer step's error.
"""

from __future__ import annotations

import dataclasses

from entropy_rl.core.control import (
    CONTROL_ERROR,
    CONTROL_INTEGRAL,
    CONTROL_TARGET,
    CONTROL_VALUE,
    ControlDecision,
    ControlRule,
    ControlState,
    entropy_target_at,
    register_control_rule,
    step_loss,
)
from entropy_rl.loss_config import ENTROPIC_RULE, PolicyLossConfig

ENTROPIC_KEYS = (CONTROL_TARGET, CONTROL_ERROR, CONTROL_VALUE, CONTROL_INTEGRAL)
"""An entropic run's `control/*` metrics: the target, its error (target - H, as every rule
logs it), alpha at the step's first update, and the integral of H - target."""


def _alpha(config: PolicyLossConfig, state: ControlState) -> float:
    return config.entropic_alpha if state.value is None else state.value


def entropic_start(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """A rollout step's first update: alpha as the last optimizer step left it."""
    target = entropy_target_at(config, step, total_steps)
    alpha = _alpha(config, state)
    metrics = {
        CONTROL_TARGET: target,
        CONTROL_ERROR: target - entropy,
        CONTROL_VALUE: alpha,
        CONTROL_INTEGRAL: state.integral,
    }
    return ControlDecision(step_loss(config, entropic_alpha=alpha), state, metrics)


def entropic_update(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """After an optimizer step whose tokens had mean entropy `entropy`: the next alpha."""
    error = entropy - entropy_target_at(config, step, total_steps)  # > 0: too high
    raw = config.entropic_kp * error + config.entropic_ki * state.integral
    alpha = min(max(raw, -1.0), 1.0)
    moved = dataclasses.replace(
        state, value=alpha, integral=state.integral + error, last_entropy=entropy
    )
    return ControlDecision(step_loss(config, entropic_alpha=alpha), moved, {})


ENTROPIC = register_control_rule(
    ControlRule(
        ENTROPIC_RULE,
        entropic_start,
        after_update=entropic_update,
        keys=ENTROPIC_KEYS,
        needs_strength=False,
    )
)
