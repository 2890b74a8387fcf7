"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2` (gloo, CPU).

For each loss mode, one rollout batch of B responses is split over the ranks (each keeps
its rows, cut to its own longest response) and trained for `mini_batches` optimizer steps
with the trainer's own `select_batch_tokens` and `optimizer_step`. Rank 0 also takes the step
in a single process on the whole batch, with the same global mini-batches, with 1 and
with 2 micro-batches, and saves everything to OUT/<strategy> for the test to compare, for
each strategy named (ddp,fsdp: one after the other in the one job). It also saves
and reloads a checkpoint with the runner's functions and checks one more step agrees, and
takes the entropy controller's decision on every rank from its own rows.

The model runs in float64 and the optimizer is SGD with momentum, so the comparisons are tight: Adam's
first step is about lr * sign(g), which would amplify float noise in tiny gradients.
"""

import sys
from pathlib import Path

import torch

from entropy_rl.config import ModelConfig, load_config
from entropy_rl.core import (
    ControlState,
    TokenScores,
    centering_sums,
    token_covariance,
    token_log_probs,
)
from entropy_rl.core.control import control_step
from entropy_rl.runs.checkpoint import find_checkpoint
from entropy_rl.training import runner
from entropy_rl.training.distributed import Dist, init_distributed, shutdown, wrap_model
from entropy_rl.training.models import build_model, build_tokenizer, load_pretrained
from entropy_rl.training.policy import Policy
from entropy_rl.training.rollout import Rollout, response_logits
from entropy_rl.training.run_state import RunState
from entropy_rl.training.trainer import (
    Batch,
    _token_means,
    optimizer_step,
    select_batch_tokens,
)

B, P, T = 8, 3, 7  # responses, prompt columns, response columns
WORLD = 2  # ranks of the torchrun job; the single-process reference uses its mini-batches
ALPHABET = "0123456789+="
MODES = ("ppo", "clip_cov", "kl_cov")
BLOCKS = "train.logits_mib=1e-6"
"""Logits made one position at a time (`core.head_token_scores`)."""


def make_config(mode: str, micro_batches: int, strategy: str = "ddp", *extra: str):
    return load_config(
        None,
        [
            f"loss.mode={mode}",
            "loss.clip_cov_ratio=0.2",
            "loss.clip_cov_lb=0.0",  # a window random tiny models' covariances fall in
            "loss.kl_cov_ratio=0.2",
            "train.prompts_per_step=2",
            "train.group_size=4",
            "train.mini_batches=2",
            f"train.micro_batches={micro_batches}",
            f"distributed.strategy={strategy}",
            *extra,
        ],
    )


def make_model(vocab: int) -> torch.nn.Module:
    shape = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    return build_model(shape, vocab, max_positions=32, seed=0).double().eval()


def make_rollout(vocab: int) -> tuple[Rollout, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    prompt_ids = torch.randint(3, vocab, (B, P), generator=g)  # (B, P)
    response_ids = torch.randint(3, vocab, (B, T), generator=g)  # (B, T)
    lengths = torch.tensor([7, 2, 5, 3, 4, 1, 6, 2])  # rank 1's rows are at most 6 long
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T)
    advantages = torch.randn(B, generator=g, dtype=torch.float64)  # (B,)
    rollout = Rollout(prompt_ids, torch.ones_like(prompt_ids), response_ids * mask, mask)
    return rollout, advantages


def own_part(rollout, advantages, old, rows):
    """This rank's rows, cut to its longest response (as its sampler would have made them)."""
    width = int(rollout.response_mask[rows].sum(-1).max())
    part = rollout.select(rows)
    part = Rollout(
        part.prompt_ids,
        part.prompt_mask,
        part.response_ids[:, :width],
        part.response_mask[:, :width],
    )
    return part, advantages[rows], old[rows, :width]


def global_minis(world: int, mini_batches: int) -> list[torch.Tensor]:
    """Global mini-batch k = every rank's k-th chunk of its rows."""
    blocks = torch.arange(B).chunk(world)
    return [torch.cat([b.chunk(mini_batches)[k] for b in blocks]) for k in range(mini_batches)]


def full_weights(policy: Policy, dist: Dist) -> dict[str, torch.Tensor]:
    if not dist.active:
        return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(policy.module, options=StateDictOptions(full_state_dict=True))
    return {k: v.detach().clone() for k, v in weights.items()}  # DDP's share the parameters


def train_step(mode: str, micro_batches: int, dist: Dist, strategy: str = "ddp", *extra: str):
    """Selection, losses and weights after one rollout batch's mini-batch updates."""
    config = make_config(mode, micro_batches, strategy, *extra)
    tokenizer = build_tokenizer(ALPHABET)
    model = make_model(len(tokenizer))
    rollout, advantages = make_rollout(len(tokenizer))
    with torch.no_grad():
        old = token_log_probs(response_logits(model, rollout), rollout.response_ids)  # (B, T)
    rows = torch.arange(B).chunk(dist.world_size)[dist.rank]
    part, adv, part_old = own_part(rollout, advantages, old, rows)
    mask = part.response_mask
    trainable = wrap_model(model, dist)
    optimizer = torch.optim.SGD(trainable.parameters(), lr=0.5, momentum=0.9)
    sums = dist.sum(centering_sums(part_old, adv, mask))  # (4,) global
    cov = token_covariance(part_old, adv, mask, sums)  # (b, T)
    selection = None
    if mode != "ppo":
        generator = torch.Generator().manual_seed(3)
        selection = select_batch_tokens(TokenScores(cov), mask, config.loss, generator, dist)
    batch = Batch(part, adv, part_old, None, selection, config.loss)
    policy = Policy(model, tokenizer, trainable=None if trainable is model else trainable)
    losses = []
    for mini in global_minis(WORLD, config.train.mini_batches):
        local = torch.tensor([i - int(rows[0]) for i in mini.tolist() if i in rows.tolist()])
        losses.append(optimizer_step(policy, optimizer, batch, local, config, dist)["loss/policy"])
    gathered = None if selection is None else dist.gather_rows(selection)
    return (
        policy,
        optimizer,
        batch,
        config,
        {
            "losses": losses,
            "selection": gathered,
            "weights": full_weights(policy, dist),
        },
    )


def control_decisions(dist: Dist) -> torch.Tensor:
    """The entropy controller's decision, the trainer's way, on every rank from its own rows'
    entropy (a token mean over every rank's rows, then `control_step`): (W, 2), each rank's
    scale and KL-Cov ratio."""
    config = load_config(
        None,
        ["loss.mode=kl_cov", "loss.entropy_control=kl_cov_ratio", "loss.entropy_target=0.5"],
    )
    rollout, _ = make_rollout(len(ALPHABET) + 3)
    entropy = torch.rand(B, T, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    rows = torch.arange(B).chunk(dist.world_size)[dist.rank]
    mask = rollout.response_mask[rows].double()  # (b, T)
    local = {"entropy/mean": (entropy[rows] * mask).sum() / mask.sum()}
    measured = _token_means(local, mask.sum(), dist)["entropy/mean"]
    decision = control_step(config.loss, ControlState(), measured, 3, 10)
    mine = [decision.metrics["control/scale"], decision.loss.kl_cov_ratio]
    return dist.gather_rows(torch.tensor([mine], dtype=torch.float64))


def checkpoint_round_trip(policy, optimizer, batch, config, dist, out: Path) -> dict:
    """Save with the runner, reload into a fresh (wrapped) model, take one more step on
    both; the weights must agree."""
    runner._save(out / "run", policy, optimizer, RunState.fresh(0, dist.rank), config, dist)
    saved_dir = find_checkpoint(out / "run")
    model, tokenizer = load_pretrained(saved_dir / "model")
    trainable = wrap_model(model.double().eval(), dist)
    restored_opt = torch.optim.SGD(trainable.parameters(), lr=0.5, momentum=0.9)
    restored = Policy(model, tokenizer, trainable=None if trainable is model else trainable)
    saved = torch.load(saved_dir / "trainer_state.pt", weights_only=True)
    runner._load_optimizer(restored, restored_opt, saved["optimizer"], dist)
    mini = torch.arange(batch.mask.shape[0])
    for p, o in ((policy, optimizer), (restored, restored_opt)):
        optimizer_step(p, o, batch, mini, config, dist)
    return {"original": full_weights(policy, dist), "restored": full_weights(restored, dist)}


def single_process_results() -> dict:
    """The single-process references, which no strategy changes."""
    results = {"control/single": control_decisions(Dist())}
    for mode in MODES:
        results[f"{mode}/single"] = train_step(mode, 1, Dist())[-1]
        results[f"{mode}/single_micro2"] = train_step(mode, 2, Dist())[-1]
    return results


def main(strategies: list[str], out: Path) -> None:
    """Each strategy in turn in the one job (one start-up of the ranks, not one per
    strategy): its results, with the single-process references, in OUT/<strategy>/results.pt."""
    dist = init_distributed(make_config("ppo", 1, strategies[0]).distributed)
    torch.set_num_threads(1)
    single = single_process_results() if dist.is_main else {}
    for strategy in strategies:
        dist = init_distributed(make_config("ppo", 1, strategy).distributed)  # joined: as is
        assert dist.strategy == strategy
        results, folder = {}, out / strategy
        folder.mkdir(parents=True, exist_ok=True)
        for mode in MODES:
            policy, optimizer, batch, config, results[mode] = train_step(mode, 2, dist, strategy)
            if mode == "kl_cov":
                results["checkpoint"] = checkpoint_round_trip(
                    policy, optimizer, batch, config, dist, folder
                )
        # the output head in blocks of one position (train.logits_mib tiny), backward recomputing
        results["kl_cov/blocks"] = train_step("kl_cov", 2, dist, strategy, BLOCKS)[-1]
        results["control"] = control_decisions(dist)
        if dist.is_main:
            torch.save({**results, **single}, folder / "results.pt")
        dist.barrier()
    shutdown(dist)


if __name__ == "__main__":
    main(sys.argv[1].split(","), Path(sys.argv[2]))
