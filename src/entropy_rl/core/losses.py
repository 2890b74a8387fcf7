"""Policy-gradient losses: PPO's clipped surrogate, Clip-Cov and KL-Cov (Cui et al., 2025, Sec. 4).

Per-token losses, with ratio r = exp(logp - old_logp) and advantage A:
- ppo:      L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))   (clip_high > clip_low is
            "clip-higher").
- clip_cov: the ppo loss, except for n = min(max(floor(clip_cov_ratio N), 1), #candidates)
            tokens drawn uniformly among the candidates (valid, not clipped by PPO,
            clip_cov_lb < cov_t < clip_cov_ub), whose loss is multiplied by 0: their gradient
            is exactly zero and they stay in the aggregation's denominator.
- kl_cov:   L = -A r for every token (no PPO clip); the k = max(1, floor(kl_cov_ratio N))
            tokens with the largest cov_t get + kl_cov_coef |logp - old_logp|.
- top_entropy: the ppo loss on the tokens whose entropy is at or above the
            (1 - top_entropy_quantile) quantile of the valid tokens' entropy, 0 on the others
            (which stay in the denominator): "Beyond the 80/20 rule" (arXiv 2506.01939), as
            TRL's `top_entropy_quantile`, with the quantile over the whole rollout batch.
- entropic: the ppo loss + entropic_alpha (-r |A|) on the tokens whose probability under
            the policy that sampled exceeds entropic_prob: EntroPIC (arXiv 2511.15248), its
            alpha set by the rule of `core.entropic`. Departures from its code: the tokens
            are selected by the sampling policy's probability over the whole batch (its code:
            the current one, per micro-batch). As in its code, the extra term is a mean over
            the selected tokens of each micro-batch, so it changes with the micro-batch size.
N is the number of valid tokens and cov_t the per-token covariance of `token_covariance`.

Departures from the paper and its reference code:
1. The selection is a separate function, `select_tokens`, and `policy_loss`
   accepts a precomputed selection. A trainer can then select once over the whole rollout
   batch (the paper's description) and apply the selection micro-batch by micro-batch; the
   reference code selects inside each micro-batch, which its authors call an approximation.
   Without a precomputed selection, `policy_loss` selects over the tensors it is given.
2. The KL-Cov penalty is zero at the first update of a rollout batch (logp = old_logp); it
   acts from the second mini-batch update on.
3. Optional `entropy_coef` adds the entropy-bonus baseline the paper compares against.

Each mode is a `LossMode` in the registry `LOSS_MODES`, registered where its per-token loss
is defined: that loss, its token selection (None for a mode that selects no tokens), the
metrics it logs, the knobs the entropy controller may turn in it, and the checks of its own
settings. `policy_loss`, the trainer, the controller and the TRL adapter ask the registry; a
new mode is one `register_loss_mode` call, from any module (docs/architecture.md shows one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial

import torch

from entropy_rl.core.covariance import token_covariance
from entropy_rl.core.masked import as_float, as_token_advantages, masked_mean
from entropy_rl.loss_config import AGG_MODES, ENTROPIC_RULE, Knob, PolicyLossConfig
from entropy_rl.registry import Registry

LOSS_KEY = "loss/policy"
"""The metric of the loss itself, logged by every mode."""
PPO_METRICS = ("ppo/clip_frac", "ppo/approx_kl")
"""The ratio's metrics, logged by every mode (the share PPO's clip is active on, and the KL
estimate), over the valid tokens."""


@dataclass(frozen=True)
class TokenTerms:
    """What a mode's per-token loss is built from, for one batch. Every tensor is (B, T)."""

    advantages: torch.Tensor  # (B, T) A, float
    log_ratio: torch.Tensor  # (B, T) logp - old_logp
    ratio: torch.Tensor  # (B, T) r = exp(log_ratio)
    surrogate: torch.Tensor  # (B, T) -A r
    clipped_surrogate: torch.Tensor  # (B, T) -A clip(r, 1 - clip_low, 1 + clip_high)
    clipped: torch.Tensor  # (B, T) bool: PPO's clip is active on a valid token
    mask: torch.Tensor  # (B, T) float: 1 on valid tokens


PerTokenLoss = Callable[
    [TokenTerms, "torch.Tensor | None", PolicyLossConfig],
    tuple[torch.Tensor, dict[str, torch.Tensor]],
]
"""(terms, selection, config) -> the per-token loss (B, T) and the mode's metrics. `selection`
is the float mask (B, T) of the selected valid tokens, or None for a mode without selection."""


@dataclass(frozen=True)
class TokenScores:
    """What a mode's token selection reads, each (B, T)."""

    cov: torch.Tensor
    """The per-token covariance of log pi and A (`token_covariance`, Theorem 2)."""
    entropy: torch.Tensor | None = None
    """The token entropy under the policy that sampled (None: not measured)."""
    log_prob: torch.Tensor | None = None
    """The sampled token's log-probability under the policy that sampled (None: not given)."""


TokenSelection = Callable[
    [TokenScores, torch.Tensor, PolicyLossConfig, "torch.Generator | None", "torch.Tensor | None"],
    torch.Tensor,
]
"""(scores, valid, config, generator, eligible) -> the selected tokens, bool (B, T). valid
(B, T) bool, with at least one valid token; eligible (B, T) bool or None: the tokens PPO did
not clip, when known (`policy_loss` passes them)."""


@dataclass(frozen=True)
class LossMode:
    """One policy loss: its math, whether it selects tokens, the metrics it logs, the knobs
    the controller may turn in it, and the checks of its own settings."""

    name: str
    """`loss.mode` / `PolicyLossConfig.mode`."""
    per_token: PerTokenLoss
    """The per-token loss and the mode's metrics (detached or not: `policy_loss` detaches)."""
    select: TokenSelection | None = None
    """The tokens the mode acts on, chosen once per batch (the trainer: over the whole rollout
    batch, from the old log-probs); None: the mode selects no tokens."""
    metrics: Mapping[str, str | None] = field(default_factory=dict)
    """The metrics `per_token` returns, each mapped to what its mean is over: None for the
    valid tokens, or the key of a share of them (a selection's `<mode>/frac`)."""
    knobs: tuple[Knob, ...] = ()
    """The fields that set this mode's strength, which `loss.entropy_control` may steer in
    it; the first is what `entropy_control: auto` steers (the entropy bonus when none)."""
    check: Callable[[PolicyLossConfig], None] | None = None
    """Raises ValueError, naming the field, for settings this mode cannot run with."""
    reads: tuple[str, ...] = ("entropy", "log_prob")
    """The optional `TokenScores` fields `select` reads besides `cov`: under torchrun the
    trainer gathers only these from every rank (a mode that does not say gets them all)."""

    def __post_init__(self) -> None:
        optional = [f.name for f in fields(TokenScores) if f.name != "cov"]
        unknown = [name for name in self.reads if name not in optional]
        if unknown:
            raise ValueError(
                f"loss mode {self.name!r} reads {unknown}: a selection reads only cov and "
                f"{', '.join(optional)} (TokenScores)"
            )

    @property
    def selects_tokens(self) -> bool:
        return self.select is not None


LOSS_MODES: Registry[LossMode] = Registry("loss mode")
"""The loss modes by name (read-only); add one with `register_loss_mode`."""


def register_loss_mode(mode: LossMode | str, **fields):
    """Add `mode` to `LOSS_MODES` (ValueError if its name is taken) and return it; or, given a
    name and `LossMode`'s other fields, a decorator that registers the per-token loss it
    decorates as that mode."""
    if isinstance(mode, LossMode):
        return LOSS_MODES.add(mode.name, mode)
    return LOSS_MODES.register(mode, partial(LossMode, mode, **fields))


def unregister_loss_mode(name: str) -> None:
    """Remove a mode added with `register_loss_mode` (tests; a built-in one stays removable)."""
    LOSS_MODES.remove(name)


def loss_mode(name: str) -> LossMode:
    """The registered mode `name`; ValueError listing the modes otherwise."""
    return LOSS_MODES.check(name, "mode")


# ---- the paper's modes ------------------------------------------------------------------


def _random_subset(candidates: torch.Tensor, n: int, generator: torch.Generator | None):
    """Flat indices of n of the True entries of `candidates`, drawn uniformly."""
    idx = candidates.flatten().nonzero().squeeze(1)  # (C,)
    device = generator.device if generator is not None else idx.device
    perm = torch.randperm(idx.numel(), generator=generator, device=device)
    return idx[perm[:n].to(idx.device)]


@register_loss_mode("ppo")
def _ppo_loss(terms: TokenTerms, selection, config: PolicyLossConfig):
    """PPO's clipped surrogate max(-A r, -A clip(r))."""
    return torch.maximum(terms.surrogate, terms.clipped_surrogate), {}


def _clip_cov_select(scores: TokenScores, valid, config, generator, eligible) -> torch.Tensor:
    """n = min(max(floor(ratio N), 1), #candidates) tokens drawn uniformly among the valid,
    eligible tokens with clip_cov_lb < cov_t < clip_cov_ub."""
    cov = scores.cov
    chosen = torch.zeros(cov.numel(), dtype=torch.bool, device=cov.device)
    candidates = valid & (cov > config.clip_cov_lb) & (cov < config.clip_cov_ub)
    if eligible is not None:
        candidates &= eligible.bool()
    n = min(max(math.floor(config.clip_cov_ratio * int(valid.sum())), 1), int(candidates.sum()))
    chosen[_random_subset(candidates, n, generator)] = True
    return chosen.view_as(valid)


def _check_clip_cov(config: PolicyLossConfig) -> None:
    if config.clip_cov_lb >= config.clip_cov_ub:
        raise ValueError(
            f"clip_cov_lb must be < clip_cov_ub, got {config.clip_cov_lb!r} >= {config.clip_cov_ub!r}"
        )


@register_loss_mode(
    "clip_cov",
    select=_clip_cov_select,
    metrics={"clip_cov/frac": None},
    knobs=(Knob("clip_cov_ratio", ratio=True),),
    check=_check_clip_cov,
    reads=(),
)
def _clip_cov_loss(terms: TokenTerms, selection: torch.Tensor, config: PolicyLossConfig):
    """The PPO loss with the selected tokens' loss multiplied by 0 (they stay in the mean)."""
    per_token = torch.maximum(terms.surrogate, terms.clipped_surrogate) * (1 - selection)
    return per_token, {"clip_cov/frac": masked_mean(selection, terms.mask)}


def _kl_cov_select(scores: TokenScores, valid, config, generator, eligible) -> torch.Tensor:
    """The k = max(1, floor(ratio N)) valid tokens of largest cov_t (deterministic up to ties)."""
    cov = scores.cov
    chosen = torch.zeros(cov.numel(), dtype=torch.bool, device=cov.device)
    k = max(1, math.floor(config.kl_cov_ratio * int(valid.sum())))
    ranked = cov.masked_fill(~valid, float("-inf")).flatten()  # (B*T,)
    chosen[torch.topk(ranked, k).indices] = True
    return chosen.view_as(valid)


@register_loss_mode(
    "kl_cov",
    select=_kl_cov_select,
    metrics={"kl_cov/frac": None, "kl_cov/abs_kl": "kl_cov/frac"},
    knobs=(Knob("kl_cov_coef"), Knob("kl_cov_ratio", ratio=True)),
    reads=(),
)
def _kl_cov_loss(terms: TokenTerms, selection: torch.Tensor, config: PolicyLossConfig):
    """-A r on every token (no clip), + kl_cov_coef |logp - old_logp| on the selected ones."""
    per_token = terms.surrogate + config.kl_cov_coef * terms.log_ratio.abs() * selection
    metrics = {
        "kl_cov/frac": masked_mean(selection, terms.mask),
        "kl_cov/abs_kl": masked_mean(terms.log_ratio.abs(), selection),
    }
    return per_token, metrics


QUANTILE_MAX_TOKENS = 2**24
"""The most values `torch.quantile` takes; above, the same interpolation from a sort."""


def entropy_quantile(entropy: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile of the values `entropy` (1-D), in float32, with torch.quantile's linear
    interpolation (TRL's `get_high_entropy_mask` takes it so), for any number of values."""
    values = entropy.float()
    if values.numel() <= QUANTILE_MAX_TOKENS:
        return torch.quantile(values, q)
    ordered = values.sort().values
    position = q * (ordered.numel() - 1)
    low = math.floor(position)
    high = min(low + 1, ordered.numel() - 1)
    return torch.lerp(ordered[low], ordered[high], position - low)


def _top_entropy_select(scores: TokenScores, valid, config, generator, eligible) -> torch.Tensor:
    """The valid tokens whose entropy is at or above the (1 - top_entropy_quantile) quantile
    of the valid tokens' entropy (ties at the threshold are all kept, as in TRL)."""
    if scores.entropy is None:
        raise ValueError("mode 'top_entropy' selects by token entropy: pass it (TokenScores)")
    threshold = entropy_quantile(scores.entropy[valid], 1.0 - config.top_entropy_quantile)
    return (scores.entropy.float() >= threshold) & valid


TOP_ENTROPY_MODE = "top_entropy"
"""The mode of TRL's `top_entropy_quantile` (the TRL adapter maps that option onto it)."""


@register_loss_mode(
    TOP_ENTROPY_MODE,
    select=_top_entropy_select,
    metrics={"top_entropy/frac": None},
    reads=("entropy",),
)
def _top_entropy_loss(terms: TokenTerms, selection: torch.Tensor, config: PolicyLossConfig):
    """The PPO loss on the selected tokens; 0 on the others, which stay in the mean."""
    per_token = torch.maximum(terms.surrogate, terms.clipped_surrogate) * selection
    return per_token, {"top_entropy/frac": masked_mean(selection, terms.mask)}


def _entropic_select(scores: TokenScores, valid, config, generator, eligible) -> torch.Tensor:
    """The valid tokens whose sampled probability exceeds `entropic_prob`."""
    if scores.log_prob is None:
        raise ValueError("mode 'entropic' selects by probability: pass it (TokenScores.log_prob)")
    return (scores.log_prob.float() > math.log(config.entropic_prob)) & valid


def _check_entropic(config: PolicyLossConfig) -> None:
    """alpha changes sign, so the 'pi' rule (a positive scale of the knob) cannot steer it."""
    if config.entropy_target is not None and config.control_rule != ENTROPIC_RULE:
        raise ValueError(
            f"mode 'entropic' with entropy_target needs control_rule={ENTROPIC_RULE!r} "
            f"(alpha changes sign), got {config.control_rule!r}"
        )


@register_loss_mode(
    "entropic",
    select=_entropic_select,
    metrics={"entropic/frac": None},
    knobs=(Knob("entropic_alpha"),),
    check=_check_entropic,
    reads=("log_prob",),
)
def _entropic_loss(terms: TokenTerms, selection: torch.Tensor, config: PolicyLossConfig):
    """EntroPIC (arXiv 2511.15248): PPO's loss plus alpha times the mean of -ratio |A| over
    the selected high-probability tokens (the ratio unclipped), a mean over the tensors given
    (a micro-batch), as in EntroPIC's code. alpha > 0 pushes those tokens' positive advantages
    up and negative ones down more (entropy falls), alpha < 0 the reverse."""
    ppo = torch.maximum(terms.surrogate, terms.clipped_surrogate)
    share = masked_mean(selection, terms.mask)  # of the tensors given: EntroPIC's divisor
    extra = -(terms.ratio * terms.advantages.abs()) * selection / share.clamp(min=1e-12)
    return ppo + config.entropic_alpha * extra, {"entropic/frac": share}


# ---- the loss -----------------------------------------------------------------------------


def select_tokens(
    scores: TokenScores,
    mask: torch.Tensor,
    config: PolicyLossConfig,
    generator: torch.Generator | None = None,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """The tokens `config.mode` acts on (Clip-Cov detaches, KL-Cov penalises, top_entropy
    trains), bool (B, T).

    scores: the tokens' covariance and entropy, (B, T) each; mask: (B, T). `eligible` (B, T)
    further restricts Clip-Cov's candidates (policy_loss passes the tokens PPO did not clip).
    Clip-Cov draws with `generator`; KL-Cov's top-k is deterministic up to ties. ValueError
    for a mode that selects no tokens.
    """
    mode = loss_mode(config.mode)
    if mode.select is None:
        selecting = ", ".join(repr(m.name) for m in LOSS_MODES.values() if m.selects_tokens)
        raise ValueError(f"token selection needs mode {selecting}, got {config.mode!r}")
    valid = mask.bool()
    if int(valid.sum()) == 0:
        return torch.zeros_like(valid)
    return mode.select(scores, valid, config, generator, eligible)


def aggregate_loss(
    values: torch.Tensor,
    mask: torch.Tensor,
    agg: str,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-token values (B, T) to a scalar over the valid tokens.

    - token_mean: sum of all valid values / number of valid tokens.
    - seq_mean_token_mean: mean over sequences of each sequence's mean over its tokens.
    - seq_mean_token_sum: mean over sequences of each sequence's sum over its tokens.
    Sequences without valid tokens are left out. `num_tokens` / `num_seqs` replace the local
    denominators with global ones (all micro-batches and ranks), so that summing the
    micro-batch losses gives the full-batch loss exactly.
    """
    m = mask.to(values.dtype)  # (B, T)
    if agg == "token_mean":
        denom = m.sum().clamp(min=1) if num_tokens is None else num_tokens
        return (values * m).sum() / denom
    seq_tokens = m.sum(-1)  # (B,)
    seq_values = (values * m).sum(-1)  # (B,)
    if agg == "seq_mean_token_mean":
        seq_values = seq_values / seq_tokens.clamp(min=1)
    elif agg != "seq_mean_token_sum":
        raise ValueError(f"agg must be one of {', '.join(AGG_MODES)}; got {agg!r}")
    present = (seq_tokens > 0).to(values.dtype)  # (B,)
    denom = present.sum().clamp(min=1) if num_seqs is None else num_seqs
    return (seq_values * present).sum() / denom


def _token_terms(log_probs, old_log_probs, advantages, mask, config: PolicyLossConfig):
    m = mask.to(as_float(log_probs).dtype)  # (B, T)
    adv = as_token_advantages(advantages, mask).to(m.dtype)  # (B, T)
    log_ratio = as_float(log_probs) - as_float(old_log_probs)  # (B, T)
    ratio = log_ratio.exp()
    surrogate = -adv * ratio  # (B, T)
    clipped_surrogate = -adv * ratio.clamp(1 - config.clip_low, 1 + config.clip_high)
    clipped = (clipped_surrogate > surrogate) & mask.bool()
    return TokenTerms(adv, log_ratio, ratio, surrogate, clipped_surrogate, clipped, m)


def policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: PolicyLossConfig,
    generator: torch.Generator | None = None,
    *,
    selection: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    num_tokens: float | torch.Tensor | None = None,
    num_seqs: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The policy loss of `config.mode` and its metrics (detached 0-dim tensors).

    log_probs, old_log_probs, mask: (B, T); advantages: (B,) or (B, T).
    selection: optional precomputed bool mask (B, T) from `select_tokens`
        (modes that select tokens only); without it, tokens are selected over this batch.
    entropy: per-token entropy (B, T), required when config.entropy_coef > 0.
    num_tokens, num_seqs: global denominators for the aggregation (see `aggregate_loss`).
    Metrics are means over this batch's valid tokens: `ppo/clip_frac`, `ppo/approx_kl`, the
    mode's own (`LossMode.metrics`) and `loss/policy`.
    """
    mode = loss_mode(config.mode)
    terms = _token_terms(log_probs, old_log_probs, advantages, mask, config)
    m = terms.mask
    metrics = {
        "ppo/clip_frac": masked_mean(terms.clipped.to(m.dtype), m).detach(),
        "ppo/approx_kl": masked_mean(terms.ratio - 1 - terms.log_ratio, m).detach(),
    }
    if not mode.selects_tokens:
        if selection is not None:
            raise ValueError(f"a token selection was given but mode {config.mode!r} selects none")
    else:
        if selection is None:
            cov = token_covariance(log_probs, terms.advantages, mask)
            scores = TokenScores(cov, entropy, log_probs.detach())
            selection = select_tokens(scores, mask, config, generator, ~terms.clipped)
        selection = (selection.bool() & mask.bool()).to(m.dtype)  # (B, T)
    per_token, own = mode.per_token(terms, selection, config)
    metrics |= {key: value.detach() for key, value in own.items()}

    loss = aggregate_loss(per_token, mask, config.agg, num_tokens, num_seqs)
    if config.entropy_coef > 0:
        if entropy is None:
            raise ValueError("config.entropy_coef > 0 needs the per-token entropy")
        loss = loss - config.entropy_coef * aggregate_loss(
            entropy, mask, config.agg, num_tokens, num_seqs
        )
    metrics[LOSS_KEY] = loss.detach()
    return loss, metrics


__all__ = [
    "AGG_MODES",
    "LOSS_KEY",
    "LOSS_MODES",
    "PPO_METRICS",
    "LossMode",
    "PolicyLossConfig",
    "TokenScores",
    "TokenTerms",
    "aggregate_loss",
    "loss_mode",
    "policy_loss",
    "register_loss_mode",
    "select_tokens",
    "unregister_loss_mode",
]
