"""One RL step: GRPO-style training on verifiable rewards with the paper's diagnostics (the
run around the steps, from config to summary, is `entropy_rl.training.runner`).

One step, top to bottom (Cui et al., 2025, Sec. 2 and 4):
 1. evaluate on held-out prompts when due (the law's R is `val/acc`);
 2. sample `prompts_per_step` prompts and `group_size` responses each, at temperature 1;
 3. score them (a raising or hanging reward gives 0 and is counted);
 4. advantages per prompt group (GRPO by default);
 5. one no-grad pass: old log-probs, token entropy (the policy entropy H), covariances;
 6. with loss.entropy_target, the entropy controller sets the intervention's strength
    from this batch's entropy (`core.control`); the loss mode's token selection
    (Clip-Cov, KL-Cov) over the whole rollout batch;
 7. `ppo_epochs` x `mini_batches` AdamW updates with `core.policy_loss`;
 8. the entropy change over the updates on probe states, exact and by Lemma 1: at most
    `diagnostics.probe_tokens` valid tokens of the first `probe_size` responses, whose
    hidden states (S, H) and the output head's parameters are kept from step 5; their
    logits before and after are made a block of states at a time; the controller's rule
    learns its knob's authority from that change (`ControlRule.learn`, `core.authority`).
On an evaluation row, the law is fitted on the run's evaluation points so far (`law/*` keys,
`entropy_rl.analysis.live_law`), and with train.stop_at_saturation a saturated run stops there.
Row `step` of metrics.jsonl describes the policy after `step` updates; the last row (step =
train.steps) only measures, as does the row where a run stops at saturation. Departures
from the paper:
 1. Selection is batch-level from the old log-probs (which equal the current ones at the
    first update), applied micro-batch by micro-batch; the reference code selects inside
    each micro-batch on each GPU. Clip-Cov's "not clipped by PPO" condition is void at
    selection time (the ratio is 1) and PPO's clip still applies at every update.
 2. The model runs without dropout (eval mode) throughout, as RL trainers usually do
    (train mode during updates only with model.gradient_checkpointing, which needs it).
Precision and memory: forward passes run under bf16 autocast when `Policy.autocast` is on,
but every scoring pass (old log-probs, entropy, probe logits, and the loss's log-probs, so
the ratio compares like with like) takes its logits from a float32 final projection
(`rollout.response_scores`): entropy, covariance and Lemma 1 are computed from float32
logits; the body's matmuls stay bf16. No pass projects more than train.logits_mib of
logits for one set of positions at once (the probe: before and after, a block each): beyond
it, positions are projected and scored in blocks, and the updates' backward makes each
block's logits again (`core.head_token_scores`).
Under torchrun (W ranks, `entropy_rl.training.distributed`), every rank draws the same prompts and
keeps its contiguous 1/W of them; rewards are gathered so advantages see whole groups (and
REINFORCE++ the whole batch); the covariance is centred with the global means and the
selection made over the gathered global batch, so a rank's selected tokens are its rows of
the single-process selection; losses use global denominators, and metrics are reduced
over ranks (token-weighted means, summed counts).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from entropy_rl.analysis.live_law import live_law
from entropy_rl.config import Config
from entropy_rl.core import (
    PolicyLossConfig,
    TokenScores,
    centering_sums,
    compute_advantages,
    loss_mode,
    masked_mean,
    policy_loss,
    select_tokens,
    token_covariance,
)
from entropy_rl.core.control import (
    CONTROL_STUCK,
    CONTROL_UPDATE_ENTROPY,
    CONTROL_VALUE,
    UpdateRule,
    control_rule,
)
from entropy_rl.errors import TrainingError
from entropy_rl.runs.metric_keys import (
    DH_ACTUAL,
    ENTROPY_BY_POSITION,
    ENTROPY_MEAN,
    GRAD_NORM,
    LOSS_POLICY,
    RESPONSE_LEN_MEAN,
    REWARD_ERRORS,
    REWARD_MEAN,
    SKIPPED_STEPS,
    STEP,
    TIME_STEP_S,
    TIME_TOKENS_PER_S,
)
from entropy_rl.training.diagnostics import (
    position_means,
    position_totals,
    probe_states,
    probe_statistics_from_heads,
    rollout_statistics,
)
from entropy_rl.training.distributed import Dist, accumulate, full_norm
from entropy_rl.training.policy import Policy, RolloutWorker
from entropy_rl.training.rollout import (
    HeadInputs,
    Rollout,
    head_parameters,
    hidden_at,
    logits_rows,
    response_scores,
)
from entropy_rl.training.run_state import EarlyStop, RunState
from entropy_rl.training.validation import evaluate, validation_seed


@dataclass(frozen=True)
class Probe:
    """This rank's probe states (`diagnostics.probe_states`) among its first N responses,
    and what the output head saw there before the step's updates."""

    states: torch.Tensor  # (N, T) bool, S of them True
    before: HeadInputs
    """The head's inputs (S, H) at the states, in row-major order, and its parameters."""


@dataclass(frozen=True)
class Batch:
    """This rank's part of a scored rollout batch with what the updates need.
    B = prompts_per_step * group_size / W responses."""

    rollout: Rollout
    advantages: torch.Tensor  # (B,)
    old_log_probs: torch.Tensor  # (B, T)
    probe: Probe | None
    """The Lemma-1 probe (None: diagnostics.probe_size is 0)."""
    selection: torch.Tensor | None  # (B, T) bool, for a loss mode that selects tokens
    loss: PolicyLossConfig
    """The loss of this batch's updates: config.loss, or the entropy controller's setting."""

    @property
    def mask(self) -> torch.Tensor:
        return self.rollout.response_mask


# ---- one step -------------------------------------------------------------------------


def micro_batch_size(config: Config, dist: Dist) -> int:
    """Responses per forward pass: this rank's batch over mini_batches * micro_batches."""
    train = config.train
    local = train.prompts_per_step * train.group_size // dist.world_size
    return local // (train.mini_batches * train.micro_batches)


def _score_tokens(
    policy: Policy, rollout: Rollout, config: Config, dist: Dist, states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, Probe | None]:
    """No-grad pass, micro-batch by micro-batch: old log-probs (B, T) and entropy (B, T) from
    float32 logits, and the probe (None without probe states `states` (N, T) bool): the
    head's inputs at the states, gathered from each micro-batch, and its parameters."""
    size, chunk = rollout.response_ids.shape[0], micro_batch_size(config, dist)
    temperature, chunk_size = config.train.temperature, config.diagnostics.chunk_size
    rows = logits_rows(policy.model, config.train.logits_mib)
    log_probs, entropy, hidden = [], [], []
    with torch.no_grad(), policy.forward_context():
        for start in range(0, size, chunk):
            part = rollout.select(slice(start, start + chunk))
            kept = states[start : start + chunk]  # (n, T), n <= b
            lp, ent, h = response_scores(
                policy.model, part, temperature, True, rows, chunk_size, kept if len(kept) else None
            )  # (b, T), (b, T), (s, H) or None
            log_probs.append(lp)
            entropy.append(ent)
            hidden += [] if h is None else [h]
    probe = None
    if hidden:  # the head's parameters now, before the updates change them
        weight, bias = head_parameters(policy.model, copy=True)
        probe = Probe(states, HeadInputs(torch.cat(hidden), weight, bias))
    return torch.cat(log_probs), torch.cat(entropy), probe


def select_batch_tokens(
    scores: TokenScores, mask, loss_cfg: PolicyLossConfig, generator, dist: Dist
) -> torch.Tensor:
    """The loss mode's token selection over the global batch (every rank's rows, gathered),
    whatever the micro-batches; returns this rank's rows (B, T) of it."""
    rows, width = mask.shape
    reads = loss_mode(loss_cfg.mode).reads  # the optional scores the selection reads
    optional = {name: getattr(scores, name) for name in reads}
    gathered = {name: dist.gather_rows(v) for name, v in optional.items() if v is not None}
    everyone = TokenScores(dist.gather_rows(scores.cov), **gathered)
    chosen = select_tokens(everyone, dist.gather_rows(mask), loss_cfg, generator)  # (W*B, T_max)
    return dist.own_rows(chosen, rows, width)


def _token_means(stats: dict[str, torch.Tensor], tokens, dist: Dist) -> dict[str, float]:
    """Per-rank means over `tokens` valid tokens -> means over every rank's tokens."""
    if not dist.active:
        return _floats(stats)
    values = torch.stack([v.double() * tokens for v in stats.values()] + [tokens.double()])
    totals = dist.sum(values)
    return {key: float(totals[i] / totals[-1].clamp(min=1)) for i, key in enumerate(stats)}


def collect(
    policy: Policy, worker: RolloutWorker, config: Config, state: RunState, dist: Dist
) -> tuple[Batch, dict[str, Any]]:
    """Steps 2-6: sample, score, advantages, old log-probs, diagnostics, the entropy
    controller's setting (loss.entropy_target), selection."""
    train = config.train
    everyone = worker.task.sample_problems(train.prompts_per_step, state.prompt_rng)
    problems = dist.shard(everyone)
    grouped = [p for p in problems for _ in range(train.group_size)]
    rollout, texts = worker.sample(policy, grouped, state.rollout_gen, train.temperature)
    scored = worker.score(grouped, texts, train.reward_timeout_s)
    own = torch.tensor(scored.rewards).view(len(problems), train.group_size)  # (P/W, G)
    rewards = dist.gather_rows(own)  # (P, G)
    advantages = compute_advantages(rewards, train.advantage)  # (P, G)
    mask = rollout.response_mask  # (B, T)
    advantages = dist.own_rows(advantages, len(problems)).flatten().to(mask.device)  # (B,)
    states = _probe_states(mask, config, dist)  # (N, T) bool
    old_log_probs, entropy, probe = _score_tokens(policy, rollout, config, dist, states)
    sums = dist.sum(centering_sums(old_log_probs, advantages, mask))  # (4,) global
    cov = token_covariance(old_log_probs, advantages, mask, sums)  # (B, T)
    stats = rollout_statistics(entropy, old_log_probs, advantages, mask, cov, sums)
    metrics = {
        REWARD_MEAN: float(rewards.mean()),
        **_rollout_metrics(entropy, mask, scored.errors, dist),
        **_token_means(stats, mask.sum(), dist),
    }
    loss_cfg = config.loss
    if loss_cfg.entropy_target is not None:  # the global entropy: every rank decides alike
        decision = control_rule(loss_cfg).start(
            loss_cfg, state.control, metrics[ENTROPY_MEAN], state.step, config.train.steps
        )
        loss_cfg, state.control = decision.loss, decision.state
        metrics |= decision.metrics
    selection = None
    if loss_mode(loss_cfg.mode).selects_tokens:
        scores = TokenScores(cov, entropy, old_log_probs)
        selection = select_batch_tokens(scores, mask, loss_cfg, state.select_gen, dist)
    if config.loss.entropy_target is not None:
        metrics |= _review_control(config, state, metrics, selection, mask, dist)
    batch = Batch(rollout, advantages, old_log_probs, probe, selection, loss_cfg)
    return batch, metrics


def _review_control(config: Config, state: RunState, metrics, selection, mask, dist: Dist):
    """The controller's look back at the step (`ControlRule.review`): whether its knob is
    stuck, from the share of tokens the mode selected; a knob declared inert adds a line
    to `state.notices`. Returns `control/stuck` (nothing for a rule without review)."""
    review = control_rule(config.loss).review
    if review is None:
        return {}
    achieved = None
    if selection is not None:
        counts = dist.sum(torch.stack([selection.sum(), mask.sum()]).double())
        achieved = float(counts[0] / counts[1].clamp(min=1))
    state.control, line = review(config.loss, state.control, metrics, achieved)
    if line is not None:
        state.notices.append(line)
    return {CONTROL_STUCK: state.control.stuck}


def _probe_states(mask: torch.Tensor, config: Config, dist: Dist) -> torch.Tensor:
    """This rank's probe states (N, T) bool: its share of diagnostics.probe_size responses
    and of diagnostics.probe_tokens states (`diagnostics.probe_states`). mask: (B, T)."""
    diagnostics, ranks = config.diagnostics, dist.world_size
    n_probe = min(math.ceil(diagnostics.probe_size / ranks), mask.shape[0])
    return probe_states(mask[:n_probe], math.ceil(diagnostics.probe_tokens / ranks))


def _rollout_metrics(entropy, mask, reward_errors: int, dist: Dist) -> dict[str, Any]:
    """Response length, reward faults and entropy by position, over every rank's responses."""
    positions = dist.sum(position_totals(entropy, mask, dist.max_int(mask.shape[1])))  # (2, T)
    mean_len = float(mask.sum(-1).float().mean())
    counts = dist.sum(torch.tensor([mean_len, reward_errors], dtype=torch.float64))
    return {
        RESPONSE_LEN_MEAN: float(counts[0]) / dist.world_size,
        REWARD_ERRORS: int(counts[1]),
        ENTROPY_BY_POSITION: position_means(positions),
    }


def _micro_loss(
    policy: Policy,
    batch: Batch,
    index: torch.Tensor,
    loss_cfg: PolicyLossConfig,
    temperature: float,
    rows: int,
    totals,
    measure: bool = False,
):
    """The loss of the responses `index` of `batch`, and its metrics; with `measure`, the
    mean token entropy under the policy as it is (`control/update_entropy`)."""
    rollout = batch.rollout.select(index)
    with policy.forward_context():
        log_probs, entropy, _ = response_scores(
            policy.module, rollout, temperature, loss_cfg.entropy_coef > 0 or measure, rows
        )  # (b, T), (b, T) or None
    selection = None if batch.selection is None else batch.selection[index]
    loss, metrics = policy_loss(
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
    if measure:
        metrics[CONTROL_UPDATE_ENTROPY] = masked_mean(entropy.detach(), rollout.response_mask)
    return loss, metrics


def _update_rule(config: Config) -> UpdateRule | None:
    """The controller's rule after each optimizer step (None: no controller, or its knob
    holds for a whole rollout step)."""
    if config.loss.entropy_target is None:
        return None
    return control_rule(config.loss).after_update


def optimizer_step(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    mini: torch.Tensor,
    config: Config,
    dist: Dist,
) -> dict[str, float]:
    """One optimizer update on a global mini-batch, of which `mini` indexes this rank's rows.

    The loss uses the global mini-batch's token and sequence counts, so it and its gradient
    are those of a single process holding the whole mini-batch, for any number of ranks and
    micro-batches. Skipped (gradients dropped) when the loss or gradient is not finite.
    Returns `loss/policy`, `grad/norm`, `applied` and the loss metrics (global token means;
    with a controller rule that moves after each optimizer step, `control/update_entropy`).
    """
    train = config.train
    mask = batch.mask[mini]
    totals = dist.sum(torch.stack([mask.sum(), (mask.sum(-1) > 0).sum()]))  # global counts
    optimizer.zero_grad(set_to_none=True)
    loss_value, sums, rows = 0.0, {}, logits_rows(policy.model, config.train.logits_mib)
    micros, measure = mini.chunk(train.micro_batches), _update_rule(config) is not None
    for i, micro in enumerate(micros):
        with accumulate(policy.module, dist, sync=i == len(micros) - 1):
            loss, metrics = _micro_loss(
                policy, batch, micro, batch.loss, train.temperature, rows, totals, measure
            )
            (loss * dist.loss_scale).backward()
        loss_value += float(loss.detach())
        weight = float(batch.mask[micro].sum() / totals[0])  # metrics are micro means
        metrics.pop(LOSS_POLICY)  # already scaled by the mini-batch denominators
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + weight * float(value)
    reduced = dist.sum(torch.tensor([loss_value, *sums.values()], dtype=torch.float64))
    params = [p for p in policy.module.parameters() if p.requires_grad]
    grad_norm = full_norm(torch.nn.utils.clip_grad_norm_(params, train.grad_clip or math.inf))
    loss_value = float(reduced[0])
    applied = math.isfinite(loss_value) and math.isfinite(grad_norm)
    if applied:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    out = {key: float(reduced[i + 1]) for i, key in enumerate(sums)}
    return {**out, LOSS_POLICY: loss_value, GRAD_NORM: grad_norm, "applied": applied}


def update(
    policy: Policy, optimizer, batch: Batch, config: Config, state: RunState, dist: Dist
) -> dict[str, float]:
    """Step 7: ppo_epochs x mini_batches optimizer updates; a non-finite one is skipped."""
    train, sums, n_updates, skipped = config.train, {}, 0, 0
    size, gen = batch.mask.shape[0], state.rollout_gen
    if config.model.gradient_checkpointing:
        policy.model.train()  # Hugging Face models checkpoint only in train mode
    try:
        for _ in range(train.ppo_epochs):
            order = torch.randperm(size, generator=gen, device=gen.device)
            for mini in order.chunk(train.mini_batches):
                metrics = optimizer_step(policy, optimizer, batch, mini, config, dist)
                batch = _after_update(batch, metrics, config, state)
                n_updates += 1
                for key, value in metrics.items():
                    if key != "applied":
                        sums[key] = sums.get(key, 0.0) + value
                if metrics["applied"]:
                    state.consecutive_bad = 0
                    continue
                skipped += 1
                state.consecutive_bad += 1
                if state.consecutive_bad >= train.max_bad_steps:
                    raise TrainingError(
                        f"{state.consecutive_bad} optimizer steps in a row had a non-finite loss "
                        f"or gradient (step {state.step}); stopping with the last good checkpoint intact"
                    )
    finally:
        policy.model.eval()
    metrics = {key: value / n_updates for key, value in sums.items()}
    metrics[SKIPPED_STEPS] = skipped
    return metrics


def _after_update(batch: Batch, metrics, config: Config, state: RunState) -> Batch:
    """The batch with the next optimizer step's loss, when the controller's rule moves after
    each optimizer step (`loss.control_rule=fixed_step`); else `batch`."""
    rule, entropy = _update_rule(config), metrics.get(CONTROL_UPDATE_ENTROPY, math.nan)
    if rule is None or not math.isfinite(entropy):
        return batch
    decision = rule(config.loss, state.control, entropy, state.step, config.train.steps)
    state.control = decision.state
    return dataclasses.replace(batch, loss=decision.loss)


def run_step(
    policy: Policy,
    worker: RolloutWorker,
    optimizer,
    config: Config,
    state: RunState,
    val_problems,
    dist: Dist,
) -> dict[str, Any]:
    """One row of metrics.jsonl: evaluate if due, collect, update (not on the last row), probe."""
    start = time.perf_counter()
    record: dict[str, Any] = {STEP: state.step}
    last = state.step == config.train.steps
    evaluating = config.eval.due(state.step, config.train.steps)
    deciding = evaluating and not last and config.train.stop_at_saturation
    before = state.copy() if deciding else None  # what a stop here checkpoints
    if evaluating:
        eval_gen = torch.Generator(policy.device).manual_seed(
            validation_seed(config.train.seed, state.step)
        )
        timeout_s = config.train.reward_timeout_s
        record |= evaluate(policy, worker, val_problems, config.eval, eval_gen, timeout_s, dist)
    batch, metrics = collect(policy, worker, config, state, dist)
    record |= metrics
    if evaluating:
        record |= _live_law(record, config, state, before, dist)
    if not last and state.early_stop is None:
        record |= update(policy, optimizer, batch, config, state, dist)
        record |= _probe(policy, batch, config, dist)
        _learn_control(config, state, record)
        worker.engine.sync_weights(policy.module, dist)
    elapsed = time.perf_counter() - start
    record[TIME_STEP_S] = elapsed
    record[TIME_TOKENS_PER_S] = float(dist.sum(batch.mask.sum())) / elapsed
    return record


def _live_law(record, config: Config, state: RunState, before: RunState | None, dist: Dist):
    """The `law/*` keys of an evaluation row (`live_law.live_law`). With `before` (the state
    before the row: train.stop_at_saturation is on and the row is not the last), sets
    `state.early_stop` when the run is saturated; rank 0's decision is every rank's."""
    min_gain = None if before is None else config.train.saturation_min_gain
    state.law_points, keys, verdict = live_law(state.law_points, record, min_gain)
    if before is not None:
        verdict = dist.broadcast_object(verdict)
    if verdict is not None:
        state.early_stop = EarlyStop(record[STEP], verdict["reason"], verdict["gain_left"], before)
    return keys


def _probe(policy: Policy, batch: Batch, config: Config, dist: Dist) -> dict[str, float]:
    """Step 8: entropy change on the probe states over this step's updates, and Lemma 1's.
    The model's body runs on the N probe responses; the logits of the S states before and
    after are made from the head's inputs and parameters, a block of states at a time."""
    if batch.probe is None:
        return {}
    states = batch.probe.states  # (N, T) bool
    responses = batch.rollout.select(slice(0, states.shape[0]))
    with torch.no_grad(), policy.forward_context():
        hidden = hidden_at(policy.model, responses, states)  # (S, H)
        after = HeadInputs(hidden, *head_parameters(policy.model))
        stats = probe_statistics_from_heads(
            batch.probe.before,
            after,
            states,
            config.train.temperature,
            logits_rows(policy.model, config.train.logits_mib),
            config.diagnostics.chunk_size,
        )
    return _token_means(stats, states.sum(), dist)


def _learn_control(config: Config, state: RunState, record: dict[str, Any]) -> None:
    """The controller's look at what the step's updates did (`ControlRule.learn`): the knob's
    value this step and the probe's entropy change over the updates (a global mean: every
    rank learns alike). Nothing without a controller, a rule that learns, or the probe."""
    if config.loss.entropy_target is None or DH_ACTUAL not in record:
        return
    learn = control_rule(config.loss).learn
    if learn is not None:
        value = record[CONTROL_VALUE]
        state.control = learn(config.loss, state.control, value, record[DH_ACTUAL])


def _floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}
