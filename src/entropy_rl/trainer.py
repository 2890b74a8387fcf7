"""The RL loop: GRPO-style training on verifiable rewards with the paper's diagnostics.

One step, top to bottom (Cui et al., 2025, Sec. 2 and 4):
 1. evaluate on held-out prompts when due (the law's R is `val/acc`);
 2. sample `prompts_per_step` prompts and `group_size` responses each, at temperature 1;
 3. score them (a raising or hanging reward gives 0 and is counted);
 4. advantages per prompt group (GRPO by default);
 5. one no-grad pass: old log-probs, token entropy (the policy entropy H), covariances;
 6. Clip-Cov / KL-Cov token selection over the whole rollout batch;
 7. `ppo_epochs` x `mini_batches` AdamW updates with `core.policy_loss`;
 8. the entropy change over the updates on probe states, exact and by Lemma 1.
Row `step` of metrics.jsonl describes the policy after `step` updates; the last row (step =
train.steps) only measures. Departures from the paper:
 1. Selection is batch-level from the old log-probs (which equal the current ones at the
    first update), applied micro-batch by micro-batch; the reference code selects inside
    each micro-batch on each GPU. Clip-Cov's "not clipped by PPO" condition is void at
    selection time (the ratio is 1) and PPO's clip still applies at every update.
 2. The model runs without dropout (eval mode) throughout, as RL trainers usually do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from entropy_rl.config import Config
from entropy_rl.core import (
    PolicyLossConfig,
    compute_advantages,
    policy_loss,
    select_high_covariance_tokens,
    token_covariance,
    token_entropy,
    token_log_probs,
)
from entropy_rl.diagnostics import by_position, probe_statistics, rollout_statistics
from entropy_rl.errors import TrainingError
from entropy_rl.evaluation import evaluate
from entropy_rl.policy import Policy
from entropy_rl.rewards import score_all
from entropy_rl.rollout import Rollout, response_logits

CONFIG_FILE = "config.yaml"


@dataclass
class RunState:
    """What changes during a run and is saved in checkpoints."""

    step: int
    prompt_rng: np.random.Generator
    rollout_gen: torch.Generator
    select_gen: torch.Generator
    consecutive_bad: int = 0
    stop_requested: bool = field(default=False, repr=False)

    @classmethod
    def fresh(cls, seed: int) -> RunState:
        return cls(
            step=0,
            prompt_rng=np.random.default_rng(seed),
            rollout_gen=torch.Generator().manual_seed(seed),
            select_gen=torch.Generator().manual_seed(seed + 1),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "prompt_rng": self.prompt_rng.bit_generator.state,
            "rollout_gen": self.rollout_gen.get_state(),
            "select_gen": self.select_gen.get_state(),
            "consecutive_bad": self.consecutive_bad,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        state = cls.fresh(0)
        state.step, state.consecutive_bad = data["step"], data["consecutive_bad"]
        state.prompt_rng.bit_generator.state = data["prompt_rng"]
        state.rollout_gen.set_state(data["rollout_gen"])
        state.select_gen.set_state(data["select_gen"])
        return state


@dataclass(frozen=True)
class Batch:
    """A scored rollout batch with what the updates need. B = prompts_per_step * group_size."""

    rollout: Rollout
    advantages: torch.Tensor  # (B,)
    old_log_probs: torch.Tensor  # (B, T)
    old_logits: torch.Tensor  # (B, T, V)
    selection: torch.Tensor | None  # (B, T) bool, clip_cov / kl_cov only

    @property
    def mask(self) -> torch.Tensor:
        return self.rollout.response_mask


# ---- one step -------------------------------------------------------------------------


def collect(policy: Policy, config: Config, state: RunState) -> tuple[Batch, dict[str, Any]]:
    """Steps 2-6: sample, score, advantages, old log-probs, diagnostics, selection."""
    train = config.train
    problems = policy.task.sample_problems(train.prompts_per_step, state.prompt_rng)
    grouped = [p for p in problems for _ in range(train.group_size)]
    rollout, texts = policy.sample(grouped, state.rollout_gen, train.temperature)
    scored = score_all(
        policy.task.reward, list(zip(grouped, texts, strict=True)), train.reward_timeout_s
    )
    rewards = torch.tensor(scored.rewards).view(train.prompts_per_step, train.group_size)  # (P, G)
    advantages = compute_advantages(rewards, train.advantage).flatten()  # (B,)
    mask = rollout.response_mask  # (B, T)
    with torch.no_grad():
        logits = response_logits(policy.model, rollout, train.temperature).float()  # (B, T, V)
        old_log_probs = token_log_probs(logits, rollout.response_ids, config.diagnostics.chunk_size)
        entropy = token_entropy(logits, config.diagnostics.chunk_size)  # (B, T)
    cov = token_covariance(old_log_probs, advantages, mask)  # (B, T)
    selection = None
    if config.loss.mode != "ppo":
        selection = select_high_covariance_tokens(cov, mask, config.loss, state.select_gen)
    metrics = {
        "reward/mean": float(rewards.mean()),
        "response/len_mean": float(mask.sum(-1).float().mean()),
        "faults/reward_errors": scored.errors,
        **_floats(rollout_statistics(entropy, old_log_probs, advantages, mask, cov)),
        "entropy/by_position": by_position(entropy, mask),
    }
    return Batch(rollout, advantages, old_log_probs, logits, selection), metrics


def _micro_loss(
    policy: Policy,
    batch: Batch,
    index: torch.Tensor,
    loss_cfg: PolicyLossConfig,
    temperature: float,
    totals,
):
    rollout = batch.rollout.select(index)
    logits = response_logits(policy.model, rollout, temperature)  # (b, T, V)
    log_probs = token_log_probs(logits, rollout.response_ids)  # (b, T)
    entropy = token_entropy(logits) if loss_cfg.entropy_coef > 0 else None
    selection = None if batch.selection is None else batch.selection[index]
    return policy_loss(
        log_probs,
        batch.old_log_probs[index],
        batch.advantages[index],
        rollout.response_mask,
        loss_cfg,
        selection=selection,
        entropy=entropy,
        num_tokens=totals[0],
        num_seqs=totals[1],
    )


def update(
    policy: Policy, optimizer, batch: Batch, config: Config, state: RunState
) -> dict[str, float]:
    """Step 7: ppo_epochs x mini_batches optimizer updates; a non-finite one is skipped."""
    train, sums, n_updates, skipped = config.train, {}, 0, 0
    params = [p for p in policy.model.parameters() if p.requires_grad]
    size = batch.mask.shape[0]
    for _ in range(train.ppo_epochs):
        order = torch.randperm(size, generator=state.rollout_gen)
        for mini in order.chunk(train.mini_batches):
            mask = batch.mask[mini]
            totals = (mask.sum(), (mask.sum(-1) > 0).sum())
            optimizer.zero_grad(set_to_none=True)
            loss_value = 0.0
            for micro in mini.chunk(train.micro_batches):
                loss, metrics = _micro_loss(
                    policy, batch, micro, config.loss, train.temperature, totals
                )
                loss.backward()
                loss_value += float(loss.detach())
                weight = float(batch.mask[micro].sum() / totals[0])  # metrics are micro means
                metrics.pop("loss/policy")  # already scaled by the mini-batch denominators
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + weight * float(value)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, train.grad_clip or math.inf))
            n_updates += 1
            sums["grad/norm"] = sums.get("grad/norm", 0.0) + grad_norm
            sums["loss/policy"] = sums.get("loss/policy", 0.0) + loss_value
            if math.isfinite(loss_value) and math.isfinite(grad_norm):
                optimizer.step()
                state.consecutive_bad = 0
            else:
                skipped += 1
                state.consecutive_bad += 1
                optimizer.zero_grad(set_to_none=True)
                if state.consecutive_bad >= train.max_bad_steps:
                    raise TrainingError(
                        f"{state.consecutive_bad} optimizer steps in a row had a non-finite loss "
                        f"or gradient (step {state.step}); stopping with the last good checkpoint intact"
                    )
    metrics = {key: value / n_updates for key, value in sums.items()}
    metrics["faults/skipped_steps"] = skipped
    return metrics


def run_step(
    policy: Policy, optimizer, config: Config, state: RunState, val_problems
) -> dict[str, Any]:
    """One row of metrics.jsonl: evaluate if due, collect, update (not on the last row), probe."""
    start = time.perf_counter()
    record: dict[str, Any] = {"step": state.step}
    last = state.step == config.train.steps
    if state.step % config.eval.every == 0 or last:
        eval_gen = torch.Generator().manual_seed(config.train.seed * 1_000_003 + state.step)
        record |= evaluate(
            policy, val_problems, config.eval, eval_gen, config.train.reward_timeout_s
        )
    batch, metrics = collect(policy, config, state)
    record |= metrics
    if not last:
        record |= update(policy, optimizer, batch, config, state)
        record |= _probe(policy, batch, config)
    elapsed = time.perf_counter() - start
    record["time/step_s"] = elapsed
    record["time/tokens_per_s"] = float(batch.mask.sum()) / elapsed
    return record


def _probe(policy: Policy, batch: Batch, config: Config) -> dict[str, float]:
    """Step 8: entropy change on the probe states over this step's updates, and Lemma 1's."""
    n = min(config.diagnostics.probe_size, batch.mask.shape[0])
    if n == 0:
        return {}
    probe = batch.rollout.select(slice(0, n))
    with torch.no_grad():
        after = response_logits(policy.model, probe, config.train.temperature).float()
    stats = probe_statistics(
        batch.old_logits[:n], after, probe.response_mask, config.diagnostics.chunk_size
    )
    return _floats(stats)


def _floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}
