"""The `top_entropy` loss mode (TRL's `top_entropy_quantile`, "Beyond the 80/20 rule", arXiv
2506.01939): its token selection equals TRL's masking on the same tensors, its loss is PPO's
on the selected tokens, and the trainer's selection does not depend on the micro-batches."""

import types

import pytest
import torch

from entropy_rl.core import (
    PolicyLossConfig,
    TokenScores,
    policy_loss,
    select_tokens,
    token_covariance,
)
from entropy_rl.core import losses as core_losses
from entropy_rl.runs.metrics_log import read_records
from entropy_rl.training import runner


def _entropies(seed: int, b: int = 6, t: int = 9, ties: bool = False):
    g = torch.Generator().manual_seed(seed)
    entropy = torch.rand(b, t, generator=g) * 2  # (B, T)
    if ties:  # many equal values, some at the threshold
        entropy = (entropy * 4).round() / 4
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # (B, T)
    return entropy, mask


def _trl_mask(entropy, mask, quantile):
    """TRL's own `GRPOTrainer.get_high_entropy_mask` in one process."""
    from trl import GRPOTrainer

    one_process = types.SimpleNamespace(
        pad_across_processes=lambda tensor, dim=0, pad_index=0: tensor,
        gather=lambda tensor: tensor,
    )
    trainer = types.SimpleNamespace(accelerator=one_process)
    return GRPOTrainer.get_high_entropy_mask(trainer, entropy, mask, 1 - quantile)


def _ours(entropy, mask, quantile):
    config = PolicyLossConfig(mode="top_entropy", top_entropy_quantile=quantile)
    return select_tokens(TokenScores(torch.zeros_like(entropy), entropy), mask, config)


@pytest.mark.parametrize("quantile", [0.05, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_the_selection_equals_trls_masking(quantile, ties):
    for seed in range(5):
        entropy, mask = _entropies(seed, ties=ties)
        ours = _ours(entropy, mask, quantile)
        assert torch.equal(ours, _trl_mask(entropy, mask, quantile))
        share = ours.sum() / mask.sum()
        assert share >= min(quantile, 1.0) - 1 / mask.sum()  # at least the quantile's share
        assert not (ours & ~mask.bool()).any()


def test_the_quantile_of_many_tokens_is_torch_quantiles(monkeypatch):
    """Above torch.quantile's limit the quantile comes from a sort, interpolated alike."""
    values = torch.rand(1001, generator=torch.Generator().manual_seed(0)) * 3
    expected = [torch.quantile(values, q) for q in (0.0, 0.13, 0.5, 0.8, 1.0)]
    monkeypatch.setattr(core_losses, "QUANTILE_MAX_TOKENS", 10)
    got = [core_losses.entropy_quantile(values, q) for q in (0.0, 0.13, 0.5, 0.8, 1.0)]
    torch.testing.assert_close(torch.stack(got), torch.stack(expected), rtol=0, atol=1e-6)


def test_the_loss_is_ppos_on_the_selected_tokens_only():
    entropy, mask = _entropies(1)
    g = torch.Generator().manual_seed(2)
    old = -torch.rand(mask.shape, generator=g, dtype=torch.float64) * 3
    logp = (old + 0.3 * torch.randn(mask.shape, generator=g, dtype=torch.float64)).requires_grad_()
    adv = torch.randn(mask.shape[0], generator=g, dtype=torch.float64)
    config = PolicyLossConfig(mode="top_entropy", top_entropy_quantile=0.3)
    loss, metrics = policy_loss(logp, old, adv, mask, config, entropy=entropy)
    chosen = _ours(entropy, mask, 0.3).double()  # (B, T)
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    per_token = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2)) * chosen
    expected = (per_token * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected)
    assert float(metrics["top_entropy/frac"]) == pytest.approx(float(chosen.sum() / mask.sum()))
    loss.backward()
    assert not logp.grad[(chosen == 0) & mask.bool()].any()  # no gradient off the selection
    assert logp.grad[chosen.bool()].abs().sum() > 0


def test_the_loss_without_a_selection_selects_by_the_entropy_it_is_given():
    entropy, mask = _entropies(3)
    logp = -torch.rand(mask.shape, dtype=torch.float64)
    adv = torch.randn(mask.shape[0], dtype=torch.float64)
    config = PolicyLossConfig(mode="top_entropy")
    _, metrics = policy_loss(logp, logp, adv, mask, config, entropy=entropy)
    given = _ours(entropy, mask, 0.2)
    assert float(metrics["top_entropy/frac"]) == pytest.approx(float(given.sum() / mask.sum()))
    with pytest.raises(ValueError, match="selects by token entropy"):
        policy_loss(logp, logp, adv, mask, config)
    scores = TokenScores(token_covariance(logp, adv, mask))
    with pytest.raises(ValueError, match="selects by token entropy"):
        select_tokens(scores, mask, config)


def test_trls_per_micro_batch_quantile_depends_on_the_micro_batch_our_batch_one_does_not():
    """verl #7829's ask: the same batch cut into micro-batches selects the same tokens. TRL
    takes its quantile inside each forward call (each micro-batch); the trainer takes it once
    over the whole rollout batch (`select_batch_tokens`), before any micro-batch exists."""
    entropy, mask = _entropies(4, b=8)
    whole = _trl_mask(entropy, mask, 0.2)
    halves = torch.cat([_trl_mask(entropy[i : i + 4], mask[i : i + 4], 0.2) for i in (0, 4)])
    assert not torch.equal(whole, halves)  # TRL's selection moves with the micro-batch size
    assert torch.equal(_ours(entropy, mask, 0.2), whole)


def test_a_run_selects_the_same_tokens_at_any_micro_batch_size(tmp_path, tiny_config, easy_reward):
    """Step 0's selection, on the same rollouts (the updates of later steps differ by the
    order of their sums)."""
    rows = {}
    for micro in (1, 4):  # 4: a micro-batch of 2 responses (16 per step, 2 mini-batches)
        config = tiny_config(
            "loss.mode=top_entropy", "train.steps=1", f"train.micro_batches={micro}"
        )
        runner.train(config, tmp_path / f"micro{micro}", show_progress=False)
        rows[micro] = read_records(tmp_path / f"micro{micro}" / "metrics.jsonl")[0]
    one, four = rows[1], rows[4]
    assert 0.15 <= one["top_entropy/frac"] < 1.0
    # the same tokens; the share is summed micro-batch by micro-batch, in float32
    assert one["top_entropy/frac"] == pytest.approx(four["top_entropy/frac"], rel=1e-6)
    assert one["loss/policy"] == pytest.approx(four["loss/policy"], rel=1e-5, abs=1e-7)
