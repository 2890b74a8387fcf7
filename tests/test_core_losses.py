"""policy_loss, the token selection and the aggregations against hand computations."""

import dataclasses
import math

import pytest
import torch

from entropy_rl.core import (
    PolicyLossConfig,
    TokenScores,
    aggregate_loss,
    check_loss_config,
    policy_loss,
    select_tokens,
    token_covariance,
)


def _batch(seed=0, b=6, t=8, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=torch.float64) * 4
    logp = old + spread * 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)
    adv = torch.randn(b, generator=g, dtype=torch.float64) * 2
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    return logp, old, adv, mask


def _unclipped(logp, old, adv, mask):
    per_token = -adv[:, None] * torch.exp(logp - old)
    return (per_token * mask).sum() / mask.sum()


def test_ppo_with_huge_clip_ranges_equals_unclipped():
    logp, old, adv, mask = _batch()
    config = PolicyLossConfig(clip_low=1e9, clip_high=1e9)
    loss, _ = policy_loss(logp, old, adv, mask, config)
    torch.testing.assert_close(loss, _unclipped(logp, old, adv, mask))


def test_ppo_clipping_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))
    old = torch.zeros(1, 4)
    mask = torch.ones(1, 4)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, metrics = policy_loss(logp, old, adv, mask, PolicyLossConfig())
    # A>0, r=1.5 -> clipped to 1.2: -1.2; A>0, r=0.5: max(-0.5, -0.8) = -0.5 (not clipped);
    # A<0, r=1.1: 1.1; A<0, r=0.7: max(0.7, 0.8) = 0.8 (clipped).
    expected = torch.tensor([-1.2, -0.5, 1.1, 0.8]).mean()
    torch.testing.assert_close(loss, expected)
    assert metrics["ppo/clip_frac"].item() == pytest.approx(0.5)


def test_kl_cov_with_zero_coef_equals_unclipped():
    logp, old, adv, mask = _batch(spread=3.0)
    config = PolicyLossConfig(mode="kl_cov", kl_cov_coef=0.0, kl_cov_ratio=0.5)
    loss, metrics = policy_loss(logp, old, adv, mask, config)
    torch.testing.assert_close(loss, _unclipped(logp, old, adv, mask))
    assert metrics["ppo/clip_frac"] > 0  # PPO would have clipped, KL-Cov did not


def test_kl_cov_penalises_top_k_covariance_tokens():
    logp, old, adv, mask = _batch(seed=3)
    config = PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.1, kl_cov_coef=2.0)
    loss, metrics = policy_loss(logp, old, adv, mask, config)
    cov = token_covariance(logp, adv, mask)
    n = int(mask.sum())
    k = max(1, math.floor(0.1 * n))
    top = sorted((cov[i, j].item(), i, j) for i, j in mask.nonzero().tolist())[-k:]
    penalty = sum(2.0 * abs((logp[i, j] - old[i, j]).item()) for _, i, j in top)
    expected = _unclipped(logp, old, adv, mask) + penalty / n
    torch.testing.assert_close(loss, expected)
    assert metrics["kl_cov/frac"].item() == pytest.approx(k / n)
    mean_abs = sum(abs((logp[i, j] - old[i, j]).item()) for _, i, j in top) / k
    assert metrics["kl_cov/abs_kl"].item() == pytest.approx(mean_abs)


def _clip_cov_batch():
    """Advantages large enough that several tokens fall inside the (1, 5) window."""
    logp, old, adv, mask = _batch(seed=4, b=8, t=10, spread=0.5)
    return logp, old, adv * 3, mask


def test_clip_cov_all_candidates_get_exactly_zero_gradient():
    logp, old, adv, mask = _clip_cov_batch()
    config = PolicyLossConfig(mode="clip_cov", clip_cov_ratio=1.0)
    logp = logp.clone().requires_grad_(True)
    loss, metrics = policy_loss(logp, old, adv, mask, config)
    loss.backward()

    # Hand computation of the candidates: valid, not clipped, 1 < cov < 5.
    cov = token_covariance(logp, adv, mask)
    ratio = torch.exp(logp.detach() - old)
    candidates, clipped = set(), set()
    for i, j in mask.nonzero().tolist():
        a, r = adv[i].item(), ratio[i, j].item()
        if -a * min(max(r, 0.8), 1.2) > -a * r:
            clipped.add((i, j))
        elif 1.0 < cov[i, j].item() < 5.0:
            candidates.add((i, j))
    assert len(candidates) >= 3 and clipped
    # PPO's clip already zeroes the gradient of clipped tokens; Clip-Cov zeroes the candidates.
    zero_grad = {(i, j) for i, j in mask.nonzero().tolist() if logp.grad[i, j] == 0}
    assert zero_grad == candidates | clipped
    assert metrics["clip_cov/frac"].item() == pytest.approx(len(candidates) / mask.sum().item())
    # Selected tokens stay in the denominator: the loss is the PPO loss with them zeroed.
    ppo_tokens = torch.maximum(-adv[:, None] * ratio, -adv[:, None] * ratio.clamp(0.8, 1.2))
    keep = torch.ones_like(mask)
    for i, j in candidates:
        keep[i, j] = 0
    torch.testing.assert_close(loss.detach(), (ppo_tokens * keep * mask).sum() / mask.sum())


def test_clip_cov_draws_n_tokens_with_generator():
    logp, _old, adv, mask = _clip_cov_batch()
    config = PolicyLossConfig(mode="clip_cov", clip_cov_ratio=0.03)
    cov = token_covariance(logp, adv, mask)
    draws = [
        select_tokens(TokenScores(cov), mask, config, torch.Generator().manual_seed(s))
        for s in (0, 0, 1, 2, 3)
    ]
    n = max(math.floor(0.03 * int(mask.sum())), 1)
    assert all(int(d.sum()) == n for d in draws)
    assert torch.equal(draws[0], draws[1])
    assert len({tuple(d.flatten().tolist()) for d in draws}) > 1
    window = (cov > 1) & (cov < 5) & mask.bool()
    assert all((d & ~window).sum() == 0 for d in draws)


def test_clip_cov_with_no_candidates_selects_nothing():
    logp, old, adv, mask = _batch()
    config = PolicyLossConfig(mode="clip_cov", clip_cov_lb=1e6, clip_cov_ub=1e7)
    loss, metrics = policy_loss(logp, old, adv, mask, config)
    ppo, _ = policy_loss(logp, old, adv, mask, PolicyLossConfig())
    torch.testing.assert_close(loss, ppo)
    assert metrics["clip_cov/frac"].item() == 0


def test_precomputed_selection_is_used():
    logp, old, adv, mask = _batch(seed=5)
    config = PolicyLossConfig(mode="kl_cov", kl_cov_ratio=0.2)
    loss, _ = policy_loss(logp, old, adv, mask, config)
    selection = select_tokens(TokenScores(token_covariance(logp, adv, mask)), mask, config)
    loss_pre, _ = policy_loss(logp, old, adv, mask, config, selection=selection)
    torch.testing.assert_close(loss, loss_pre)
    nothing = torch.zeros_like(mask, dtype=torch.bool)
    loss_none, _ = policy_loss(logp, old, adv, mask, config, selection=nothing)
    torch.testing.assert_close(loss_none, _unclipped(logp, old, adv, mask))
    with pytest.raises(ValueError, match="ppo"):
        policy_loss(logp, old, adv, mask, PolicyLossConfig(), selection=nothing)


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"])
def test_aggregation_by_hand(agg):
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    expected = {
        "token_mean": (1 + 2 + 3 + 4) / 4,
        "seq_mean_token_mean": (2.0 + 4.0) / 2,
        "seq_mean_token_sum": (6.0 + 4.0) / 2,
    }[agg]
    assert aggregate_loss(values, mask, agg).item() == pytest.approx(expected)


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"])
@pytest.mark.parametrize("mode", ["ppo", "kl_cov", "clip_cov"])
def test_micro_batches_with_global_denominators_sum_to_full_batch(agg, mode):
    logp, old, adv, mask = _batch(seed=6, b=8, spread=2.0)
    config = PolicyLossConfig(mode=mode, agg=agg, kl_cov_ratio=0.1, clip_cov_ratio=0.1)
    cov = token_covariance(old, adv, mask)
    sel = None
    if mode != "ppo":
        sel = select_tokens(TokenScores(cov), mask, config, torch.Generator().manual_seed(0))
    full, _ = policy_loss(logp, old, adv, mask, config, selection=sel)
    n_tok, n_seq = mask.sum(), (mask.sum(-1) > 0).sum()
    parts = [
        policy_loss(
            logp[s],
            old[s],
            adv[s],
            mask[s],
            config,
            selection=None if sel is None else sel[s],
            num_tokens=n_tok,
            num_seqs=n_seq,
        )[0]
        for s in (slice(0, 3), slice(3, 8))
    ]
    torch.testing.assert_close(sum(parts), full)


def test_entropy_bonus():
    logp, old, adv, mask = _batch()
    entropy = torch.rand_like(logp)
    base, _ = policy_loss(logp, old, adv, mask, PolicyLossConfig())
    loss, _ = policy_loss(logp, old, adv, mask, PolicyLossConfig(entropy_coef=0.1), entropy=entropy)
    torch.testing.assert_close(loss, base - 0.1 * (entropy * mask).sum() / mask.sum())
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(logp, old, adv, mask, PolicyLossConfig(entropy_coef=0.1))


def test_metrics_are_detached_scalars():
    logp, old, adv, mask = _batch()
    logp.requires_grad_(True)
    for mode in ("ppo", "clip_cov", "kl_cov"):
        _, metrics = policy_loss(logp, old, adv, mask, PolicyLossConfig(mode=mode))
        for key, value in metrics.items():
            assert isinstance(value, torch.Tensor) and value.dim() == 0, key
            assert not value.requires_grad, key


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "grpo"}, "mode"),
        ({"agg": "mean"}, "agg"),
        ({"mode": "clip_cov", "clip_cov_lb": 5.0, "clip_cov_ub": 5.0}, "clip_cov_lb"),
        ({"clip_cov_ratio": 1.5}, "clip_cov_ratio"),
        ({"kl_cov_ratio": -0.1}, "kl_cov_ratio"),
        ({"kl_cov_coef": -1.0}, "kl_cov_coef"),
        ({"clip_low": -0.1}, "clip_low"),
        ({"entropy_coef": float("nan")}, "entropy_coef"),
        ({"clip_high": "0.2"}, "clip_high"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        check_loss_config(PolicyLossConfig(**kwargs))  # construction checks types and ranges


def test_config_is_frozen():
    config = PolicyLossConfig()
    with pytest.raises(AttributeError):
        config.mode = "kl_cov"


def test_a_mode_names_only_scores_that_exist():
    from entropy_rl.core.losses import LossMode

    with pytest.raises(ValueError, match="reads only cov and entropy, log_prob"):
        LossMode("mine", per_token=lambda terms, selection, config: (terms.surrogate, {}),
                 reads=("advantage",))  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "reads"),
    [("clip_cov", ()), ("kl_cov", ()), ("top_entropy", ("entropy",)), ("entropic", ("log_prob",))],
)
def test_the_trainer_gathers_only_the_scores_a_mode_reads(monkeypatch, mode, reads):
    """`select_batch_tokens` hands the selection cov and the scores the mode names, and no
    more (under torchrun each is an all-gather)."""
    from entropy_rl.core import losses
    from entropy_rl.core.losses import TokenScores, loss_mode
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.trainer import select_batch_tokens

    assert loss_mode(mode).reads == reads
    seen, real_mode = [], loss_mode
    real = loss_mode(mode).select

    def spy(scores, *rest):
        seen.append(scores)
        return real(scores, *rest)

    spied = dataclasses.replace(loss_mode(mode), select=spy)
    monkeypatch.setattr(
        losses, "loss_mode", lambda name: spied if name == mode else real_mode(name)
    )
    torch.manual_seed(0)
    full = TokenScores(torch.randn(4, 6), torch.rand(4, 6), -torch.rand(4, 6) * 0.01)
    config = PolicyLossConfig(mode=mode)
    select_batch_tokens(full, torch.ones(4, 6), config, torch.Generator().manual_seed(0), Dist())
    (given,) = seen
    assert torch.equal(given.cov, full.cov)
    for name in ("entropy", "log_prob"):
        assert (getattr(given, name) is not None) == (name in reads), name
