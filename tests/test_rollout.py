"""Scoring responses again (`response_logits`): the float32 final projection under bf16
autocast, which the entropy diagnostics read; the same logits at chosen positions from the
head's inputs there (`hidden_at`, the probe's); `response_scores`, log-probs and entropy
without (B, T, V) logits; the sampler's token draws."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from entropy_rl.config import ModelConfig
from entropy_rl.core import entropy_change_first_order, token_entropy, token_log_probs
from entropy_rl.training.models import build_model
from entropy_rl.training.rollout import (
    HeadInputs,
    Rollout,
    head_parameters,
    hidden_at,
    response_logits,
    response_scores,
)

V, B, P, T = 64, 6, 4, 8  # vocabulary, responses, prompt columns, response columns


def _model(dtype: str = "float32"):
    shape = ModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, init_std=0.1, dtype=dtype
    )
    return build_model(shape, V, max_positions=32, seed=0).eval()


def _rollout() -> Rollout:
    g = torch.Generator().manual_seed(1)
    response_mask = torch.ones(B, T, dtype=torch.long)
    response_mask[1, 5:] = 0
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[2, :2] = 0  # left padding
    return Rollout(
        torch.randint(3, V, (B, P), generator=g),
        prompt_mask,
        torch.randint(3, V, (B, T), generator=g),
        response_mask,
    )


@torch.no_grad()
def _logits(model, rollout, autocast: bool, float32_head: bool) -> torch.Tensor:
    """(B, T, V), under a CPU bf16 autocast when asked (as `Policy.forward_context` does
    on a GPU)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return response_logits(model, rollout, float32_head=float32_head)


def test_float32_head_under_bf16_autocast_gives_float32_logits_of_a_float32_projection():
    model, rollout = _model(), _rollout()
    exact = _logits(model, rollout, autocast=False, float32_head=False)  # (B, T, V)
    assert torch.equal(_logits(model, rollout, autocast=False, float32_head=True), exact)
    bf16 = _logits(model, rollout, autocast=True, float32_head=False)
    assert bf16.dtype == torch.bfloat16  # the autocast is real: the plain head is bf16
    logits = _logits(model, rollout, autocast=True, float32_head=True)
    assert logits.dtype == torch.float32
    assert "forward" not in vars(model.get_output_embeddings())  # the swap is undone
    # the projection itself is float32: the bf16 body's last hidden state times the weight
    attention = torch.cat([rollout.prompt_mask, rollout.response_mask], 1)  # (B, P+T)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model.get_decoder()(
            input_ids=torch.cat([rollout.prompt_ids, rollout.response_ids], 1),
            attention_mask=attention,
            position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        ).last_hidden_state[:, P - 1 : -1]  # (B, T, H)
    projected = F.linear(hidden.float(), model.get_output_embeddings().weight)
    torch.testing.assert_close(logits, projected, rtol=1e-6, atol=1e-6)
    # close to the pure float32 logits (the body's bf16 matmuls are the difference)
    torch.testing.assert_close(logits, exact, rtol=0.0, atol=0.05 * float(exact.abs().max()))
    torch.testing.assert_close(token_entropy(logits), token_entropy(exact), rtol=0, atol=1e-2)


def test_lemma1_from_a_float32_head_under_autocast_matches_float32():
    """A small change of the final norm: its logit change is below bf16's resolution, so
    only a float32 projection sees it (the claim Lemma 1 is checked on)."""
    model, rollout = _model(), _rollout()
    before = {
        (a, f): _logits(model, rollout, a, f)
        for a, f in [(False, False), (True, True), (True, False)]
    }
    with torch.no_grad():
        model.get_decoder().norm.weight.mul_(1 + 1e-3)
    after = {key: _logits(model, rollout, *key) for key in before}
    lemma1 = {
        key: entropy_change_first_order(before[key].float(), after[key].float()) for key in before
    }
    exact = lemma1[(False, False)]  # (B, T)
    scale = float(exact.abs().max())
    assert float((lemma1[(True, True)] - exact).abs().max()) < 0.05 * scale
    assert float((lemma1[(True, False)] - exact).abs().max()) > 0.2 * scale  # a bf16 head misses it


def test_float32_head_carries_gradients_and_keeps_float64():
    model, rollout = _model(), _rollout()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = response_logits(model, rollout, float32_head=True)
    token_entropy(logits).sum().backward()
    grad = model.get_output_embeddings().weight.grad
    assert grad is not None and grad.dtype == torch.float32 and grad.abs().sum() > 0
    double = _model().double()
    assert _logits(double, rollout, autocast=False, float32_head=True).dtype == torch.float64


def test_float32_head_needs_a_linear_output_embedding():
    model = _model()
    model.set_output_embeddings(torch.nn.Identity())
    with pytest.raises(TypeError, match="Linear"):
        response_logits(model, _rollout(), float32_head=True)


ROWS = torch.tensor([0, 0, 1, 1, 2, 5, 5])  # (S,) responses, row-major with POSITIONS
POSITIONS = torch.tensor([0, 7, 0, 4, 3, 1, 7])  # (S,) response positions


def _picked_logits(model, rollout, temperature: float = 1.0) -> torch.Tensor:
    """The probe's logits (S, V) at (ROWS, POSITIONS): the head's inputs there (`hidden_at`)
    projected with its parameters (`head_parameters`)."""
    keep = torch.zeros(rollout.response_ids.shape, dtype=torch.bool)  # (B, T)
    keep[ROWS, POSITIONS] = True
    states = HeadInputs(hidden_at(model, rollout, keep), *head_parameters(model))
    return states.logits(slice(None), temperature)  # (S, V)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_probe_logits_are_the_rows_of_the_full_float32_logits(autocast, temperature):
    model, rollout = _model(), _rollout()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        full = response_logits(model, rollout, temperature, float32_head=True)  # (B, T, V)
        picked = _picked_logits(model, rollout, temperature)  # (S, V)
    assert picked.dtype == torch.float32 and picked.shape == (len(ROWS), V)
    torch.testing.assert_close(picked, full[ROWS, POSITIONS], rtol=1e-6, atol=1e-6)
    assert "forward" not in vars(model.get_output_embeddings())  # the swap is undone


class _EveryColumn(torch.nn.Module):
    """A model whose head sees every column (it ignores `logits_to_keep`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **kwargs):
        return self.inner(**{**kwargs, "logits_to_keep": 0})


def test_probe_logits_hold_when_the_head_sees_every_column():
    model, rollout = _model(), _rollout()
    with torch.no_grad():
        full = response_logits(model, rollout, float32_head=True)  # (B, T, V)
        picked = _picked_logits(_EveryColumn(model), rollout)  # (S, V)
    torch.testing.assert_close(picked, full[ROWS, POSITIONS], rtol=1e-6, atol=1e-6)


# ---- response_scores: log-probs and entropy, whole or a block of positions at a time ---


def _scores_and_grads(rows, autocast: bool, temperature: float, entropy: bool = True):
    """log-probs, entropy and the gradient of a weighted sum of them wrt every parameter."""
    model, rollout = _model(), _rollout()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        log_probs, ent, _ = response_scores(model, rollout, temperature, entropy, rows)
    g = torch.Generator().manual_seed(5)
    total = (log_probs * torch.randn(B, T, generator=g)).sum()
    if entropy:
        total = total + (ent * torch.randn(B, T, generator=g)).sum()
    total.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return log_probs.detach(), None if ent is None else ent.detach(), grads


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_scores_in_blocks_equal_the_whole_logits_and_their_gradients(
    autocast, temperature
):
    """A block of 5 positions at a time (backward makes each block's logits again) against
    the whole (B, T, V) logits and autograd through them; and the whole path equals
    token_log_probs / token_entropy of response_logits bit for bit."""
    whole_lp, whole_h, whole_g = _scores_and_grads(None, autocast, temperature)
    block_lp, block_h, block_g = _scores_and_grads(5, autocast, temperature)
    torch.testing.assert_close(block_lp, whole_lp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(block_h, whole_h, rtol=1e-5, atol=1e-5)
    for mine, ref in zip(block_g, whole_g, strict=True):
        # Under bf16 autocast the two paths round the matrix products' outputs at different
        # places: they agree to bf16's resolution (2^-7) of the gradient's scale, not to
        # float32's. On a 2-core EPYC without AVX-512 (2026-12-03) the largest gap was 3.1e-3
        # of the scale at temperature 1 (below 2e-7 at 0.7); earlier machines met 1e-4.
        scale = ref.abs().max().item() if autocast else 0.0
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=max(1e-5, 2**-7 * scale))
    model, rollout = _model(), _rollout()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = response_logits(model, rollout, temperature, float32_head=True)  # (B, T, V)
        lp, h, _ = response_scores(model, rollout, temperature, True, B * T)
    assert torch.equal(lp, token_log_probs(logits, rollout.response_ids))
    assert torch.equal(h, token_entropy(logits))


def test_response_scores_without_entropy_and_kept_hidden_states():
    _, no_h, _ = _scores_and_grads(3, autocast=False, temperature=1.0, entropy=False)
    assert no_h is None
    model, rollout = _model(), _rollout()
    keep = torch.zeros(2, T, dtype=torch.bool)
    keep[0, 1], keep[1, 4], keep[1, 6] = True, True, True
    with torch.no_grad():
        _, _, kept = response_scores(model, rollout, keep=keep)  # (3, H)
        full = response_logits(model, rollout, float32_head=True)  # (B, T, V)
        head = model.get_output_embeddings().weight
        assert torch.equal(hidden_at(model, rollout.select(slice(0, 2)), keep), kept)
        weight, bias = head_parameters(model, copy=True)
    assert kept.shape == (3, 64) and bias is None and weight.data_ptr() != head.data_ptr()
    torch.testing.assert_close(kept @ weight.T, full[:2][keep], rtol=1e-5, atol=1e-6)
    assert "forward" not in vars(model.get_output_embeddings())  # the swap is undone


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_draws_into_kept_buffers_are_torch_multinomial_bit_for_bit(temperature):
    """The sampler's draw (two (B, V) buffers per rollout) picks the tokens that
    multinomial(softmax(logits / temperature), 1) picks from the same generator state, over
    successive draws; non-finite logits are refused as multinomial refuses them."""
    from entropy_rl.training.rollout.sampler import _Draws

    draw, g = _Draws(), torch.Generator().manual_seed(0)
    mine, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(5):
        logits = torch.randn(16, 3000, generator=g) * 4  # (B, V)
        expected = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=ref)
        assert torch.equal(draw(logits, temperature, False, mine), expected.squeeze(-1))
    assert torch.equal(draw(logits, temperature, True, mine), logits.argmax(-1))
    logits[3, 5] = float("nan")
    with pytest.raises(RuntimeError, match="nan"):
        draw(logits, temperature, False, mine)


def _first_above(cdf_row: list[float], threshold: float) -> int:
    for index, value in enumerate(cdf_row):
        if value > threshold:
            return index
    return len(cdf_row) - 1


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_inverse_cdf_draw_matches_a_slow_reference(temperature):
    """Each row's token is the first whose float64 cumulative probability exceeds u times
    the row's total, u the row's one uniform number from the generator (read again from a
    copy of it), over successive draws; the generator moves by exactly one number a row."""
    from entropy_rl.training.rollout.sampler import _Draws

    draw, g = _Draws("inverse_cdf"), torch.Generator().manual_seed(0)
    mine, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(5):
        logits = torch.randn(16, 3000, generator=g) * 4  # (B, V)
        probs = torch.softmax(logits.float() / temperature, -1).double()
        u = torch.rand((16, 1), generator=ref, dtype=torch.float64)
        expected = []
        for row in range(16):
            cdf = list(itertools.accumulate(probs[row].tolist()))
            expected.append(_first_above(cdf, float(u[row]) * cdf[-1]))
        assert draw(logits, temperature, False, mine).tolist() == expected
        assert torch.equal(mine.get_state(), ref.get_state())
    assert torch.equal(draw(logits, temperature, True, mine), logits.argmax(-1))
    logits[3, 5] = float("nan")
    with pytest.raises(RuntimeError, match="nan"):
        draw(logits, temperature, False, mine)


def test_inverse_cdf_draw_has_the_softmax_distribution():
    """200,000 draws from one row: the frequencies pass a chi-square test against
    softmax(logits / T) (p > 0.001 at the fixed seed), and a token of probability 0 is
    never drawn."""
    from entropy_rl.training.rollout.sampler import _Draws

    logits = torch.tensor([[2.0, -float("inf"), 0.5, 1.0, -1.0, 0.0]]).expand(200_000, -1)
    counts = torch.bincount(
        _Draws("inverse_cdf")(logits, 0.8, False, torch.Generator().manual_seed(3)), minlength=6
    )
    probs = torch.softmax(logits[0] / 0.8, -1).double()
    assert counts[1] == 0
    seen = probs > 0
    expected = probs[seen] * 200_000
    chi2 = float(((counts[seen].double() - expected) ** 2 / expected).sum())
    assert chi2 < 18.47  # the 0.999 quantile of chi-square with 4 degrees of freedom


def test_an_unknown_sampling_method_is_refused():
    from entropy_rl.training.rollout.sampler import _Draws

    with pytest.raises(ValueError, match="sampling must be one of multinomial, inverse_cdf"):
        _Draws("gumbel")


def test_a_model_that_changes_its_logits_after_the_head_is_refused():
    """Soft-capping (Gemma 2) or a logit scale (Cohere) would be missed by scoring from the
    head's projection: such a model is refused with a config error naming it."""
    from entropy_rl.config import ConfigError
    from entropy_rl.training.rollout import logits_post_processing
    from entropy_rl.training.runner import require_plain_logits

    model = _model()
    assert logits_post_processing(model) is None
    require_plain_logits(model, "plain")
    model.config.final_logit_softcapping = 30.0
    assert logits_post_processing(model) == "final_logit_softcapping=30.0"
    with pytest.raises(ConfigError, match=r"final_logit_softcapping=30\.0"):
        require_plain_logits(model, "capped")
    model.config.final_logit_softcapping, model.config.logit_scale = None, 0.0625
    assert logits_post_processing(model) == "logit_scale=0.0625"
