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
6. The gains set the loop's damping. With g the entropy change per step per unit of log s
   (the knob's authority) and x = H - target, the loop is x' = (1 - k1) x + g J,
   (g J)' = g J - k2 x, with k1 = g kp / target and k2 = g ki / target: its poles solve
   z^2 - (2 - k1) z + (1 - k1 + k2) = 0, critically damped at k1 = 2 sqrt(k2). On the
   embedded task g was 0.002-0.01 (the bonus to KL-Cov's coefficient), so kp 4 with ki 1
   left the loop underdamped: a slow oscillation that the batch's sampling noise keeps
   going (mean |H - target| 0.019-0.025 against a floor of 0.011-0.014). kp 16 damps it
   over that range of g (0.013-0.016); a smaller ki instead is slow to find the strength
   (kp 8, ki 0.25: 0.036). docs/results.md, "Entropy control against the field's rules".
7. With `control_gains='auto'` the gains are set each step from g measured online
   (`core.authority`: the Lemma-1 probe's entropy change fitted on the knob's value), for
   the loop's poles at `control_pole`. At the strength that holds the target, g is the
   entropy's own fall per step, whatever the knob, so one pole serves every knob whose
   effect is about linear in its value, at any target (not one that saturates: KL-Cov's
   coefficient on the embedded task); gains set 8x too low were brought back.
It is scalar arithmetic on a global number: under torchrun every rank measures the same H
(a mean over every rank's tokens) and so takes the same decision.

The rule is one of `CONTROL_RULES` (`loss.control_rule`): this one is 'pi'; TRL's fixed-step
rule is 'fixed_step' (`core.fixed_step`), for comparison; a rule of the user's is one
`register_control_rule` call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from entropy_rl.core.authority import AuthorityFit, loop_gains
from entropy_rl.core.losses import LOSS_MODES
from entropy_rl.loss_config import AUTO_GAINS, AUTO_KNOB, PI_RULE, Knob, PolicyLossConfig
from entropy_rl.registry import Registry

CONTROL_KNOBS: Registry[Knob] = Registry("controller knob")
"""The knobs that act in every loss mode (read-only); a mode's own knobs are its
`LossMode.knobs`. Add one with `register_knob`."""


def register_knob(knob: Knob) -> Knob:
    """Add `knob`, a float field of `PolicyLossConfig` that acts in every loss mode, to
    `CONTROL_KNOBS` (ValueError if its name is taken); returns it."""
    if knob.name not in {f.name for f in dataclasses.fields(PolicyLossConfig)}:
        raise ValueError(f"a knob is a field of PolicyLossConfig; {knob.name!r} is not one")
    return CONTROL_KNOBS.add(knob.name, knob)


ENTROPY_BONUS = register_knob(Knob("entropy_coef"))
"""The entropy bonus's coefficient: the knob of a mode without knobs of its own."""

CONTROL_TARGET = "control/target"
CONTROL_ERROR = "control/error"
CONTROL_SCALE = "control/scale"
CONTROL_VALUE = "control/value"
CONTROL_INTEGRAL = "control/integral"  # in log scale
CONTROL_GAIN_P = "control/kp"
"""pi: the proportional gain the step used (loss.control_kp, or with loss.control_gains=auto
the one `core.authority.loop_gains` set from the knob's authority)."""
CONTROL_GAIN_I = "control/ki"
"""pi: the integral gain the step used."""
CONTROL_AUTHORITY = "control/authority"
"""pi: the knob's authority at the strength that holds the entropy (`core.authority`: the
probe's entropy change per step per unit of the knob's log value there); null before it is
measured, without the probe, or with no such strength."""
CONTROL_KNOB = "control/knob"
"""pi: the index, in loss.entropy_control's list, of the knob steered (0 for one knob)."""
CONTROL_STUCK = "control/stuck"
"""pi: consecutive steps the knob has been stuck with the entropy below the target
(`stuck_reason`); at loss.control_patience the knob is inert."""
CONTROL_UPDATE_ENTROPY = "control/update_entropy"
"""A rule that moves after each optimizer step: the mean token entropy of the step's tokens
under the policy before it, averaged over the rollout step's optimizer steps."""
CONTROL_KEYS = (
    CONTROL_TARGET,
    CONTROL_ERROR,
    CONTROL_SCALE,
    CONTROL_VALUE,
    CONTROL_INTEGRAL,
    CONTROL_KNOB,
    CONTROL_GAIN_P,
    CONTROL_GAIN_I,
    CONTROL_AUTHORITY,
)
"""The metrics of a controlled run, in every metrics.jsonl row (docs/metrics.md)."""


def knobs_of(mode: str) -> dict[str, Knob]:
    """The knobs the controller may steer in loss mode `mode`, by name: the mode's own first
    (the first is what `auto` steers), then those of every mode."""
    return {k.name: k for k in (*LOSS_MODES[mode].knobs, *CONTROL_KNOBS.values())}


def control_knobs(config: PolicyLossConfig) -> tuple[Knob, ...]:
    """The knobs `entropy_control` lists, in the order the controller tries them; for `auto`
    the mode's first (the entropy bonus for a mode without knobs of its own)."""
    knobs = knobs_of(config.mode)
    if config.entropy_control == AUTO_KNOB:
        return (next(iter(knobs.values())),)
    return tuple(knobs[name] for name in config.entropy_control.split(","))


def control_knob(config: PolicyLossConfig, state: ControlState | None = None) -> Knob:
    """The knob the controller steers now: the list's first, or the one `state` has moved
    on to."""
    knobs = control_knobs(config)
    return knobs[min(state.knob, len(knobs) - 1) if state is not None else 0]


def check_loss_config(config: PolicyLossConfig) -> PolicyLossConfig:
    """What `PolicyLossConfig` cannot check on its own, once the registries are known: its
    mode is registered, the mode's own checks, and with `entropy_target` a knob that acts in
    that mode and a starting strength above 0. ValueError naming the field; returns config."""
    mode = LOSS_MODES.check(config.mode, "mode")
    if mode.check is not None:
        mode.check(config)
    if config.entropy_control != AUTO_KNOB:
        _check_knob_list(config)
    rule = CONTROL_RULES.check(config.control_rule, "control_rule")
    if config.entropy_target is not None and rule.needs_strength:
        for knob in control_knobs(config):
            if getattr(config, knob.name) <= 0:
                raise ValueError(
                    f"{knob.name} must be > 0 with entropy_target: it is the controller's "
                    f"starting strength (scale 1), got {getattr(config, knob.name)!r}"
                )
    return config


def _check_knob_list(config: PolicyLossConfig) -> None:
    """Each knob `entropy_control` lists acts in the mode, and none twice ('auto' alone)."""
    knobs, names = knobs_of(config.mode), config.entropy_control.split(",")
    if len(set(names)) < len(names):
        raise ValueError(f"entropy_control lists a knob twice: {config.entropy_control!r}")
    for name in names:
        if name in knobs:
            continue
        where = {k.name: m.name for m in LOSS_MODES.values() for k in m.knobs}.get(name)
        raise ValueError(
            f"entropy_control={name!r} acts in mode {where!r}, not {config.mode!r}"
            if where
            else f"entropy_control must be one of {', '.join([AUTO_KNOB, *knobs])} in mode "
            f"{config.mode!r} (or a comma-separated list of them); got {name!r}"
        )


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
    value: float | None = None
    """fixed_step: the knob's value (None: its configured value, not yet moved)."""
    last_entropy: float = math.inf
    """fixed_step: the entropy of the last optimizer step's tokens (+inf before the first)."""
    knob: int = 0
    """pi: the index, in `entropy_control`'s list, of the knob steered now."""
    stuck: int = 0
    """pi: consecutive steps the knob has been stuck with the entropy below the target."""
    authority: AuthorityFit = dataclasses.field(default_factory=AuthorityFit)
    """pi: the fit of the probe's entropy change on the knob's value (`core.authority`)."""

    def __post_init__(self) -> None:
        if isinstance(self.authority, dict):  # as a checkpoint stores it
            object.__setattr__(self, "authority", AuthorityFit(**self.authority))


@dataclass(frozen=True)
class ControlDecision:
    """One step's decision: the loss config to train with (the knob set, no controller of
    its own), the next state, and the step's `control/*` metrics."""

    loss: PolicyLossConfig
    state: ControlState
    metrics: dict[str, float]


def step_loss(config: PolicyLossConfig, **knobs: float) -> PolicyLossConfig:
    """A step's loss as a rule decides it: `config` with `knobs` set and no controller of its
    own (a fixed strength)."""
    return dataclasses.replace(config, **knobs, entropy_target=None, entropy_target_end=None)


def control_step(
    config: PolicyLossConfig, state: ControlState, entropy: float, step: int, total_steps: int
) -> ControlDecision:
    """The proportional-integral rule of the module docstring for one step with measured
    policy entropy `entropy`: this step's loss config (the knob set, the list's later knobs
    at 0) and the next state."""
    knobs = control_knobs(config)
    index = min(state.knob, len(knobs) - 1)
    knob = knobs[index]
    target = entropy_target_at(config, step, total_steps)
    error = (target - entropy) / target
    bound = math.log(config.control_max_scale)
    reached = state.reached or entropy <= target
    integral = state.integral
    if reached and error < -config.control_explosion:  # rising past the target: back off
        integral = min(integral, 0.0)
    authority = state.authority.authority()
    kp, ki = config.control_kp, config.control_ki
    if config.control_gains == AUTO_GAINS:
        kp, ki = loop_gains(config.control_pole, target, authority, kp, ki)
    scale = math.exp(min(max(integral + kp * error, -bound), bound))
    if reached:
        integral = min(max(integral + ki * error, -bound), bound)
    value = scale * getattr(config, knob.name)
    if knob.ratio:
        value = min(value, 1.0)
    metrics = {
        CONTROL_TARGET: target,
        CONTROL_ERROR: target - entropy,
        CONTROL_SCALE: scale,
        CONTROL_VALUE: value,
        CONTROL_INTEGRAL: integral,
        CONTROL_KNOB: index,
        CONTROL_GAIN_P: kp,
        CONTROL_GAIN_I: ki,
        CONTROL_AUTHORITY: math.nan if authority is None else authority,
    }
    later = {k.name: 0.0 for k in knobs[index + 1 :]}  # off until their turn
    loss = step_loss(config, **later, **{knob.name: value})
    next_state = dataclasses.replace(state, integral=integral, reached=reached, knob=index)
    return ControlDecision(loss, next_state, metrics)


def limit_reason(
    config: PolicyLossConfig, state: ControlState, metrics: dict[str, float], achieved
) -> str | None:
    """Why the knob cannot act more strongly than it does this step, or None: it is at its
    bound (the integral at `control_max_scale`), at a ratio's cap of 1, or selecting under
    90% of the share of tokens it asks for (`achieved`: the share the mode selected, for a
    ratio knob of a selecting mode; else None; 90%: a count rounded down stays above it)."""
    knob, value = control_knob(config, state), metrics[CONTROL_VALUE]
    if knob.ratio and achieved is not None and achieved < 0.9 * value:
        return f"its tokens were {achieved:.2%} of the batch, short of the {value:.2%} asked"
    if knob.ratio and value >= 1.0:
        return "it is at a ratio's cap of 1"
    if metrics[CONTROL_INTEGRAL] >= math.log(config.control_max_scale) - 1e-9:
        return f"it is at {config.control_max_scale:g}x its configured value"
    return None


def control_review(
    config: PolicyLossConfig, state: ControlState, metrics: dict[str, float], achieved=None
) -> tuple[ControlState, str | None]:
    """After a step's selection: count the steps the knob is stuck, at its limit
    (`limit_reason`) with the entropy below the target (a step above the target, where the
    knob is not needed, neither counts nor resets; one where it is not at its limit resets).
    At `control_patience` of them it is inert and the controller moves to the list's next
    knob (its integral from 0). Returns the next state and, when a knob is declared inert,
    one line saying which, why, and what the controller does."""
    reason = limit_reason(config, state, metrics, achieved)
    below = metrics[CONTROL_ERROR] > 0
    stuck = 0 if reason is None else state.stuck + below
    if stuck != config.control_patience or not below:
        return dataclasses.replace(state, stuck=stuck), None
    knobs, knob = control_knobs(config), control_knob(config, state)
    line = f"entropy control: {knob.name} is inert: {reason}, with the entropy below the target, "
    line += f"for {stuck} steps"
    if state.knob + 1 >= len(knobs):
        line += "; no other knob to move to (loss.entropy_control can list more)"
        return dataclasses.replace(state, stuck=stuck), line
    moved = knobs[state.knob + 1]
    line += f"; moving to {moved.name}"
    moved_state = dataclasses.replace(
        state, knob=state.knob + 1, integral=0.0, stuck=0, authority=AuthorityFit()
    )
    return moved_state, line


def control_learn(
    config: PolicyLossConfig, state: ControlState, value: float, change: float
) -> ControlState:
    """After the step's updates: the authority fit with this step's knob `value` and the
    probe's entropy change over the updates, `change` (`core.authority`)."""
    if not (value > 0 and math.isfinite(change)):
        return state
    return dataclasses.replace(state, authority=state.authority.observe(value, change))


StartRule = Callable[[PolicyLossConfig, ControlState, float, int, int], ControlDecision]
"""(config, state, entropy, step, total_steps) -> the decision for a rollout step, from the
entropy of its batch before its updates."""
UpdateRule = Callable[[PolicyLossConfig, ControlState, float, int, int], ControlDecision]
"""(config, state, entropy, step, total_steps) -> the decision for the next optimizer step,
from the entropy of the tokens the last one trained on (before it); its metrics unused."""
LearnRule = Callable[[PolicyLossConfig, ControlState, float, float], ControlState]
"""(config, state, the knob's value this step, the probe's entropy change over the step's
updates) -> state."""
ReviewRule = Callable[
    [PolicyLossConfig, ControlState, dict[str, float], "float | None"],
    tuple[ControlState, "str | None"],
]
"""(config, state, the start's metrics, the selected share or None) -> (state, line)."""


@dataclass(frozen=True)
class ControlRule:
    """How the controller moves its knob (`loss.control_rule`)."""

    name: str
    start: StartRule
    """Once per rollout step: the loss of its first update and its `control/*` metrics."""
    after_update: UpdateRule | None = None
    """After each optimizer step (None: the knob holds for the whole rollout step)."""
    review: ReviewRule | None = None
    """After the step's selection, from the start's metrics and the share of tokens the mode
    selected: the next state and a line to print (a knob declared inert), or None."""
    learn: LearnRule | None = None
    """After the step's updates and the probe, from the knob's value and the entropy change
    the probe measured (None: the rule learns nothing from the probe)."""
    keys: tuple[str, ...] = CONTROL_KEYS
    """The `control/*` metrics `start` returns (docs/metrics.md)."""
    needs_strength: bool = True
    """Whether the knob's configured value must be > 0 (a scale of it is what moves)."""


CONTROL_RULES: Registry[ControlRule] = Registry("control rule")
"""The controller's rules by name (read-only); add one with `register_control_rule`."""


def register_control_rule(rule: ControlRule) -> ControlRule:
    """Add `rule` to `CONTROL_RULES` (ValueError if its name is taken); returns it."""
    return CONTROL_RULES.add(rule.name, rule)


def control_rule(config: PolicyLossConfig) -> ControlRule:
    """The rule `config.control_rule` names."""
    return CONTROL_RULES.check(config.control_rule, "control_rule")


register_control_rule(
    ControlRule(PI_RULE, control_step, review=control_review, learn=control_learn)
)
