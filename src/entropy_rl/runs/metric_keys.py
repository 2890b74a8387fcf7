"""The names of the metrics a run logs, one constant per key of metrics.jsonl.

The catalogue with each key's meaning is docs/metrics.md (a test keeps the two in step).
The loss metrics (`loss/policy`, `ppo/*`, and those of each loss mode, such as
`clip_cov/frac`) are named by the loss modes in `entropy_rl.core.losses`, since the core
imports only torch; `LOSS_POLICY` repeats the one every mode logs, and `CONTROL_TARGET` and
`CONTROL_VALUE` two of the controller's (`core.control.CONTROL_KEYS`), for the readers of
logs (tests/test_layers.py checks that they are the same).
Standard library only.
"""

from __future__ import annotations

STEP = "step"
"""Row index: the policy after `step` updates."""
REWARD_MEAN = "reward/mean"
"""Mean verifier reward of the step's rollout batch."""

VAL_ACC = "val/acc"
"""Mean reward of the held-out samples at the evaluation temperature: the law's R."""
VAL_ACC_GREEDY = "val/acc_greedy"
"""Reward of the argmax response per held-out prompt."""
VAL_PASS_AT_K = "val/pass_at_k"
"""Unbiased pass@k with k = eval.samples over the held-out prompts."""

ENTROPY_MEAN = "entropy/mean"
"""Policy entropy H: mean token entropy over the valid tokens of the rollout batch."""
ENTROPY_BY_POSITION = "entropy/by_position"
"""The same per response position (a list)."""

COV_LOGP_ADV = "cov/logp_adv"
"""Batch Cov(log pi, A) of the sampled tokens (Theorem 2)."""
COV_LOGP_PI_ADV = "cov/logp_pi_adv"
"""Batch Cov(log pi, pi*A) (Theorem 1)."""
COV_POS_FRAC = "cov/pos_frac"
"""Share of valid tokens whose centred cross product is positive."""

DH_ACTUAL = "dynamics/dH_actual"
"""Entropy change over the step's updates on the probe states, exact over the vocabulary."""
DH_LEMMA1 = "dynamics/dH_lemma1"
"""Lemma 1's first-order prediction of that change."""

LOSS_POLICY = "loss/policy"
"""The policy loss, mean over the step's optimizer updates (named by `core.losses` too)."""
CONTROL_TARGET = "control/target"
"""The entropy controller's target this step (named by `core.control` too)."""
CONTROL_VALUE = "control/value"
"""The value the controller gave its knob this step (named by `core.control` too)."""
GRAD_NORM = "grad/norm"
"""Gradient norm before clipping, mean over the step's updates."""
RESPONSE_LEN_MEAN = "response/len_mean"
"""Mean response length in tokens, eos included."""
TIME_STEP_S = "time/step_s"
"""Wall time of the row, evaluation included."""
TIME_TOKENS_PER_S = "time/tokens_per_s"
"""Sampled response tokens per second of the row."""

REWARD_ERRORS = "faults/reward_errors"
"""Reward calls of the rollout batch that raised, timed out or returned a non-number."""
VAL_REWARD_ERRORS = "faults/val_reward_errors"
"""The same during evaluation."""
SKIPPED_STEPS = "faults/skipped_steps"
"""Optimizer steps of the row skipped for a non-finite loss or gradient."""

LAW_A = "law/a"
"""The law R = -a*exp(H) + b fitted on the run's evaluation points so far: its a
(evaluation rows, once `live_law.fit_so_far` has a fit)."""
LAW_B = "law/b"
"""Its b."""
LAW_CEILING = "law/ceiling"
"""Its ceiling b - a, the forecast R at H = 0."""
LAW_CEILING_CI_LO = "law/ceiling_ci_lo"
"""Lower end of the ceiling's confidence interval (`law.EntropyLawFit.ceiling_ci`)."""
LAW_CEILING_CI_HI = "law/ceiling_ci_hi"
"""Upper end of that interval."""
LAW_R2 = "law/r2"
"""R² of the fit."""
LAW_N = "law/n"
"""Evaluation points fitted."""

RUN_KEYS = (
    STEP,
    REWARD_MEAN,
    VAL_ACC,
    VAL_ACC_GREEDY,
    VAL_PASS_AT_K,
    ENTROPY_MEAN,
    ENTROPY_BY_POSITION,
    COV_LOGP_ADV,
    COV_LOGP_PI_ADV,
    COV_POS_FRAC,
    DH_ACTUAL,
    DH_LEMMA1,
    LOSS_POLICY,
    GRAD_NORM,
    RESPONSE_LEN_MEAN,
    TIME_STEP_S,
    TIME_TOKENS_PER_S,
    REWARD_ERRORS,
    VAL_REWARD_ERRORS,
    SKIPPED_STEPS,
    LAW_A,
    LAW_B,
    LAW_CEILING,
    LAW_CEILING_CI_LO,
    LAW_CEILING_CI_HI,
    LAW_R2,
    LAW_N,
)
"""Every key above, the loss modes' own keys apart."""
