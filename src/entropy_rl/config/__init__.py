"""The one home of every default: a frozen dataclass tree, loaded from YAML and overridden
from the command line with dotted `section.field=value` pairs (e.g. `loss.mode=kl_cov`).

Each field's docstring is its `--help` text. Values are validated when the tree is built;
nothing mutates a config at run time (derive a new one with `dataclasses.replace`).

Defaults that depend on the scale of the run live in one table, `SCALE_DEFAULTS`: each entry
has its value on the embedded task (a ~1M-parameter model, ~10^3 tokens a rollout batch) and
its value with a real model (`--model` / `model.path`: the paper's, Cui et al. 2025, for
7B-32B models and ~10^6-10^7 tokens a batch), and why they differ. The rule: `load_config`
(every command: train, demo, experiment, pretrain) gives each table field the user did not
set, in the YAML file or a `section.field=value` override, its embedded value when
model.path is empty and its real-model value when it is set. An explicit value always wins,
and the resolved values are saved in the run's config.yaml, so a resumed run reads them back
unchanged.

`Config()` built directly in Python has the embedded values (the embedded task is the
default), so it equals `load_config(None)`; the dataclass defaults are read from the table.
A `Config(model=ModelConfig(path=...))` built by hand keeps the embedded values of the
fields it does not pass: use `default_config(path)` or `load_config(None, ["model.path=..."])`
for a real model's defaults. The core's `PolicyLossConfig` keeps the paper's values as its
own defaults (the TRL adapter uses it directly); the table reads its real-model loss values
from them.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from entropy_rl.core.loss_config import PolicyLossConfig
from entropy_rl.errors import ConfigError
from entropy_rl.training.rollout.registry import DEFAULT_ENGINE, ROLLOUT_ENGINES, SAMPLING_METHODS


@dataclass(frozen=True)
class ScaleDefault:
    """A default that depends on the scale of the run: one entry of `SCALE_DEFAULTS`."""

    embedded: Any
    """On the embedded task (model.path empty)."""
    real: Any
    """With a real model (`--model` / model.path): the paper's value."""
    why: str
    """Why they differ, in one line (shown by `--help`)."""


SCALE_DEFAULTS: dict[str, ScaleDefault] = {
    "train.lr": ScaleDefault(
        5e-5,
        1e-6,
        "paper: 5e-7..1e-6 on 7B-32B models; a 1M-parameter model needs larger steps (with "
        "grad clip 1.0); 1e-4 learnt no better from the embedded base model and its 4 updates "
        "a step strayed further from Lemma 1's first order (correlation 0.70 against 0.82)",
    ),
    "loss.clip_cov_ratio": ScaleDefault(
        0.03,
        PolicyLossConfig.clip_cov_ratio,
        "the paper's 2e-4 selects under one token of a ~10^3-token toy batch; 0.03 selects ~30 "
        "(0.05 pushed entropy above its start, 0.02 barely held it)",
    ),
    "loss.kl_cov_ratio": ScaleDefault(
        0.2,
        PolicyLossConfig.kl_cov_ratio,
        "the paper's 2e-3 selects ~2 tokens of a toy batch, too few to matter",
    ),
    "loss.kl_cov_coef": ScaleDefault(
        2.0,
        PolicyLossConfig.kl_cov_coef,
        "with ratio 0.2, coefficient 2 holds the toy model's entropy up; the paper uses 1",
    ),
    "model.autocast": ScaleDefault(
        False,
        True,
        "float32 keeps a 1M-parameter model's results on CUDA the same as on CPU; real models "
        "run under bf16 autocast (on GPUs that support it)",
    ),
}
"""The defaults that depend on scale, by dotted field name. `load_config` resolves them."""


def scale_defaults(model_path: str = "") -> dict[str, Any]:
    """The value of every `SCALE_DEFAULTS` field for a run on the embedded task (model_path
    empty) or on a real model (model_path set)."""
    return {key: d.real if model_path else d.embedded for key, d in SCALE_DEFAULTS.items()}


def _embedded(key: str) -> Any:
    return SCALE_DEFAULTS[key].embedded


def _embedded_loss() -> PolicyLossConfig:
    """The loss section's default: PolicyLossConfig with the embedded values of the table."""
    prefix = "loss."
    values = {
        k[len(prefix) :]: d.embedded for k, d in SCALE_DEFAULTS.items() if k.startswith(prefix)
    }
    return PolicyLossConfig(**values)


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
    return {
        ModelConfig: "model",
        TaskConfig: "task",
        PretrainConfig: "pretrain",
        TrainConfig: "train",
        EvalConfig: "eval",
        DiagnosticsConfig: "diagnostics",
        RolloutConfig: "rollout",
        DistributedConfig: "distributed",
        LogConfig: "log",
    }.get(type(section), type(section).__name__)


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
        if self.name == "dataset" and not self.train_file:
            raise ConfigError("task.name=dataset needs task.train_file (a .jsonl or .parquet file)")
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
        from entropy_rl.core.advantages import ADVANTAGE_ESTIMATORS  # the registry: torch

        if self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ConfigError(
                f"train.advantage must be one of {', '.join(ADVANTAGE_ESTIMATORS)}, got {self.advantage!r}"
            )
        min_group = ADVANTAGE_ESTIMATORS[self.advantage].min_group
        if self.group_size < min_group:
            raise ConfigError(
                f"train.group_size must be >= {min_group} for train.advantage={self.advantage} "
                "(it compares each response with the others of its prompt's group)"
            )
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
        _positive(self, "every", "samples", "temperature")


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


STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class RolloutConfig:
    """The engine that samples responses; the trainer's weights are synced to it every step."""

    engine: str = DEFAULT_ENGINE
    """transformers (our KV-cache sampler on the training model) or vllm (GPU; the `vllm`
    extra, imported only when chosen; not run in this project's CI); or an engine registered
    with `entropy_rl.training.rollout.registry.register_engine`."""
    gpu_memory_utilization: float = 0.3
    """vllm: share of the GPU memory vLLM may take, beside the training model."""
    sampling: str = SAMPLING_METHODS[0]
    """transformers: how a token is drawn from softmax(logits / temperature). multinomial
    (default): `torch.multinomial`'s draw bit for bit, one exponential random number per
    vocabulary entry; every documented run used it. inverse_cdf: one uniform random number
    per response and token, against the float64 cumulative sum of the probabilities: the
    same distribution, other tokens from the same seed. At a 151,936-token vocabulary on a
    CPU the exponential numbers are most of a decoding step, and inverse_cdf makes the
    rollout several times faster (docs/benchmarks.md); on a GPU both are cheap."""

    def __post_init__(self) -> None:
        _finite(self)
        if self.engine not in ROLLOUT_ENGINES:
            raise ConfigError(
                f"rollout.engine must be one of {', '.join(ROLLOUT_ENGINES)}, got {self.engine!r}"
            )
        if self.sampling not in SAMPLING_METHODS:
            raise ConfigError(
                f"rollout.sampling must be one of {', '.join(SAMPLING_METHODS)}, got {self.sampling!r}"
            )
        if self.engine == "vllm" and self.sampling != SAMPLING_METHODS[0]:
            raise ConfigError(
                f"rollout.sampling={self.sampling} applies to our sampler (rollout.engine="
                "transformers); vLLM draws tokens its own way"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("rollout.gpu_memory_utilization must be in (0, 1]")


@dataclass(frozen=True)
class DistributedConfig:
    """Data-parallel training under `torchrun` (ignored in a single process)."""

    strategy: str = "ddp"
    """ddp (every rank holds the whole model) or fsdp (FSDP2 `fully_shard`: parameters,
    gradients and optimizer state sharded over the ranks)."""
    backend: str = "auto"
    """Process-group backend: auto (nccl with CUDA, else gloo), gloo or nccl."""

    def __post_init__(self) -> None:
        _finite(self)
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"distributed.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"distributed.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )


WANDB_MODES = ("", "online", "offline")


@dataclass(frozen=True)
class LogConfig:
    """Where a run's metrics go besides metrics.jsonl (always written): TensorBoard and
    Weights & Biases, with the same keys (a list such as entropy/by_position as one scalar per
    element, key/i) and the row's step as their step. Written by rank 0 only under torchrun."""

    tensorboard: bool = False
    """Write TensorBoard event files to <run dir>/tensorboard (needs the `tensorboard` extra)."""
    wandb: bool = False
    """Log to Weights & Biases (needs the `wandb` extra); its files go to <run dir>/wandb, and a
    resumed run continues the same W&B run."""
    wandb_project: str = "entropy-rl"
    """W&B project."""
    wandb_entity: str = ""
    """W&B entity (user or team); empty: your default entity."""
    wandb_name: str = ""
    """W&B run name; empty: the run directory's name."""
    wandb_mode: str = ""
    """online, offline (files only, uploaded later with `wandb sync`) or empty: W&B's own
    choice (the WANDB_MODE environment variable, else online)."""

    def __post_init__(self) -> None:
        _finite(self)
        if self.wandb_mode not in WANDB_MODES:
            raise ConfigError(
                f"log.wandb_mode must be online, offline or empty, got {self.wandb_mode!r}"
            )


@dataclass(frozen=True)
class Config:
    """Everything a run needs. Saved resolved as config.yaml in the run directory.

    Built directly, it has the embedded task's defaults (`load_config(None)` gives the same);
    `default_config(path)` gives a real model's (see `SCALE_DEFAULTS`)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: PolicyLossConfig = field(default_factory=_embedded_loss)
    eval: EvalConfig = field(default_factory=EvalConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.task.name == "dataset" and not self.model.path:
            raise ConfigError("task.name=dataset needs a model: --model PATH (model.path)")
        if self.model.lora_rank and self.rollout.engine == "vllm":
            raise ConfigError(
                "model.lora_rank > 0 needs rollout.engine=transformers (the vllm engine loads "
                "full weights, not adapters)"
            )


# ---- loading, overriding, describing -------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(path: str, value: Any, annotation: Any) -> Any:
    """Check or convert `value` to the field's annotated type; strings come from the CLI."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
        for option in options:
            if option is not type(None):
                return _coerce(path, value, option)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ConfigError(
        f"{path} must be {getattr(annotation, '__name__', annotation)}, got {value!r}"
    )


_ACTOR, _ROLLOUT = "actor_rollout_ref.actor.", "actor_rollout_ref.rollout."
VERL_FIELDS = {
    "data.train_files": "task.train_file",
    "data.val_files": "task.val_file",
    "data.prompt_key": "task.prompt_key",
    "data.max_response_length": "task.max_response_tokens",
    "data.train_batch_size": "train.prompts_per_step",
    "actor_rollout_ref.model.path": "model.path",
    "actor_rollout_ref.model.lora_rank": "model.lora_rank",
    "actor_rollout_ref.model.lora_alpha": "model.lora_alpha",
    "actor_rollout_ref.model.enable_gradient_checkpointing": "model.gradient_checkpointing",
    f"{_ACTOR}optim.lr": "train.lr",
    f"{_ACTOR}optim.weight_decay": "train.weight_decay",
    f"{_ACTOR}grad_clip": "train.grad_clip",
    f"{_ACTOR}ppo_epochs": "train.ppo_epochs",
    f"{_ACTOR}clip_ratio_low": "loss.clip_low",
    f"{_ACTOR}clip_ratio_high": "loss.clip_high",
    f"{_ACTOR}entropy_coeff": "loss.entropy_coef",
    f"{_ACTOR}loss_agg_mode": "loss.agg",
    f"{_ACTOR}policy_loss.loss_mode": "loss.mode",
    f"{_ACTOR}policy_loss.clip_cov_ratio": "loss.clip_cov_ratio",
    f"{_ACTOR}policy_loss.clip_cov_lb": "loss.clip_cov_lb",
    f"{_ACTOR}policy_loss.clip_cov_ub": "loss.clip_cov_ub",
    f"{_ACTOR}policy_loss.kl_cov_ratio": "loss.kl_cov_ratio",
    f"{_ACTOR}policy_loss.ppo_kl_coef": "loss.kl_cov_coef",
    f"{_ROLLOUT}n": "train.group_size",
    f"{_ROLLOUT}temperature": "train.temperature",
    f"{_ROLLOUT}response_length": "task.max_response_tokens",
    f"{_ROLLOUT}gpu_memory_utilization": "rollout.gpu_memory_utilization",
    "algorithm.adv_estimator": "train.advantage",
    "trainer.total_training_steps": "train.steps",
    "trainer.save_freq": "train.save_every",
    "trainer.test_freq": "eval.every",
    "trainer.max_actor_ckpt_to_keep": "train.keep_checkpoints",
}
"""verl's name (its ppo_trainer.yaml) -> ours, for the fields that mean the same; an unknown
field named as verl names it is refused with ours. Some values are spelled differently
(verl's loss_agg_mode token-mean is our token_mean, its loss_mode vanilla our ppo, its
reinforce_plus_plus our reinforce_pp). Not here, as nothing of ours means the same: verl's
ppo_mini_batch_size (a size; train.mini_batches is a count) and max_prompt_length."""


def _leaves(where: str, value: Any) -> list[str]:
    """The dotted names of the leaf fields under `where` in a config tree."""
    if not isinstance(value, dict):
        return [where]
    return [leaf for k, v in value.items() for leaf in _leaves(f"{where}.{k}", v)]


def _unknown(path: str, name: str, known: list[str], value: Any = None) -> ConfigError:
    prefix = f"{path}." if path else ""
    where = f"{prefix}{name}"
    for leaf in _leaves(where, value):
        if leaf in VERL_FIELDS:
            return ConfigError(
                f"unknown config field '{leaf}' (verl's name; ours is {VERL_FIELDS[leaf]})"
            )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config field '{where}'{hint}")


def _build(cls: type, values: dict[str, Any], path: str = "") -> Any:
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        if name not in hints:
            raise _unknown(path, name, names, value)
        where = f"{path}.{name}" if path else name
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a mapping of fields, got {value!r}")
            kwargs[name] = _build(hints[name], value, where)
        else:
            kwargs[name] = _coerce(where, value, hints[name])
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # core's PolicyLossConfig names the field without its section
        raise ConfigError(f"{path}.{err}" if path else str(err)) from None


def _set_dotted(tree: dict[str, Any], key: str, value: str) -> None:
    *sections, leaf = key.split(".")
    node = tree
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field '{key}': '{section}' is not a section")
    node[leaf] = value


def _apply_overrides(tree: dict[str, Any], overrides: list[str]) -> None:
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        _set_dotted(tree, key.strip(), value.strip())


def override(config: Config, overrides: list[str]) -> Config:
    """A new config: `config` with `section.field=value` overrides, checked as `load_config`
    checks them. Every field of `config` is set, so `SCALE_DEFAULTS` changes nothing here."""
    tree = config_to_dict(config)
    _apply_overrides(tree, list(overrides))
    return _build(Config, tree)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Build the config from an optional YAML file, then `section.field=value` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        tree = loaded or {}
    _apply_overrides(tree, list(overrides))
    return _build(Config, _with_scale_defaults(tree))


def default_config(model_path: str = "") -> Config:
    """The defaults of a run on the embedded task (model_path empty, the same as `Config()`)
    or on the local model at model_path: what `load_config` gives with nothing else set."""
    return _build(Config, _with_scale_defaults({"model": {"path": model_path}}))


def _with_scale_defaults(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of `tree` (the user's sections) where every `SCALE_DEFAULTS` field the user did
    not set has its value for the run's scale: embedded when model.path is empty or unset,
    the real model's when it is set. Malformed sections are left for `_build` to reject."""
    model = tree.get("model")
    path = model.get("path", "") if isinstance(model, dict) else ""
    out = {name: dict(node) if isinstance(node, dict) else node for name, node in tree.items()}
    for key, value in scale_defaults(path if isinstance(path, str) else "").items():
        section, name = key.split(".")
        node = out.setdefault(section, {})
        if isinstance(node, dict):
            node.setdefault(name, value)
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field docstrings: the string literal right after each annotated field."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def describe_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every leaf field, for `--help`. A field of
    `SCALE_DEFAULTS` shows both its values and, after its help, why they differ."""
    return _describe(cls(), prefix)


def _describe(section: Any, prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    docs = _attribute_docs(type(section))
    for f in dataclasses.fields(section):
        name, value = f"{prefix}{f.name}", getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            rows += _describe(value, f"{name}.")
        elif name in SCALE_DEFAULTS:
            scaled = SCALE_DEFAULTS[name]
            default = f"{_short(scaled.embedded)} (embedded task) / {_short(scaled.real)} (--model)"
            doc = " ".join(filter(None, [docs.get(f.name, ""), f"Scale-dependent: {scaled.why}."]))
            rows.append((name, default, doc))
        else:
            rows.append((name, _short(value), docs.get(f.name, "")))
    return rows


def _short(value: Any) -> str:
    """repr, with small floats in the paper's notation: 1e-4, not 0.0001."""
    if isinstance(value, float) and value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return repr(value)
