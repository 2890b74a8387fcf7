"""The math of the entropy mechanism as plain tensor functions. Imports torch only (and the
foundation's registry pattern, `entropy_rl.registry`, and loss settings,
`entropy_rl.loss_config`, both standard library only).

Shapes: B sequences, T response tokens, V vocabulary, P prompts, G responses per prompt.
`mask` is 1 for valid response tokens and 0 for padding; reductions use valid tokens only.
The loss modes, advantage estimators and controller knobs are registries
(`register_loss_mode`, `register_advantage`, `register_knob`).
"""

from entropy_rl.core.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimator,
    AdvantageFn,
    compute_advantages,
    grpo_advantages,
    register_advantage,
    reinforce_pp_advantages,
    rloo_advantages,
    unregister_advantage,
)
from entropy_rl.core.control import (
    CONTROL_KNOBS,
    CONTROL_RULES,
    ControlRule,
    ControlState,
    check_loss_config,
    control_rule,
    control_step,
    register_control_rule,
    register_knob,
)
from entropy_rl.core.covariance import (
    centering_sums,
    token_covariance,
    token_covariance_pg,
)
from entropy_rl.core.entropic import ENTROPIC  # registers the rule
from entropy_rl.core.entropy import (
    entropy_change_and_first_order,
    entropy_change_first_order,
    head_logits,
    head_token_scores,
    token_entropy,
    token_log_probs,
)
from entropy_rl.core.fixed_step import FIXED_STEP  # registers the rule
from entropy_rl.core.losses import (
    LOSS_MODES,
    LossMode,
    TokenScores,
    TokenTerms,
    aggregate_loss,
    loss_mode,
    policy_loss,
    register_loss_mode,
    select_tokens,
    unregister_loss_mode,
)
from entropy_rl.core.masked import (
    masked_mean,
    masked_sum,
)
from entropy_rl.core.passk import (
    pass_at_k,
)
from entropy_rl.loss_config import (
    AGG_MODES,
    Knob,
    PolicyLossConfig,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AGG_MODES",
    "CONTROL_KNOBS",
    "CONTROL_RULES",
    "ENTROPIC",
    "FIXED_STEP",
    "LOSS_MODES",
    "AdvantageEstimator",
    "AdvantageFn",
    "ControlRule",
    "ControlState",
    "Knob",
    "LossMode",
    "PolicyLossConfig",
    "TokenScores",
    "TokenTerms",
    "aggregate_loss",
    "centering_sums",
    "check_loss_config",
    "compute_advantages",
    "control_rule",
    "control_step",
    "entropy_change_and_first_order",
    "entropy_change_first_order",
    "grpo_advantages",
    "head_logits",
    "head_token_scores",
    "loss_mode",
    "masked_mean",
    "masked_sum",
    "pass_at_k",
    "policy_loss",
    "register_advantage",
    "register_control_rule",
    "register_knob",
    "register_loss_mode",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "select_tokens",
    "token_covariance",
    "token_covariance_pg",
    "token_entropy",
    "token_log_probs",
    "unregister_advantage",
    "unregister_loss_mode",
]
