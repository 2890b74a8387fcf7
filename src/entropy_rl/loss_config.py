"""The policy loss's settings, `PolicyLossConfig`: a frozen dataclass whose fields are checked
on construction (types and ranges), and `Knob`, a field the entropy controller may turn.

Imports nothing: the math (`entropy_rl.core`) reads it, and the run config
(`entropy_rl.config`) builds its `loss` section from it, so that the config, and whatever
reads one, stay free of torch. The names a field takes from a registry (`mode`,
`entropy_control`) and each mode's own rules are checked by `core.control.check_loss_config`,
once the registries are known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

AGG_MODES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum")
AUTO_KNOB = "auto"
"""`entropy_control`'s default: the first knob of the loss mode, else the entropy bonus."""
CONTROL_KP = 16.0
"""The 'pi' rule's proportional gain: with CONTROL_KI, a loop damped enough for the knobs'
authorities measured on the embedded task (`core.control`, "Why this form" 6); 4 until
2026-12-04."""
CONTROL_KI = 1.0
FIXED_GAINS = "fixed"
AUTO_GAINS = "auto"
"""`control_gains`: the 'pi' rule's gains set each step from the knob's measured authority."""
CONTROL_POLE = 0.85
"""`control_pole`'s default: on the embedded task, the bonus held 0.45 and 0.3 as closely as
with the hand-set kp 16, ki 1 (mean |H - target| 0.014 and 0.016, against 0.013 and 0.016);
at 0.9 it held them more loosely (0.016 and 0.020). docs/results.md."""
CONTROL_MAX_SCALE = 100.0
PI_RULE = "pi"
"""`control_rule`'s default: the proportional-integral rule of `core.control`."""
ENTROPIC_RULE = "entropic"
"""EntroPIC's rule (`core.entropic`), the one that steers mode 'entropic'."""


def _require_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Knob:
    """A field of `PolicyLossConfig` the entropy controller may steer (`entropy_control`):
    registered by the loss mode it acts in (`LossMode.knobs`), or for every mode
    (`core.control.register_knob`)."""

    name: str
    """The `PolicyLossConfig` field, a float whose configured value is the strength at scale 1."""
    ratio: bool = False
    """A fraction of tokens: the controller caps it at 1."""


@dataclass(frozen=True)
class PolicyLossConfig:
    """The policy loss and its entropy-control options. Validated on construction."""

    mode: str = "ppo"
    """Loss: 'ppo' (clipped surrogate), 'clip_cov' (Clip-Cov), 'kl_cov' (KL-Cov),
    'top_entropy' (PPO's loss on the highest-entropy tokens only) or 'entropic' (EntroPIC's
    reweighting of high-probability tokens); or a mode registered with
    `entropy_rl.core.register_loss_mode`."""
    clip_low: float = 0.2
    """PPO clip range below 1: the ratio is clipped at 1 - clip_low."""
    clip_high: float = 0.2
    """PPO clip range above 1: the ratio is clipped at 1 + clip_high (> clip_low is clip-higher)."""
    clip_cov_ratio: float = 2e-4
    """Clip-Cov: fraction of valid tokens whose gradient is detached (paper: 2e-4)."""
    clip_cov_lb: float = 1.0
    """Clip-Cov: lower bound of the covariance window for candidates (exclusive)."""
    clip_cov_ub: float = 5.0
    """Clip-Cov: upper bound of the covariance window for candidates (exclusive)."""
    kl_cov_ratio: float = 2e-3
    """KL-Cov: fraction of valid tokens, those of largest covariance, that get the KL penalty."""
    kl_cov_coef: float = 1.0
    """KL-Cov: coefficient of the |logp - old_logp| penalty on the selected tokens."""
    top_entropy_quantile: float = 0.2
    """top_entropy: the share of valid tokens, those of highest entropy, that the loss acts on
    (TRL's `top_entropy_quantile`; 0.2 is "Beyond the 80/20 rule", arXiv 2506.01939)."""
    entropic_alpha: float = 0.0
    """entropic: EntroPIC's weight alpha in [-1, 1] of the extra term -ratio |A| on the
    high-probability tokens (> 0 lowers the entropy, < 0 raises it); its rule
    (`control_rule='entropic'`) sets it at every optimizer step."""
    entropic_prob: float = 0.95
    """entropic: a token is high-probability when its sampled probability exceeds this."""
    entropic_kp: float = 1.0
    """entropic rule: proportional gain on H - target (nats), EntroPIC's entropy_control_p."""
    entropic_ki: float = 0.01
    """entropic rule: integral gain on the sum of H - target, EntroPIC's entropy_control_i."""
    agg: str = "token_mean"
    """Aggregation: 'token_mean', 'seq_mean_token_mean' or 'seq_mean_token_sum'."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient (a baseline in the paper; 0 disables it)."""
    entropy_target: float | None = None
    """Target policy entropy (nats per token, as `entropy/mean`): a controller sets the
    strength of `entropy_control`'s knob every step from the measured entropy
    (`entropy_rl.core.control`). Unset: fixed strengths, no controller."""
    entropy_target_end: float | None = None
    """With entropy_target: the target moves linearly from entropy_target at the first step
    to this at the last. Unset: a constant target."""
    entropy_control: str = AUTO_KNOB
    """The knob the controller steers: 'clip_cov_ratio', 'kl_cov_coef', 'kl_cov_ratio',
    'entropy_coef' (the entropy bonus), or 'auto': Clip-Cov's ratio in mode clip_cov,
    KL-Cov's coefficient in mode kl_cov, the entropy bonus otherwise. Its configured value
    is the controller's starting strength (scale 1). A comma-separated list of knobs (e.g.
    'clip_cov_ratio,entropy_coef') is tried in order: the controller moves to the next when
    the one it steers is inert (`control_patience`); a later knob is 0 until its turn."""
    control_kp: float = CONTROL_KP
    """Controller: proportional gain, in log scale per unit of relative entropy error."""
    control_ki: float = CONTROL_KI
    """Controller: integral gain, in log scale per unit of relative entropy error per step."""
    control_gains: str = FIXED_GAINS
    """Controller ('pi'): 'fixed' (control_kp and control_ki as set) or 'auto': each step,
    the gains that put the loop's poles at control_pole for the knob's authority, measured
    online from the Lemma-1 probe's entropy change (`core.authority`; needs
    diagnostics.probe_size > 0), within 1/8 to 8 times control_kp and control_ki; those
    until the authority is measured."""
    control_pole: float = CONTROL_POLE
    """Controller ('pi', control_gains=auto): where the loop's two poles sit, in (0, 1): lower
    corrects faster and passes more of the batch's sampling noise into the knob."""
    control_max_scale: float = CONTROL_MAX_SCALE
    """Controller: the knob stays within [1/this, this] times its configured value."""
    control_patience: int = 10
    """Controller ('pi'): steps a knob may be stuck (at its bound, at a ratio's cap of 1, or
    selecting under 90% of the tokens it asks for) with the entropy below the target before it
    is declared inert."""
    control_explosion: float = 0.5
    """Controller ('pi'): once the target has been reached, an entropy above the target by
    more than this fraction of it drops the integral to the configured strength or below."""
    control_rule: str = PI_RULE
    """How the controller moves the knob: 'pi' (ours, `core.control`: proportional-integral
    on a log scale, once per rollout step), 'fixed_step' (TRL's `use_adaptive_entropy`,
    Skywork-OR1's rule, `core.fixed_step`: control_step_size per optimizer step toward the
    target, applied only at or below it) or 'entropic' (EntroPIC's, `core.entropic`, for mode
    'entropic'); or a rule registered with `register_control_rule`."""
    control_step_size: float = 0.005
    """fixed_step: how much the knob moves per optimizer step (TRL's entropy_coef_delta)."""
    control_min: float = 0.0
    """fixed_step: the knob's lowest value (TRL's entropy_coef_min)."""
    control_max: float = 1.0
    """fixed_step: the knob's highest value (TRL's entropy_coef_max)."""

    def __post_init__(self) -> None:
        for name in ("mode", "entropy_control", "control_rule"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a name, got {getattr(self, name)!r}")
        if self.agg not in AGG_MODES:
            raise ValueError(f"agg must be one of {', '.join(AGG_MODES)}; got {self.agg!r}")
        for name in ("clip_low", "clip_high", "kl_cov_coef", "entropy_coef"):
            if _require_number(name, getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            if not 0.0 <= _require_number(name, getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < _require_number("top_entropy_quantile", self.top_entropy_quantile) <= 1.0:
            raise ValueError(
                f"top_entropy_quantile must be in (0, 1], got {self.top_entropy_quantile!r}"
            )
        self._check_control()
        if not -1.0 <= _require_number("entropic_alpha", self.entropic_alpha) <= 1.0:
            raise ValueError(f"entropic_alpha must be in [-1, 1], got {self.entropic_alpha!r}")
        if not 0.0 < _require_number("entropic_prob", self.entropic_prob) < 1.0:
            raise ValueError(f"entropic_prob must be in (0, 1), got {self.entropic_prob!r}")
        for name in ("clip_cov_lb", "clip_cov_ub"):
            _require_number(name, getattr(self, name))

    def _check_control(self) -> None:
        for name in ("entropy_target", "entropy_target_end"):
            value = getattr(self, name)
            if value is not None and _require_number(name, value) <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        for name in ("control_kp", "control_ki", "entropic_kp", "entropic_ki"):
            if _require_number(name, getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.control_gains not in (FIXED_GAINS, AUTO_GAINS):
            raise ValueError(
                f"control_gains must be {FIXED_GAINS} or {AUTO_GAINS}, got {self.control_gains!r}"
            )
        if not 0.0 < _require_number("control_pole", self.control_pole) < 1.0:
            raise ValueError(f"control_pole must be in (0, 1), got {self.control_pole!r}")
        if _require_number("control_max_scale", self.control_max_scale) < 1:
            raise ValueError(f"control_max_scale must be >= 1, got {self.control_max_scale!r}")
        if isinstance(self.control_patience, bool) or not isinstance(self.control_patience, int):
            raise ValueError(f"control_patience must be an int, got {self.control_patience!r}")
        if self.control_patience < 1:
            raise ValueError(f"control_patience must be >= 1, got {self.control_patience!r}")
        if _require_number("control_explosion", self.control_explosion) <= 0:
            raise ValueError(f"control_explosion must be > 0, got {self.control_explosion!r}")
        if _require_number("control_step_size", self.control_step_size) <= 0:
            raise ValueError(f"control_step_size must be > 0, got {self.control_step_size!r}")
        if _require_number("control_min", self.control_min) < 0:
            raise ValueError(f"control_min must be >= 0, got {self.control_min!r}")
        if _require_number("control_max", self.control_max) < self.control_min:
            raise ValueError(
                f"control_max must be >= control_min, got {self.control_max!r} < {self.control_min!r}"
            )
        if self.entropy_target is None and self.entropy_target_end is not None:
            raise ValueError("entropy_target_end needs entropy_target (the start of the schedule)")
