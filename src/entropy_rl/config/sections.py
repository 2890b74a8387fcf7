"""The sections of the run config: frozen dataclasses whose fields are checked on
construction (types, ranges, fields of one section together). Names taken from a registry
(a task, a loss mode, an advantage estimator, a rollout engine) and checks across sections
are `entropy_rl.training.checks.check`'s, once the registries are known."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from entropy_rl.config.scale import _embedded
from entropy_rl.errors import ConfigError


def _finite(section: object) -> None:
    """ConfigError naming the first float field of `section` that is NaN or infinite: the
    ordering checks below (`value <= 0`) let NaN through, and the run would die later."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{_section_name(section)}.{f.name} must be a finite number, got {value!r}"
            )


def _positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value <= 0:
            raise ConfigError(f"{_section_name(section)}.{name} must be > 0, got {value!r}")


def _section_name(section: object) -> str:
    """The section's name in the config tree: ModelConfig -> model."""
    return type(section).__name__.removesuffix("Config").lower()


@dataclass(frozen=True)
class ModelConfig:
    """The policy: the embedded small transformer (Qwen2 architecture), or a local HF model."""

    hidden_size: int = 128
    """Width of the embedded model."""
    num_layers: int = 4
    """Transformer layers of the embedded model."""
    num_heads: int = 4
    """Attention heads of the embedded model."""
    intermediate_size: int = 512
    """MLP width of the embedded model."""
    init_std: float = 0.02
    """Std of the weight initialisation (with larger inits a tiny model can start by
    repeating its last input token with probability ~1, and RL then goes nowhere)."""
    dtype: str = "float32"
    """Parameter dtype: float32 (default; bf16 matmuls are several times slower on CPUs) or bfloat16."""
    path: str = ""
    """Local directory of a Hugging Face causal LM and its tokenizer (`--model`), loaded with
    `from_pretrained`, never downloaded; empty: the embedded model above, pretrained on the task."""
    chat_template: bool = True
    """Format prompts with the tokenizer's chat template when it has one (else bos + text)."""
    autocast: bool = _embedded("model.autocast")
    """bfloat16 autocast of forward passes on a GPU that supports it (parameters stay in `dtype`);
    never on CPU. The logits that entropy, log-probs and Lemma 1 read are projected in float32
    all the same."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (memory for time; puts the model in train
    mode during updates, so its dropout settings apply)."""
    lora_rank: int = 0
    """LoRA rank of the RL run (the `lora` extra, peft): > 0 freezes every weight of the
    policy and trains low-rank adapters on lora_target_modules only; checkpoints then hold the
    adapter, and a resume loads it onto the same base model. 0: full fine-tuning. Pretraining
    of the embedded base model always trains every weight."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: an adapter's update is (lora_alpha / lora_rank) * B A."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input; it acts only in train mode, which the trainer uses only
    with gradient_checkpointing (the model runs in eval mode otherwise)."""
    lora_target_modules: str = "q_proj,k_proj,v_proj,o_proj"
    """Comma-separated names of the Linear modules that get adapters: the attention
    projections of Qwen2 / Llama-style models (the embedded model's too); add
    gate_proj,up_proj,down_proj for the MLP."""

    def __post_init__(self) -> None:
        _finite(self)
        _positive(self, "hidden_size", "num_layers", "num_heads", "intermediate_size", "init_std")
        _check_lora(self)
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) must be divisible by model.num_heads ({self.num_heads})"
            )
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"model.dtype must be float32 or bfloat16, got {self.dtype!r}")


def lora_targets(config: ModelConfig) -> list[str]:
    """The module names of `lora_target_modules`, in order."""
    return [name.strip() for name in config.lora_target_modules.split(",") if name.strip()]


def _check_lora(config: ModelConfig) -> None:
    if config.lora_rank < 0:
        raise ConfigError(f"model.lora_rank must be >= 0 (0: no LoRA), got {config.lora_rank!r}")
    _positive(config, "lora_alpha")
    if not 0.0 <= config.lora_dropout < 1.0:
        raise ConfigError(f"model.lora_dropout must be in [0, 1), got {config.lora_dropout!r}")
    names = lora_targets(config)
    if not names or not all(n.replace(".", "_").isidentifier() for n in names):
        raise ConfigError(
            "model.lora_target_modules must be comma-separated module names (e.g. "
            f"q_proj,v_proj), got {config.lora_target_modules!r}"
        )


@dataclass(frozen=True)
class TaskConfig:
    """The verifiable task: prompts generated from a seed (sum3) or read from files (dataset),
    and the reward that checks the responses."""

    name: str = "sum3"
    """Task name (see `entropy_rl.tasks.TASKS`): sum3 (embedded) or dataset (files below)."""
    seed: int = 1234
    """Seed of the held-out validation prompts; training prompts are drawn from the run's
    seed and never include a validation prompt."""
    val_size: int = 256
    """Number of held-out validation prompts (dataset: at most all of val_file; without
    val_file, min(val_size, rows // 2) rows of train_file are held out and not trained on,
    which the run says when it starts)."""
    train_file: str = ""
    """dataset: training prompts, a local .jsonl/.json or .parquet file (read with `datasets`)."""
    val_file: str = ""
    """dataset: validation prompts, same format; empty: hold out min(val_size, rows // 2)
    rows of train_file (drawn with task.seed; printed when the run starts)."""
    prompt_key: str = "prompt"
    """dataset: field of the prompt, a string or a list of chat messages ({role, content})."""
    answer_key: str = "answer"
    """dataset: field of the ground-truth answer; dots reach into nested fields (verl's
    layout: answer_key=reward_model.ground_truth)."""
    max_response_tokens: int = 1024
    """dataset: most tokens sampled per response (sum3 fixes its own)."""
    trap_rate: float = 0.9
    """sum3_trap only: probability that a demonstration of a trap prompt (a+b carries into
    the tens) drops the carry, so the base model's usual answer there is wrong."""
    trap_noise: float | None = None
    """sum3_trap only: digit noise of its fine-tuning demonstrations, in place of
    pretrain.noise. The right carry digit appears in a wrong demonstration by noise about
    noise/10 of the time, which sets how often the fine-tuned model still samples the right
    answer on a trap prompt (~2% at 0.2). Unset: pretrain.noise."""
    reward: str = ""
    """Reward: empty for the task's own (sum3's verifier; dataset: math), `math` (final answer
    checked with math-verify), or `package.module:function` (`--reward`), imported from the
    installed packages or the working directory and called once per response, either as
    fn(prompt, response, answer) -> float, or, TRL-style (a function with a `completions`
    parameter, as TRL's GRPOTrainer takes), as fn(prompts=[prompt], completions=[response],
    answer=[answer], **{last part of answer_key: [answer]}) -> [reward]: a batch of one, a
    chat prompt as its messages and the response as [{"role": "assistant", "content": ...}];
    no completion_ids or trainer_state. A call that raises, times out or returns no number
    scores 0 and is counted."""

    def __post_init__(self) -> None:
        _finite(self)
        _positive(self, "val_size", "max_response_tokens")
        if not 0.0 <= self.trap_rate <= 1.0:
            raise ConfigError(f"task.trap_rate must be in [0, 1], got {self.trap_rate!r}")
        if self.trap_noise is not None and not 0.0 <= self.trap_noise <= 1.0:
            raise ConfigError(f"task.trap_noise must be in [0, 1], got {self.trap_noise!r}")
        if self.reward not in ("", "math") and ":" not in self.reward:
            raise ConfigError(
                f"task.reward must be empty, 'math' or 'package.module:function', got {self.reward!r}"
            )


@dataclass(frozen=True)
class PretrainConfig:
    """The supervised run that makes the base model RL starts from."""

    max_steps: int = 4500
    """At most this many optimizer steps. The learning rate warms up, holds at `lr` until a
    held-out check reaches `cooldown_at`, then decays to 0 over `cooldown_steps`; a model that
    has not reached it by `max_steps - cooldown_steps` cools down then."""
    batch_size: int = 128
    """Demonstrations per step."""
    lr: float = 1.5e-3
    """AdamW learning rate of the hold, reached after `warmup_steps`. At 3e-3 the hold of
    h128x4 seed 2 lasted to the cap (4,200 steps) and h160x4 seed 0 (at 2.4e-3) never learnt;
    at half those rates both learnt in 1,400 steps (docs/base_models.md)."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    adam_beta2: float = 0.98
    """AdamW's second-moment decay (with 0.999 the 1-thread run of seed 0 had not learnt the
    units digits after 900 steps; with 0.98 it had)."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    noise: float = 0.2
    """Probability that a demonstration's response digit is replaced by a random digit; it
    keeps the base model's entropy high and its sampled accuracy moderate."""
    seed: int = 0
    """Seed of the initialisation and the demonstrations."""
    finetune_steps: int = 300
    """For a task built on another task's base model (sum3_trap on sum3): supervised steps
    on this task's demonstrations, starting from that base model."""
    finetune_lr: float = 3e-4
    """AdamW peak learning rate of those fine-tuning steps (the same warm-up, then a cosine to
    0 over the rest of `finetune_steps`, with no hold)."""
    cooldown_at: float = 0.85
    """The held-out greedy accuracy at a check that ends the hold and starts the cool-down:
    the carries are learnt in a sudden transition whose step depends on the seed, the size
    and the float summation order, so the hold lasts until it has happened, and every model
    then trains the same `cooldown_steps` past it."""
    cooldown_steps: int = 300
    """Steps of the cool-down: the learning rate decays from `lr` to 0 by a cosine."""
    check_every: int = 100
    """Measure greedy accuracy on the held-out validation prompts every this many steps (and
    at the end); shown in the progress display and kept in pretrain.json. A check ends the
    hold, so this shapes the base model (it is in the cache key)."""
    min_greedy: float = 0.85
    """A base model whose held-out greedy accuracy ends below this has not learnt its task:
    train, demo and experiment refuse to run RL from it (a fine-tuned base model is judged by
    its parent's). 0 accepts any base model. It does not shape the base model, nor its cache
    key: changing it reuses the cached one."""
    cache_dir: str = "runs/base_models"
    """Base models are saved here, one directory per (model, task, pretrain) config, and reused."""

    def __post_init__(self) -> None:
        _finite(self)
        _positive(
            self, "max_steps", "batch_size", "lr", "grad_clip", "finetune_steps", "finetune_lr"
        )
        _positive(self, "check_every", "cooldown_steps")
        if self.cooldown_steps > self.max_steps:
            raise ConfigError(
                f"pretrain.cooldown_steps ({self.cooldown_steps}) must be <= pretrain.max_steps"
                f" ({self.max_steps})"
            )
        if not 0.0 <= self.cooldown_at <= 1.0:
            raise ConfigError(f"pretrain.cooldown_at must be in [0, 1], got {self.cooldown_at!r}")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ConfigError(f"pretrain.adam_beta2 must be in (0, 1), got {self.adam_beta2!r}")
        if not 0.0 <= self.min_greedy <= 1.0:
            raise ConfigError(f"pretrain.min_greedy must be in [0, 1], got {self.min_greedy!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"pretrain.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.noise <= 1.0:
            raise ConfigError(f"pretrain.noise must be in [0, 1], got {self.noise!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The RL loop. Paper: 256 prompts x 8 responses, 8 mini-batches, lr 5e-7..1e-6."""

    steps: int = 150
    """RL steps (one rollout batch each)."""
    prompts_per_step: int = 16
    """Prompts sampled per step (paper: 256)."""
    group_size: int = 8
    """Responses sampled per prompt (paper: 8); at least 2 with a group-relative
    train.advantage (every built-in one: a group of one response gets advantage 0)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (paper: 1.0)."""
    advantage: str = "grpo"
    """Advantage estimator: grpo ((r - group mean) / group std), dr_grpo (Dr. GRPO: r - group
    mean, no std; the loss aggregation stays loss.agg), rloo (leave-one-out mean) or
    reinforce_pp (group mean, batch std); or one registered with
    `entropy_rl.core.register_advantage`."""
    ppo_epochs: int = 1
    """Passes over each rollout batch."""
    mini_batches: int = 4
    """Optimizer updates per pass (paper: 8); KL-Cov's penalty acts from the second on."""
    micro_batches: int = 1
    """Gradient-accumulation splits of each mini-batch (memory only; the update is unchanged)."""
    logits_mib: float = 64.0
    """Size in MiB of a block of float32 logits (1 MiB holds 1.7 positions at Qwen2.5's
    vocabulary of 151,936). A forward pass whose positions need more is scored a block of
    positions at a time (log-probs, entropy, probe statistics), with a few blocks alive at
    once, and the updates' backward computes each block's logits again rather than keeping
    (B, T, V). Smaller saves memory and costs a little time; below 32 (glibc's largest mmap
    threshold) freed blocks may stay in the process's heap. The embedded task's logits
    always fit in one block."""
    lr: float = _embedded("train.lr")
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip; without it, toy-scale learning rates can wreck the base model."""
    seed: int = 0
    """Seed of the training prompts, the rollouts and the Clip-Cov draws."""
    save_every: int = 50
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept, the newest: a resume falls back to an older one when the newest fails
    its checksums, or to recompute a damaged metrics row."""
    max_bad_steps: int = 3
    """Stop after this many consecutive steps with a NaN/inf loss or gradient."""
    reward_timeout_s: float = 5.0
    """Seconds a reward call may take before its response gets reward 0 (counted)."""
    stop_at_saturation: bool = False
    """Stop the run early, with its checkpoint and summary (`stopped_early` in summary.json),
    at the first evaluation row where the law fitted on the run so far is reliable and its
    forecast gain left is below train.saturation_min_gain (`entropy_rl.analysis.live_law.saturation`).
    That row only measures, as a run's last row does."""
    saturation_min_gain: float = 0.01
    """The forecast gain left (upper end of the ceiling's 95% interval minus the best val/acc
    so far) below which train.stop_at_saturation stops the run, in val/acc units. 0.01: the
    paper's law forecasts held-out accuracy to about 1% RMSE, so a smaller gain is within the
    law's own error."""

    def __post_init__(self) -> None:
        _finite(self)
        _positive(self, "steps", "prompts_per_step", "group_size", "temperature", "ppo_epochs")
        _positive(self, "mini_batches", "micro_batches", "lr", "save_every", "max_bad_steps")
        _positive(self, "reward_timeout_s", "keep_checkpoints", "saturation_min_gain")
        _positive(self, "logits_mib")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("train.weight_decay and train.grad_clip must be >= 0")
        batch = self.prompts_per_step * self.group_size
        if batch % (self.mini_batches * self.micro_batches):
            raise ConfigError(
                f"train.prompts_per_step * train.group_size ({batch}) must be divisible by "
                f"train.mini_batches * train.micro_batches ({self.mini_batches * self.micro_batches})"
            )


@dataclass(frozen=True)
class EvalConfig:
    """Validation on the held-out prompts: the law's R is `val/acc`."""

    every: int = 5
    """Evaluate every this many steps (and at step 0 and the last step)."""
    dense_fraction: float = 0.0
    """Evaluate every `dense_every` steps instead over the first this fraction of
    train.steps: the points an early fit of the law sees (the paper fits its first 15% of
    steps, evaluated at each). 0: `every` throughout."""
    dense_every: int = 1
    """The evaluation interval over the first `dense_fraction` of the steps."""
    samples: int = 4
    """k: samples per prompt for `val/acc` (their mean) and `val/pass_at_k`; n, the samples
    per prompt of `entropy-rl eval` (pass@k for every k <= n)."""
    temperature: float = 1.0
    """Sampling temperature of those samples (the paper's R: temperature 1)."""
    greedy: bool = True
    """Also log `val/acc_greedy` (argmax decoding)."""
    seed: int = 0
    """`entropy-rl eval` only: seed of its samples (training's validation rows draw theirs
    from train.seed and the step: `evaluation.validation_seed`)."""

    def __post_init__(self) -> None:
        _finite(self)
        _positive(self, "every", "samples", "temperature", "dense_every")
        if not 0.0 <= self.dense_fraction < 1.0:
            raise ConfigError(f"eval.dense_fraction must be in [0, 1), got {self.dense_fraction!r}")

    def due(self, step: int, steps: int) -> bool:
        """Whether step `step` of a run of `steps` steps evaluates."""
        every = self.dense_every if step <= self.dense_fraction * steps else self.every
        return step % every == 0 or step == steps


@dataclass(frozen=True)
class DiagnosticsConfig:
    """The paper's entropy-dynamics diagnostics, computed every step."""

    probe_size: int = 64
    """The first responses of each rollout batch, whose valid tokens are the probe states:
    the entropy change over the step's updates is measured on them exactly and compared
    with Lemma 1. 0 disables."""
    probe_tokens: int = 2048
    """The most probe states (response, position pairs) kept per step: with more valid
    tokens in the probe responses, this many evenly spaced ones (the first and the last
    included; nothing random). Their hidden states (probe_tokens x hidden size) and a copy
    of the output head are kept over the updates; their logits before and after are made
    train.logits_mib at a time, whatever the response length. Under torchrun each rank
    keeps its share, probe_tokens / ranks rounded up."""
    chunk_size: int = 4096
    """Rows per chunk for entropy over the vocabulary (memory, not results)."""

    def __post_init__(self) -> None:
        _finite(self)
        if self.probe_size < 0:
            raise ConfigError(f"diagnostics.probe_size must be >= 0, got {self.probe_size!r}")
        if self.probe_size > 0 and self.probe_tokens < 1:
            raise ConfigError(
                f"diagnostics.probe_tokens must be >= 1 when probe_size > 0, got {self.probe_tokens!r}"
            )
        _positive(self, "chunk_size")
