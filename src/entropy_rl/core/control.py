"""Entropy control: steer the policy entropy to a target through the covariance mechanism.

The paper's remedies have a fixed strength (Clip-Cov's ratio, KL-Cov's coefficient) whose
right value depends on the model, the batch and the task. With `loss.entropy_target` set,
the strength is instead set at every step from the measured policy entropy H (the mean
token entropy of the step's rollout batch, `entropy/mean`, before its updates), as a scale
s of the knob's configured value, by a proportional-integral rule on log s:

    e_t    = (target_t - H_t) / target_t                  relative error (> 0: too low)
    s_t    = exp(clip(I_t + control_kp * e_t, -L, L))     L = log(control_max_scale)
    I_t+1  = clip(I_t + control_ki * e_t, -L, L)          once H has reached the target
    knob_t = s_t * (the knob's configured value), capped at 1 for a ratio

I_0 = 0 (the configured value), and the integral stays there until the entropy is first at
or below the target. The knob (`loss.entropy_control`) is Clip-Cov's ratio, KL-Cov's
coefficient or ratio, or the entropy bonus's coefficient (the peers' adaptive entropy
bonus, in the same form, for comparison). The target is constant, or moves linearly from
`entropy_target` at step 0 to `entropy_target_end` at the last step.

Why this form:
1. Entropy integrates the intervention: the knob sets how fast H changes (Lemma 1: the
   detached or penalised high-covariance tokens are the ones that lower it), not H itself.
   A proportional term alone leaves a steady error wherever holding H needs a strength
   other than the configured one; the integral finds that strength, and the proportional
   term damps the overshoot an integral alone gives on an integrating process.
2. On log s: the strength that holds a target can be far from the configured value (on
   the embedded task, 8x the entropy bonus's 0.01 or 8x KL-Cov's coefficient 2 did not
   hold an entropy of 0.5), and a step of the rule changes it by the same factor at any
   level; s stays in [1/control_max_scale, control_max_scale].
3. The error is relative to the target, so the gains do not depend on the entropy's scale.
4. No integral before the target is first reached: a run that starts above its target is
   brought down by the policy gradient itself, and integrating that excess would drive the
   strength to its floor just before it is needed (integrator wind-up from the start).
5. Clamping the integral to the range bounds it at saturation (no wind-up there either).
It is scalar arithmetic on a global number: under torchrun every rank measures the same H
(a mean over every rank's tokens) and so takes the same decision.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from entropy_rl.core.loss_config import PolicyLossConfig

MODE_KNOBS = {"clip_cov": "clip_cov_ratio", "kl_cov": "kl_cov_coef"}
"""`entropy_control: auto` steers this knob for these loss modes, `entropy_coef` (the entropy
bonus) for every other mode."""
RATIO_KNOBS = ("clip_cov_ratio", "kl_cov_ratio")
"""Knobs that are fractions of tokens: capped at 1."""

CONTROL_TARGET = "control/target"
CONTROL_ERROR = "control/error"
CONTROL_SCALE = "control/scale"
CONTROL_VALUE = "control/value"
CONTROL_INTEGRAL = "control/integral"  # in log scale
CONTROL_KEYS = (CONTROL_TARGET, CONTROL_ERROR, CONTROL_SCALE, CONTROL_VALUE, CONTROL_INTEGRAL)
"""The metrics of a controlled run, in every metrics.jsonl row (docs/metrics.md)."""


def control_knob(config: PolicyLossConfig) -> str:
    """The PolicyLossConfig field the controller steers."""
    if config.entropy_control != "auto":
        return config.entropy_control
    return MODE_KNOBS.get(config.mode, "entropy_coef")


def entropy_target_at(config: PolicyLossConfig, step: int, total_steps: int) -> float:
    """The target at `step` of `total_steps`: constant, or linear from entropy_target to
    entropy_target_end."""
    start, end = config.entropy_target, config.entropy_target_end
    if start is None:
        raise ValueError("entropy_target is not set: the run has no entropy controller")
    if end is None or total_steps <= 0:
        return start
    return start + (end - start) * min(max(step / total_steps, 0.0), 1.0)


@dataclass(frozen=True)
class ControlState:
    """The controller between steps."""

    integral: float = 0.0
    """The integral term, in log scale: the log of the strength (as a multiple of the
    knob's configured value) it has learnt to hold the target with."""
    reached: bool = False
    """Whether the entropy has been at or below the target (the integral runs from then)."""


@dataclass(frozen=True)
class ControlDecision:
    """One step's decision: the loss config to train with (the knob set, no controller of
    its own), the next state, and the step's `control/*` metrics."""

    loss: PolicyLossConfig
    state: ControlState
    metrics: dict[str, float]


def control_step(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """The proportional-integral rule of the module docstring for one step with measured
    policy entropy `entropy`: this step's loss config (the knob set) and the next state."""
    knob = control_knob(config)
    target = entropy_target_at(config, step, total_steps)
    error = (target - entropy) / target
    bound = math.log(config.control_max_scale)
    scale = math.exp(min(max(state.integral + config.control_kp * error, -bound), bound))
    reached = state.reached or entropy <= target
    integral = state.integral
    if reached:
        integral = min(max(integral + config.control_ki * error, -bound), bound)
    value = scale * getattr(config, knob)
    if knob in RATIO_KNOBS:
        value = min(value, 1.0)
    metrics = {
        CONTROL_TARGET: target,
        CONTROL_ERROR: target - entropy,
        CONTROL_SCALE: scale,
        CONTROL_VALUE: value,
        CONTROL_INTEGRAL: integral,
    }
    # the step's loss has a fixed strength: no controller of its own
    loss = dataclasses.replace(
        config, **{knob: value}, entropy_target=None, entropy_target_end=None
    )
    return ControlDecision(loss, ControlState(integral, reached), metrics)
