"""Validation on held-out prompts: the law's R (`val/acc`), greedy accuracy and pass@k."""

from __future__ import annotations

import numpy as np
import torch

from entropy_rl.config import EvalConfig
from entropy_rl.policy import Policy
from entropy_rl.rewards import score_all
from entropy_rl.tasks import Problem

EVAL_BATCH = 1024
"""Sequences sampled at once during evaluation (memory only)."""


def _accuracy(
    policy: Policy,
    problems: list[Problem],
    generator: torch.Generator | None,
    greedy: bool,
    timeout_s: float,
) -> tuple[np.ndarray, int]:
    """Rewards of one response per problem, and the number of failed reward calls."""
    correct, errors = [], 0
    for start in range(0, len(problems), EVAL_BATCH):
        chunk = problems[start : start + EVAL_BATCH]
        _, texts = policy.sample(chunk, generator, greedy=greedy)
        scored = score_all(policy.task.reward, list(zip(chunk, texts, strict=True)), timeout_s)
        correct += scored.rewards
        errors += scored.errors
    return np.asarray(correct, dtype=np.float64), errors


@torch.no_grad()
def evaluate(
    policy: Policy,
    problems: list[Problem],
    config: EvalConfig,
    generator: torch.Generator,
    timeout_s: float,
) -> dict[str, float]:
    """k samples per prompt at temperature 1: `val/acc` is their mean, `val/pass_at_k` the
    share of prompts with a correct one; `val/acc_greedy` decodes the argmax. Failed reward
    calls count as wrong and are reported as `faults/val_reward_errors`."""
    k = config.samples
    repeated = [p for p in problems for _ in range(k)]
    scores, errors = _accuracy(policy, repeated, generator, False, timeout_s)
    scores = scores.reshape(len(problems), k)
    metrics = {"val/acc": float(scores.mean()), "val/pass_at_k": float((scores.max(1) > 0).mean())}
    if config.greedy:
        greedy, greedy_errors = _accuracy(policy, problems, None, True, timeout_s)
        metrics["val/acc_greedy"] = float(greedy.mean())
        errors += greedy_errors
    metrics["faults/val_reward_errors"] = errors
    return metrics
