"""The run config's remaining sections (the machinery: rollout engine, ranks, logging) and
`Config`, the tree of every section."""

from __future__ import annotations

from dataclasses import dataclass, field

from entropy_rl.config.scale import _embedded_loss
from entropy_rl.config.sections import (
    DiagnosticsConfig,
    EvalConfig,
    ModelConfig,
    PretrainConfig,
    TaskConfig,
    TrainConfig,
    _finite,
)
from entropy_rl.errors import ConfigError
from entropy_rl.loss_config import PolicyLossConfig

STRATEGIES = ("ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class RolloutConfig:
    """The engine that samples responses; the trainer's weights are synced to it every step."""

    engine: str = "transformers"
    """transformers (our KV-cache sampler on the training model) or vllm (GPU; the `vllm`
    extra, imported only when chosen; not run in this project's CI); or an engine registered
    with `entropy_rl.training.engines.register_engine`."""
    gpu_memory_utilization: float = 0.3
    """vllm: share of the GPU memory vLLM may take, beside the training model."""
    sampling: str = "multinomial"
    """transformers: how a token is drawn from softmax(logits / temperature). multinomial
    (default): `torch.multinomial`'s draw bit for bit, one exponential random number per
    vocabulary entry; every documented run used it. inverse_cdf: one uniform random number
    per response and token, against the float64 cumulative sum of the probabilities: the
    same distribution, other tokens from the same seed. At a 151,936-token vocabulary on a
    CPU the exponential numbers are most of a decoding step, and inverse_cdf makes the
    rollout several times faster (docs/benchmarks.md); on a GPU both are cheap."""

    def __post_init__(self) -> None:
        _finite(self)
        for name in ("engine", "sampling"):
            if not getattr(self, name):
                raise ConfigError(f"rollout.{name} must be a name, got {getattr(self, name)!r}")
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
