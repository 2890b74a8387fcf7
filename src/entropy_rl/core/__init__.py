"""The math of the entropy mechanism as plain tensor functions. Imports torch only.

Shapes: B sequences, T response tokens, V vocabulary, P prompts, G responses per prompt.
`mask` is 1 for valid response tokens and 0 for padding; reductions use valid tokens only.

Each name below is imported from its module on first use (as the package's own exports), so
that `from entropy_rl.core import PolicyLossConfig` (what a run config needs) does not import
torch; the loss modes and advantage estimators are registries (`register_loss_mode`,
`register_advantage`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ADVANTAGE_ESTIMATORS": "advantages",
    "AdvantageEstimator": "advantages",
    "AdvantageFn": "advantages",
    "compute_advantages": "advantages",
    "grpo_advantages": "advantages",
    "register_advantage": "advantages",
    "reinforce_pp_advantages": "advantages",
    "rloo_advantages": "advantages",
    "ControlState": "control",
    "control_step": "control",
    "centering_sums": "covariance",
    "token_covariance": "covariance",
    "token_covariance_pg": "covariance",
    "entropy_change_and_first_order": "entropy",
    "entropy_change_first_order": "entropy",
    "head_logits": "entropy",
    "head_token_scores": "entropy",
    "token_entropy": "entropy",
    "token_log_probs": "entropy",
    "AGG_MODES": "loss_config",
    "PolicyLossConfig": "loss_config",
    "LOSS_MODES": "losses",
    "LossMode": "losses",
    "TokenTerms": "losses",
    "aggregate_loss": "losses",
    "loss_mode": "losses",
    "policy_loss": "losses",
    "register_loss_mode": "losses",
    "select_high_covariance_tokens": "losses",
    "masked_mean": "masked",
    "masked_sum": "masked",
    "pass_at_k": "passk",
}
"""Public name -> the module of `entropy_rl.core` that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'entropy_rl.core' has no attribute {name!r}")
    return getattr(importlib.import_module(f"entropy_rl.core.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
