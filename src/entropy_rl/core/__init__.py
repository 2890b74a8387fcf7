"""The math of the entropy mechanism as plain tensor functions. Imports torch only.

Shapes: B sequences, T response tokens, V vocabulary, P prompts, G responses per prompt.
`mask` is 1 for valid response tokens and 0 for padding; reductions use valid tokens only.
"""

from entropy_rl.core.advantages import (
    ADVANTAGE_ESTIMATORS,
    compute_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from entropy_rl.core.covariance import centering_sums, token_covariance, token_covariance_pg
from entropy_rl.core.entropy import entropy_change_first_order, token_entropy, token_log_probs
from entropy_rl.core.losses import (
    AGG_MODES,
    LOSS_MODES,
    PolicyLossConfig,
    aggregate_loss,
    policy_loss,
    select_high_covariance_tokens,
)
from entropy_rl.core.masked import masked_mean, masked_sum
from entropy_rl.core.passk import pass_at_k

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AGG_MODES",
    "LOSS_MODES",
    "PolicyLossConfig",
    "aggregate_loss",
    "centering_sums",
    "compute_advantages",
    "entropy_change_first_order",
    "grpo_advantages",
    "masked_mean",
    "masked_sum",
    "pass_at_k",
    "policy_loss",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "select_high_covariance_tokens",
    "token_covariance",
    "token_covariance_pg",
    "token_entropy",
    "token_log_probs",
]
