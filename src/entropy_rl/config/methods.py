"""The paper's methods as run settings, in one place (torch-free): GRPO, the reference; its
two remedies, Clip-Cov and KL-Cov; and the two baselines it compares them with, the entropy
bonus and DAPO's clip-higher. Each is a run label (what `entropy-rl demo` and the experiment
files name a run, and the report groups runs by) and the overrides that make its config.

Only this module, the loss config (`config.loss`) and the losses (`core.losses`) spell a
loss mode's name; a test checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from entropy_rl.loss_config import PolicyLossConfig

GRPO = "grpo"
CLIP_COV = "clip_cov"
KL_COV = "kl_cov"
ENTROPY_BONUS = "entropy_bonus"
CLIP_HIGHER = "clip_higher"

SURROGATE_MODE = "ppo"
"""loss.mode of GRPO and of the baselines: the clipped surrogate, with no covariance remedy."""

METHODS: dict[str, dict[str, object]] = {
    GRPO: {"loss.mode": SURROGATE_MODE},
    CLIP_COV: {"loss.mode": "clip_cov"},
    KL_COV: {"loss.mode": "kl_cov"},
    ENTROPY_BONUS: {"loss.mode": SURROGATE_MODE, "loss.entropy_coef": 0.01},
    CLIP_HIGHER: {"loss.mode": SURROGATE_MODE, "loss.clip_high": 0.28},
}
"""Each method's overrides on the defaults (as experiments/paper_small.yaml names them; the
covariance remedies' ratios and coefficients are scale defaults, `config.scale`)."""

REFERENCE_METHOD = GRPO
"""The method whose runs the law is fitted on, and the others compared with."""
REMEDIES = (CLIP_COV, KL_COV)
"""The paper's two remedies, compared with GRPO in claim 4 and the reviewers' question."""
DEMO_METHODS = (GRPO, KL_COV, CLIP_COV)
"""The methods `entropy-rl demo` trains, in order."""


def method_overrides(method: str) -> list[str]:
    """`section.field=value` overrides that make `method`'s config (KeyError for a method not
    in METHODS)."""
    return [f"{name}={value}" for name, value in METHODS[method].items()]


def method_label(loss: PolicyLossConfig) -> str:
    """The method a loss config runs: clip_cov, kl_cov, entropy_bonus, clip_higher or grpo
    (another registered mode: its name), with `_target` after it when the entropy controller
    steers it (loss.entropy_target)."""
    suffix = "" if loss.entropy_target is None else "_target"
    if loss.mode != SURROGATE_MODE:
        return loss.mode + suffix
    if loss.entropy_coef > 0:
        return ENTROPY_BONUS + suffix
    if loss.clip_high > loss.clip_low:
        return CLIP_HIGHER
    return REFERENCE_METHOD
