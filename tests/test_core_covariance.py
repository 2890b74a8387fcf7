"""token_covariance and token_covariance_pg against a Python loop."""

import torch

from entropy_rl.core import token_covariance, token_covariance_pg


def _batch(seed=0, b=4, t=6):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 5])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return logp, adv, mask


def _loop_reference(logp, weights, mask):
    cells = [(i, j) for i in range(mask.shape[0]) for j in range(mask.shape[1]) if mask[i, j]]
    mean_w = sum(weights[i][j] for i, j in cells) / len(cells)
    mean_l = sum(logp[i][j] for i, j in cells) / len(cells)
    out = torch.zeros_like(logp)
    for i, j in cells:
        out[i, j] = (weights[i][j] - mean_w) * (logp[i, j] - mean_l)
    return out


def test_covariance_matches_loop():
    logp, adv, mask = _batch()
    adv_tokens = adv[:, None].expand_as(logp)
    out = token_covariance(logp, adv, mask)
    torch.testing.assert_close(out, _loop_reference(logp, adv_tokens, mask))
    assert (out[mask == 0] == 0).all()
    # (B, T) advantages give the same as (B,) broadcast
    torch.testing.assert_close(token_covariance(logp, adv_tokens, mask), out)


def test_covariance_pg_matches_loop():
    logp, adv, mask = _batch(seed=1)
    weights = logp.exp() * adv[:, None]
    torch.testing.assert_close(
        token_covariance_pg(logp, adv, mask), _loop_reference(logp, weights, mask)
    )


def test_mean_is_batch_covariance_and_logp_is_detached():
    logp, adv, mask = _batch(seed=2)
    logp.requires_grad_(True)
    out = token_covariance(logp, adv, mask)
    assert not out.requires_grad
    valid = mask.bool()
    x = logp.detach()[valid]
    a = adv[:, None].expand_as(logp)[valid]
    expected = ((x - x.mean()) * (a - a.mean())).mean()
    torch.testing.assert_close(out.sum() / valid.sum(), expected)


def test_float32_input_gives_float32():
    logp, adv, mask = _batch()
    assert token_covariance(logp.float(), adv.float(), mask).dtype == torch.float32


def test_parts_centred_with_summed_sums_equal_the_whole_batch():
    """Rows split across ranks, each centred with the summed centering_sums of all parts,
    give the per-token covariances of the whole batch (the distributed selection's input)."""
    from entropy_rl.core import centering_sums

    logp, adv, mask = _batch(seed=3)
    parts = [(logp[:2], adv[:2], mask[:2]), (logp[2:, :5], adv[2:], mask[2:, :5])]
    total = sum(centering_sums(*part) for part in parts)
    for fn in (token_covariance, token_covariance_pg):
        whole = fn(logp, adv, mask)
        split = [fn(*part, sums=total) for part in parts]
        torch.testing.assert_close(split[0], whole[:2])
        torch.testing.assert_close(split[1], whole[2:, :5])
        assert torch.equal(fn(logp, adv, mask, sums=centering_sums(logp, adv, mask)), whole)
