"""Clip-Cov and KL-Cov for TRL's `GRPOTrainer`, plus an entropy-law logging callback.

What this adds to TRL (tested with TRL 1.16):
- `EntropyGRPOTrainer`: a `GRPOTrainer` whose policy loss can be Clip-Cov or KL-Cov
  (Cui et al. 2025, Sec. 4), computed by `entropy_rl.core.policy_loss`. It is configured
  by the constructor keyword `entropy_config: PolicyLossConfig`; with mode 'ppo' (the
  default), no `entropy_coef` and no `entropy_target`, TRL's own loss runs untouched.
  With `entropy_target`, the entropy controller (`entropy_rl.core.control`) sets the
  knob's strength at every optimizer step from the entropy of the step's first
  micro-batch (a mean over every rank's valid tokens, so every rank decides alike) and
  logs the `control/*` metrics; its target schedule runs over `max_steps`. A rule that
  moves after each optimizer step (`control_rule='fixed_step'`) measures the entropy over
  the step's micro-batches and every rank, as TRL's rule does. The controller's state is not
  in TRL's checkpoints (a resumed run restarts it at scale 1), but for TRL's own rule below.
- TRL's own entropy options with our loss modes. With a mode other than 'ppo' (or a bonus or
  a target of ours), TRL's loss does not run, so its options are carried into
  `entropy_config` instead of being lost: `use_adaptive_entropy` becomes the 'fixed_step'
  rule on the bonus with TRL's `entropy_target`, `entropy_coef` (the start),
  `entropy_coef_delta`, `entropy_coef_min` and `entropy_coef_max`, its state kept in TRL's
  `entropy_coef` and last entropy, so TRL's checkpoints save and restore it; a static
  `entropy_coef` becomes the bonus; `top_entropy_quantile < 1` with mode 'ppo' becomes mode
  'top_entropy' (the quantile over the micro-batch, as TRL's; the bonus, unlike TRL's, acts
  on every valid token). Set each in one place: with entropy_config's own bonus or target,
  or with Clip-Cov / KL-Cov and `top_entropy_quantile`, the trainer refuses.
  It logs, next to TRL's `entropy` metric:
  `cov/logp_adv` (mean per-token Cov(log pi, A), Theorem 2), `cov/logp_pi_adv`
  (Cov(log pi, pi A), Theorem 1), `cov/pos_frac` (share of valid tokens whose per-token
  covariance is > 0), `ppo/clip_frac`, `loss/policy`, and the loss mode's own metrics
  (`LossMode.metrics`: `clip_cov/frac`, or `kl_cov/frac` and `kl_cov/abs_kl`). Any mode in
  the registry `entropy_rl.core.LOSS_MODES` runs, one registered by the user included.
- `EntropyLawCallback`: fits R = -a exp(H) + b on the (entropy, reward) pairs TRL logs and
  adds `law/ceiling`, `law/a`, `law/b`, `law/r2`, `law/reliable` to the logs. By default R is
  TRL's `reward` (the mean reward of the training batch's completions, logged every
  `logging_steps`), not a held-out score; name an evaluation metric instead with
  `reward_key` (e.g. "eval_reward", logged by `trainer.evaluate` when `eval_strategy` is
  set), and each evaluation is paired with the last training entropy logged before it.

Dr. GRPO. TRL's `scale_rewards="none"` gives Dr. GRPO's advantages (no std) in every mode,
since the advantages reaching the loss are TRL's. TRL's `loss_type="dr_grpo"` (the loss
summed and divided by the constant B * max_completion_length) is kept in the clip_cov /
kl_cov modes too: with `entropy_config.agg="token_mean"` the loss is divided by that
constant instead of the number of valid tokens.

Hook. TRL computes the per-token log-probabilities and the loss inside one method,
`GRPOTrainer._compute_loss(model, inputs)`, with no smaller seam between them, so the
trainer overrides that method: when TRL's own loss runs (above) it calls TRL's;
otherwise it runs TRL's own forward helper `_get_per_token_logps_and_entropies` on the
same inputs, and hands the log-probabilities, `inputs["old_per_token_logps"]` (or the detached current
log-probabilities when TRL omitted them because training is fully on-policy, exactly as
TRL does), `inputs["advantages"]` and `inputs["completion_mask"]` (times
`inputs["tool_mask"]` when present) to `policy_loss`. Metrics go into TRL's
`self._metrics[mode][key]` lists, which `GRPOTrainer.log` averages and logs; each is a
mean over all ranks' valid tokens of the micro-batch, reduced like TRL's own.

Loss aggregation. `entropy_config.agg` replaces TRL's `loss_type`, which is not used in
the clip_cov / kl_cov modes: 'token_mean' (default) is TRL's 'bnpo' (mean over the
micro-batch's valid tokens), 'seq_mean_token_mean' is TRL's 'grpo' and
'seq_mean_token_sum' is TRL's 'luspo' aggregation. In training, the loss is divided by
the gradient-accumulation steps, as TRL does for these types. TRL's 'dapo' (its default:
tokens counted over the whole generation batch) has no counterpart here, and is replaced by
`agg`, as is any other loss_type but 'dr_grpo' (kept, see above; it needs agg
'token_mean'): the trainer warns once, at construction, naming the replacement, unless
loss_type already aggregates as `agg` (set loss_type='bnpo' for 'token_mean', 'grpo' for
'seq_mean_token_mean' to make it explicit). The PPO clip range is `entropy_config.clip_low`
/ `clip_high`, not TRL's `epsilon` / `epsilon_high` (a warning is issued when they
differ), and the entropy bonus is `entropy_config.entropy_coef` (or TRL's, carried over,
above). TRL options whose math lives inside its loss (beta != 0, off-policy masking,
sequence-level importance sampling, vLLM importance-sampling correction, MoE aux loss,
delta) are refused at construction.

Selection scope. TRL calls the loss once per per-device micro-batch
(`per_device_train_batch_size` sequences), so the covariance and the token selection are
over that micro-batch, like the paper's reference code, not over the whole rollout batch
as the paper describes. Selecting once per generation batch would need the current
log-probabilities of every micro-batch before any of them is updated, and Clip-Cov's
candidates depend on PPO's clipping at update time, so no clean seam in TRL allows it.
With more than one micro-batch per rollout, raise the ratios accordingly if at least one
token per micro-batch is not what you want (both modes select at least one token).

Importing this module imports TRL; `entropy_rl.core` never does.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from entropy_rl.analysis.law import RELIABLE_MIN_POINTS
from entropy_rl.analysis.live_law import fit_so_far, law_metrics
from entropy_rl.core import ControlState, PolicyLossConfig, loss_mode, policy_loss
from entropy_rl.core.control import CONTROL_UPDATE_ENTROPY, ENTROPY_BONUS, control_rule
from entropy_rl.core.fixed_step import FIXED_STEP_RULE
from entropy_rl.core.losses import LOSS_KEY, TOP_ENTROPY_MODE
from entropy_rl.loss_config import AUTO_GAINS
from entropy_rl.runs.metric_keys import COV_LOGP_ADV, COV_LOGP_PI_ADV, COV_POS_FRAC, ENTROPY_MEAN
from entropy_rl.training.diagnostics import rollout_statistics

__all__ = ["EntropyGRPOTrainer", "EntropyLawCallback"]

_MIN_LAW_POINTS = RELIABLE_MIN_POINTS
AGG_AS_LOSS_TYPE = {"token_mean": "bnpo", "seq_mean_token_mean": "grpo"}
"""TRL's `loss_type` that aggregates as `entropy_config.agg` does, where TRL allows it with
token-level importance sampling (TRL's 'luspo', our 'seq_mean_token_sum', needs sequence-level)."""
TRL_OWN_MODE = PolicyLossConfig.mode  # the default, "ppo": only config/, core/ spell mode names
"""The loss mode TRL computes itself (its clipped surrogate): with it TRL's loss runs untouched;
every other registered mode runs through `policy_loss`."""


class EntropyGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with Clip-Cov / KL-Cov policy losses from `entropy_rl.core`.

    Takes GRPOTrainer's arguments plus `entropy_config` (default: PolicyLossConfig(),
    mode 'ppo', which leaves TRL's loss untouched). See the module docstring.
    """

    def __init__(self, *args: Any, entropy_config: PolicyLossConfig | None = None, **kwargs: Any):
        self.entropy_config = PolicyLossConfig() if entropy_config is None else entropy_config
        if not isinstance(self.entropy_config, PolicyLossConfig):
            raise TypeError(
                f"entropy_config must be a PolicyLossConfig, got {type(entropy_config).__name__}"
            )
        super().__init__(*args, **kwargs)
        self._entropy_generator: torch.Generator | None = None
        self._control_state = ControlState()
        self._control: tuple[int, Any] | None = None  # (global step, its decision)
        self._window: torch.Tensor | None = None  # (entropy sum, tokens) of the optimizer step
        if not self._trl_loss:
            self.entropy_config = self._with_trl_entropy_options(self.entropy_config)
            self._check_supported()

    @property
    def _trl_loss(self) -> bool:
        """TRL's own loss runs: mode 'ppo' with no entropy bonus and no entropy controller."""
        cfg = self.entropy_config
        return cfg.mode == TRL_OWN_MODE and cfg.entropy_coef == 0 and cfg.entropy_target is None

    def _with_trl_entropy_options(self, cfg: PolicyLossConfig) -> PolicyLossConfig:
        """`cfg` with TRL's entropy bonus, adaptive entropy and top_entropy_quantile carried
        over (see the module docstring); ValueError when both sides set the same thing."""
        args = self.args
        if self._entropy_bonus_enabled:
            if cfg.entropy_coef != 0 or cfg.entropy_target is not None:
                raise ValueError(
                    "both TRL's entropy_coef / use_adaptive_entropy and entropy_config's "
                    "entropy_coef / entropy_target set the entropy bonus: set it in one place"
                )
            cfg = dataclasses.replace(cfg, entropy_coef=self.entropy_coef)
        if self.use_adaptive_entropy:
            cfg = dataclasses.replace(
                cfg,
                entropy_target=args.entropy_target,
                entropy_target_end=None,
                control_rule=FIXED_STEP_RULE,
                entropy_control=ENTROPY_BONUS.name,
                control_step_size=args.entropy_coef_delta,
                control_min=args.entropy_coef_min,
                control_max=args.entropy_coef_max,
            )
        if self.top_entropy_quantile < 1.0:
            if cfg.mode not in (TRL_OWN_MODE, TOP_ENTROPY_MODE):
                raise ValueError(
                    f"TRL's top_entropy_quantile < 1 selects tokens, as entropy_config.mode="
                    f"{cfg.mode!r} does: use one of them"
                )
            if cfg.mode == TOP_ENTROPY_MODE:
                raise ValueError(
                    f"TRL's top_entropy_quantile and entropy_config.mode={TOP_ENTROPY_MODE!r} "
                    "both set the quantile: set it in one place "
                    "(entropy_config.top_entropy_quantile)"
                )
            cfg = dataclasses.replace(
                cfg, mode=TOP_ENTROPY_MODE, top_entropy_quantile=self.top_entropy_quantile
            )
        return cfg

    def _check_supported(self) -> None:
        """Refuse TRL options whose math lives inside TRL's loss and would be silently lost."""
        args = self.args
        unsupported = {
            "beta != 0": self.beta != 0.0,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "importance_sampling_level != 'token'": self.importance_sampling_level != "token",
            "vllm_importance_sampling_correction with use_vllm": (
                self.use_vllm and self.vllm_importance_sampling_correction
            ),
            "a MoE router aux loss": self.aux_loss_enabled,
            "delta": args.delta is not None,
            "loss_type='dr_grpo' with entropy_config.agg other than 'token_mean'": (
                self.loss_type == "dr_grpo" and self.entropy_config.agg != "token_mean"
            ),
        }
        bad = [name for name, present in unsupported.items() if present]
        if bad:
            raise ValueError(
                f"entropy_config.mode={self.entropy_config.mode!r} does not support TRL's "
                + ", ".join(bad)
            )
        cfg = self.entropy_config
        if cfg.entropy_target is not None and cfg.control_gains == AUTO_GAINS:
            raise ValueError(
                f"entropy_config.control_gains={AUTO_GAINS!r} measures the knob's authority with "
                "the Lemma-1 probe, which TRL's trainer does not run: set control_kp and "
                "control_ki (control_gains='fixed')"
            )
        if (cfg.clip_low, cfg.clip_high) != (self.epsilon_low, self.epsilon_high):
            warnings.warn(
                f"the PPO clip range is entropy_config's ({cfg.clip_low}, {cfg.clip_high}); "
                f"TRL's epsilon ({self.epsilon_low}, {self.epsilon_high}) is not used",
                stacklevel=3,
            )
        self._warn_loss_type()

    def _warn_loss_type(self) -> None:
        """Warn, once per trainer, when TRL's `loss_type` (its default: 'dapo') is replaced by
        `entropy_config.agg`, naming how to make the choice explicit."""
        agg, same = self.entropy_config.agg, AGG_AS_LOSS_TYPE.get(self.entropy_config.agg)
        if self.loss_type in ("dr_grpo", same):
            return
        how = f" (TRL's {same!r}: set loss_type={same!r} to make it explicit)" if same else ""
        warnings.warn(
            f"TRL's loss_type={self.loss_type!r} is not used in entropy_config.mode="
            f"{self.entropy_config.mode!r}: the loss is aggregated as entropy_config.agg="
            f"{agg!r} says{how}",
            stacklevel=4,
        )

    def _generator(self, device: torch.device) -> torch.Generator:
        """Clip-Cov's random draws, seeded from args.seed (offset by the process index)."""
        if self._entropy_generator is None or self._entropy_generator.device != device:
            self._entropy_generator = torch.Generator(device=device)
            self._entropy_generator.manual_seed(self.args.seed + self.accelerator.process_index)
        return self._entropy_generator

    def _global_mean(self, value: torch.Tensor, weight: torch.Tensor) -> float:
        """sum(value * weight) / sum(weight) over all ranks, from a local weighted mean."""
        local = torch.stack([value.detach().float() * weight.float(), weight.float()])
        totals = self.accelerator.reduce(local, reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    def _controlled(self, entropies: torch.Tensor, mask: torch.Tensor) -> PolicyLossConfig:
        """The entropy controller's loss for this optimizer step (`core.control`), decided
        on the step's first micro-batch from its entropy, a mean over every rank's valid
        tokens (so every rank decides alike), and kept for the step's other micro-batches.
        A rule that moves after each optimizer step moves at its last micro-batch."""
        step, rule = self.state.global_step, control_rule(self.entropy_config)
        if self._control is None or self._control[0] != step:
            n_valid = mask.bool().sum()
            local = (entropies.detach().float() * mask).sum() / n_valid.clamp(min=1)
            entropy = self._global_mean(local, n_valid)
            if self.use_adaptive_entropy:  # TRL's state, as its checkpoint restores it
                self._control_state = dataclasses.replace(
                    self._control_state,
                    value=self.entropy_coef,
                    last_entropy=self._last_world_entropy,
                )
            decision = rule.start(
                self.entropy_config, self._control_state, entropy, step, self.state.max_steps
            )
            self._control_state, self._control = decision.state, (step, decision)
            for key, value in decision.metrics.items():
                self._metrics["train"][key].append(value)
        if rule.after_update is not None:
            self._after_micro_batch(rule, entropies, mask, step)
        return self._control[1].loss

    def _after_micro_batch(self, rule, entropies: torch.Tensor, mask: torch.Tensor, step: int):
        """Add the micro-batch's entropy to the optimizer step's; at its last micro-batch,
        move the rule on the step's entropy over every rank's tokens (TRL's window)."""
        stats = torch.stack([(entropies.detach().float() * mask).sum(), mask.float().sum()])
        self._window = stats if self._window is None else self._window + stats
        if not self.accelerator.sync_gradients:
            return
        totals = self.accelerator.reduce(self._window, reduction="sum")
        self._window = None
        entropy = (totals[0] / totals[1].clamp(min=1.0)).item()
        decision = rule.after_update(
            self.entropy_config, self._control_state, entropy, step, self.state.max_steps
        )
        self._control_state = decision.state
        self._metrics["train"][CONTROL_UPDATE_ENTROPY].append(entropy)
        if self.use_adaptive_entropy:  # saved by TRL's checkpoint (entropy_ctrl_state.json)
            self.entropy_coef = decision.state.value
            self._last_world_entropy = decision.state.last_entropy

    def _compute_loss(self, model, inputs):
        if self._trl_loss:
            return super()._compute_loss(model, inputs)
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )
        multimodal = (
            "pixel_values",
            "image_grid_thw",
            "num_images",
            "pixel_attention_mask",
            "spatial_shapes",
            "num_tiles",
            "image_sizes",
            "token_type_ids",
            "mm_token_type_ids",
            "image_position_ids",
        )
        log_probs, entropies, _ = self._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
            **{key: inputs.get(key) for key in multimodal},
        )
        old_log_probs = inputs.get("old_per_token_logps")
        if old_log_probs is None:  # fully on-policy: TRL skips them, they equal the current ones
            old_log_probs = log_probs.detach()
        advantages = inputs["advantages"]  # (B,) or (B, T)
        num_tokens = None  # token_mean: this micro-batch's valid tokens
        if self.loss_type == "dr_grpo":  # Dr. GRPO's constant denominator, as TRL's
            num_tokens = completion_ids.size(0) * self.max_completion_length

        config = self.entropy_config
        if config.entropy_target is not None and self.model.training:
            config = self._controlled(entropies, mask)
        loss, metrics = policy_loss(
            log_probs,
            old_log_probs,
            advantages,
            mask,
            config,
            self._generator(log_probs.device),
            entropy=entropies,
            num_tokens=num_tokens,
        )
        mode = "train" if self.model.training else "eval"
        if mode == "train":
            loss = loss / self.current_gradient_accumulation_steps

        self._log_metrics(mode, metrics, entropies, log_probs, advantages, mask)
        return loss

    def _log_metrics(self, split: str, metrics, entropies, log_probs, advantages, mask) -> None:
        """The covariance statistics and the loss mode's metrics, each a mean over every
        rank's valid tokens (or, as the mode declares, its selected tokens)."""
        n_valid = mask.bool().sum()
        record = self._metrics[split]  # 'train' or 'eval'
        stats = rollout_statistics(
            entropies.detach().float(), log_probs.detach().float(), advantages, mask
        )
        record["entropy"].append(self._global_mean(stats[ENTROPY_MEAN], n_valid))
        for key in (COV_LOGP_ADV, COV_LOGP_PI_ADV, COV_POS_FRAC):
            record[key].append(self._global_mean(stats[key], n_valid))
        for key in ("ppo/clip_frac", LOSS_KEY):
            record[key].append(self._global_mean(metrics[key], n_valid))
        for key, share in loss_mode(self.entropy_config.mode).metrics.items():
            tokens = n_valid if share is None else metrics[share] * n_valid
            record[key].append(self._global_mean(metrics[key], tokens))


class EntropyLawCallback(TrainerCallback):
    """Fits the entropy-performance law R = -a exp(H) + b on the logged (entropy, reward).

    R is `reward_key`: by default TRL's `reward`, the mean reward of the *training* batch's
    completions (the paper's R is a validation score); pass an evaluation metric such as
    "eval_reward" to fit on that. H is `entropy_key` (TRL's `entropy`, the mean token
    entropy of the training completions). Each `on_log` whose logs hold a finite R adds a
    point, with H from the same logs or, when they lack it (an evaluation's logs), from the
    last logs that had it. From `min_points` (>= 5) points on, the law is fitted on all
    points so far (`live_law.fit_so_far`, as our trainer's rows and `entropy-rl watch`) and
    its `law/*` keys (`live_law.law_metrics`: `law/a`, `law/b`, `law/ceiling` and its
    interval, `law/r2`, `law/n`) and `law/reliable` (1.0, or 0.0 when the fit is flagged
    unreliable, `law.EntropyLawFit.reliable`) are added to the logs dict and to the entry
    `Trainer.log` has just appended to `state.log_history`. Callbacks that run after this
    one see them; the reporting callbacks (`report_to`) run before user callbacks, so to
    report the law keys put this one first:
    `trainer.callback_handler.callbacks.insert(0, EntropyLawCallback())`. A fit that fails
    (e.g. constant entropy) adds nothing.
    """

    def __init__(
        self, entropy_key: str = "entropy", reward_key: str = "reward", min_points: int = 5
    ):
        if min_points < _MIN_LAW_POINTS:
            raise ValueError(f"min_points must be >= {_MIN_LAW_POINTS}, got {min_points!r}")
        self.entropy_key = entropy_key
        self.reward_key = reward_key
        self.min_points = min_points
        self.entropy: list[float] = []
        self.reward: list[float] = []
        self.last_entropy: float | None = None

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if logs is None:
            return
        h, r = logs.get(self.entropy_key), logs.get(self.reward_key)
        if _is_finite_number(h):
            self.last_entropy = float(h)
        elif h is None:
            h = self.last_entropy
        if not (_is_finite_number(h) and _is_finite_number(r)):
            return
        self.entropy.append(float(h))
        self.reward.append(float(r))
        if len(self.entropy) < self.min_points:
            return
        fit = fit_so_far(list(zip(self.entropy, self.reward, strict=True)))
        if fit is None:
            return
        law = {**law_metrics(fit), "law/reliable": float(fit.reliable)}
        logs.update(law)
        # Trainer.log appends a copy of `logs` to state.log_history before the callbacks run.
        history = getattr(state, "log_history", None)
        if history and history[-1].get(self.reward_key) == r:
            history[-1].update(law)


def _is_finite_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
