"""Validation on held-out prompts: the law's R (`val/acc`), greedy accuracy and pass@k; and
the sampling statistics `entropy-rl eval` reports (`sample_statistics`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from entropy_rl.config import EvalConfig
from entropy_rl.core import masked_sum, pass_at_k
from entropy_rl.runs.metric_keys import VAL_ACC, VAL_ACC_GREEDY, VAL_PASS_AT_K, VAL_REWARD_ERRORS
from entropy_rl.tasks import Problem
from entropy_rl.training.distributed import Dist
from entropy_rl.training.policy import Policy, RolloutWorker
from entropy_rl.training.rollout import Rollout, response_scores

EVAL_BATCH = 1024
"""Sequences sampled at once during evaluation (memory only)."""
SCORE_BATCH = 16
"""Sequences per teacher-forced pass when `sample_statistics` measures token entropy
(memory only: the pass holds (SCORE_BATCH, T, V) logits)."""
VALIDATION_SEED_STRIDE = 1_000_003

EvalProgress = Callable[[int, str], None]
"""progress(advance, status): `advance` more sequences are done, and `status` says what is
being done now (`entropy-rl eval`'s progress display)."""


def no_progress(advance: int, status: str) -> None:
    """An `EvalProgress` that shows nothing."""


def validation_seed(train_seed: int, step: int) -> int:
    """Seed of the generator that draws the validation samples of row `step` of a run with
    `train.seed` = train_seed. `entropy-rl eval` with `eval.seed` set to it, the run's
    `eval.samples`, `eval.temperature` and task, on the checkpoint of that step, draws the
    same samples."""
    return train_seed * VALIDATION_SEED_STRIDE + step


def _scored_chunks(
    policy: Policy,
    worker: RolloutWorker,
    problems: list[Problem],
    generator: torch.Generator | None,
    greedy: bool,
    timeout_s: float,
    temperature: float,
    progress: EvalProgress = no_progress,
) -> Iterator[tuple[Rollout, list[str], list[float], int]]:
    """One response per problem, EVAL_BATCH at a time: (rollout, texts, rewards, errors);
    says each phase to `progress` (advancing nothing)."""
    what = "greedy" if greedy else "sampling"
    for start in range(0, len(problems), EVAL_BATCH):
        chunk = problems[start : start + EVAL_BATCH]
        progress(0, f"{what} {start + 1}-{start + len(chunk)} of {len(problems)}")
        rollout, texts = worker.sample(policy, chunk, generator, temperature, greedy=greedy)
        progress(0, f"{what}: scoring rewards")
        scored = worker.score(chunk, texts, timeout_s)
        yield rollout, texts, scored.rewards, scored.errors


def accuracy(
    policy: Policy,
    worker: RolloutWorker,
    problems: list[Problem],
    generator: torch.Generator | None,
    greedy: bool,
    timeout_s: float,
    temperature: float = 1.0,
    progress: EvalProgress = no_progress,
) -> tuple[np.ndarray, int]:
    """Rewards of one response per problem, and the number of failed reward calls; each
    scored chunk advances `progress`."""
    correct, errors = [], 0
    for _, _, rewards, failed in _scored_chunks(
        policy, worker, problems, generator, greedy, timeout_s, temperature, progress
    ):
        correct += rewards
        errors += failed
        progress(len(rewards), "")
    return np.asarray(correct, dtype=np.float64), errors


@torch.no_grad()
def evaluate(
    policy: Policy,
    worker: RolloutWorker,
    problems: list[Problem],
    config: EvalConfig,
    generator: torch.Generator,
    timeout_s: float,
    dist: Dist,
) -> dict[str, float]:
    """k = `eval.samples` samples per prompt at `eval.temperature`: `val/acc` is their mean,
    `val/pass_at_k` the mean over prompts of the unbiased pass@k estimator (`core.pass_at_k`;
    with n = k samples it is the share of prompts with a correct one); `val/acc_greedy`
    decodes the argmax. Failed reward calls count as wrong and are reported as
    `faults/val_reward_errors`. Under torchrun each rank takes an equal share of the prompts
    (padded by repeating the last one; the padding is not scored into the metrics, though its
    failed reward calls are counted)."""
    own, real = dist.shard_padded(problems)
    k = config.samples
    repeated = [p for p in own for _ in range(k)]
    scores, errors = accuracy(
        policy, worker, repeated, generator, False, timeout_s, config.temperature
    )
    scores = scores.reshape(len(own), k)[:real]  # (P_own, k)
    passed = pass_at_k(torch.from_numpy((scores > 0).sum(1)), k, k).sum()
    totals = [scores.sum(), float(passed), scores.size, real, errors]
    if config.greedy:
        greedy, greedy_errors = accuracy(policy, worker, own, None, True, timeout_s)
        totals += [greedy[:real].sum()]
        totals[4] += greedy_errors
    totals = dist.sum(torch.tensor(totals, dtype=torch.float64)).numpy()  # (5 or 6,)
    metrics = {
        VAL_ACC: float(totals[0] / totals[2]),
        VAL_PASS_AT_K: float(totals[1] / totals[3]),
    }
    if config.greedy:
        metrics[VAL_ACC_GREEDY] = float(totals[5] / totals[3])
    metrics[VAL_REWARD_ERRORS] = int(totals[4])
    return metrics


# ---- entropy-rl eval ------------------------------------------------------------------


def answer_entropy(answers: Sequence[str]) -> float:
    """Entropy (nats) of the empirical distribution of the distinct answers among one
    prompt's samples: 0 when they all agree, log n when all n differ."""
    counts = np.array(list(Counter(answers).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class SampleStatistics:
    """n samples of each of P prompts: their rewards (P, n), final answers and token entropy."""

    rewards: np.ndarray  # (P, n)
    answers: list[list[str]]  # P lists of n final answers (`Task.final_answer`)
    entropy_sum: float
    """Sum of the token entropy over the samples' valid tokens (at the sampling temperature)."""
    num_tokens: int
    """Valid response tokens of the samples (eos included)."""
    reward_errors: int

    def pass_at(self, k: int) -> float:
        """Mean over prompts of the unbiased pass@k (a reward > 0 counts as correct)."""
        correct = torch.from_numpy((self.rewards > 0).sum(1))
        return float(pass_at_k(correct, self.rewards.shape[1], k).mean())

    @property
    def answer_entropy(self) -> float:
        """Mean over prompts of `answer_entropy` of their samples."""
        return float(np.mean([answer_entropy(a) for a in self.answers]))

    @property
    def token_entropy(self) -> float:
        return self.entropy_sum / max(self.num_tokens, 1)


def _entropy_sum(
    policy: Policy,
    rollout: Rollout,
    temperature: float,
    rows: int | None,
    progress: EvalProgress = no_progress,
) -> float:
    """Token entropy summed over the valid tokens of a rollout, SCORE_BATCH responses at a
    time, at most `rows` positions' logits at once (`rollout.response_scores`); each batch
    of responses advances `progress`."""
    total, size = 0.0, rollout.response_ids.shape[0]
    with policy.forward_context():
        for start in range(0, size, SCORE_BATCH):
            part = rollout.select(slice(start, start + SCORE_BATCH))
            _, entropy, _ = response_scores(policy.model, part, temperature, True, rows)
            total += float(masked_sum(entropy, part.response_mask))  # (b, T)
            progress(min(SCORE_BATCH, size - start), "token entropy")
    return total


@torch.no_grad()
def sample_statistics(
    policy: Policy,
    worker: RolloutWorker,
    problems: list[Problem],
    samples: int,
    generator: torch.Generator,
    timeout_s: float,
    temperature: float = 1.0,
    rows: int | None = None,
    progress: EvalProgress = no_progress,
) -> SampleStatistics:
    """`samples` responses per problem, drawn in the same order and batches as `evaluate`
    (so the same generator gives the same samples), scored, with their final answers and
    token entropy (at most `rows` positions' logits at once; None: SCORE_BATCH responses');
    `progress` advances as each response's token entropy is measured."""
    repeated = [p for p in problems for _ in range(samples)]
    rewards, answers, entropy, tokens, errors = [], [], 0.0, 0, 0
    for rollout, texts, scores, failed in _scored_chunks(
        policy, worker, repeated, generator, False, timeout_s, temperature, progress
    ):
        rewards += scores
        answers += [worker.task.final_answer(text) for text in texts]
        entropy += _entropy_sum(policy, rollout, temperature, rows, progress)
        tokens += int(rollout.response_mask.sum())
        errors += failed
    shape = (len(problems), samples)
    grouped = [answers[i * samples : (i + 1) * samples] for i in range(len(problems))]
    reward_array = np.asarray(rewards, dtype=np.float64).reshape(shape)
    return SampleStatistics(reward_array, grouped, entropy, tokens, errors)


def pass_at_k_table(stats: SampleStatistics) -> dict[str, float]:
    """pass@k for every k from 1 to n, keyed by str(k) (JSON keys)."""
    n = stats.rewards.shape[1]
    return {str(k): stats.pass_at(k) for k in range(1, n + 1)}


def shown_ks(n: int) -> list[int]:
    """The k shown in `entropy-rl eval`'s table: powers of 2 below n, and n."""
    return sorted({2**i for i in range(int(math.log2(n)) + 1) if 2**i < n} | {n})
