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


def accuracy(
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
        scored = score_all(policy.reward_fn, list(zip(chunk, texts, strict=True)), timeout_s)
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
    calls count as wrong and are reported as `faults/val_reward_errors`. Under torchrun each
    rank takes an equal share of the prompts (padded by repeating the last one; the padding
    is not scored into the metrics, though its failed reward calls are counted)."""
    dist = policy.dist
    own, real = dist.shard_padded(problems)
    k = config.samples
    repeated = [p for p in own for _ in range(k)]
    scores, errors = accuracy(policy, repeated, generator, False, timeout_s)
    scores = scores.reshape(len(own), k)[:real]
    totals = [scores.sum(), (scores.max(1) > 0).sum(), scores.size, real, errors]
    if config.greedy:
        greedy, greedy_errors = accuracy(policy, own, None, True, timeout_s)
        totals += [greedy[:real].sum()]
        totals[4] += greedy_errors
    totals = dist.sum(torch.tensor(totals, dtype=torch.float64)).numpy()  # (5 or 6,)
    metrics = {
        "val/acc": float(totals[0] / totals[2]),
        "val/pass_at_k": float(totals[1] / totals[3]),
    }
    if config.greedy:
        metrics["val/acc_greedy"] = float(totals[5] / totals[3])
    metrics["faults/val_reward_errors"] = int(totals[4])
    return metrics
