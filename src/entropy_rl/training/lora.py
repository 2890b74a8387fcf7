"""LoRA adapters on the policy of an RL run (model.lora_rank > 0), with `peft`.

1. The adapters are injected in place (`peft.inject_adapter_in_model`): the policy stays
   the Hugging Face model it was (the sampler, the float32 head, DDP and FSDP2 see the same
   modules), each target Linear gains lora_A (r, in) and lora_B (out, r), and every other
   weight is frozen (requires_grad False), so the optimizer holds the adapters only.
2. lora_B starts at zero, so the policy before the first update is the base model; lora_A's
   random start is drawn from `seed`, the same on every rank, without touching the global
   generator.
3. A checkpoint holds the adapter only, in PEFT's format (`Adapter`); a resume loads the
   base model from where the run started (model.path, or the embedded base model's cache)
   and the adapter onto it (`load_adapter`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from entropy_rl.config import ModelConfig, lora_targets
from entropy_rl.errors import ConfigError, RunError, os_errors_of
from entropy_rl.runs.layout import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE

PEFT_PREFIX = "base_model.model."
"""What PEFT's saved adapters put before a module's name (its `PeftModel` wrapping)."""
ADAPTER_MARK = ".lora_"
"""In a parameter's name: an adapter weight (lora_A, lora_B), trained; the rest is frozen."""


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError(
            "model.lora_rank > 0 needs peft: pip install -e '.[lora]' (from the clone)"
        ) from None
    return peft


def is_adapter(name: str) -> bool:
    """Whether the parameter `name` is an adapter weight."""
    return ADAPTER_MARK in name


def add_lora(model: torch.nn.Module, config: ModelConfig, seed: int) -> torch.nn.Module:
    """`model` with adapters on config.lora_target_modules and every other weight frozen;
    ConfigError when a target names no Linear module of the model."""
    peft = _peft()
    targets = lora_targets(config)
    _check_targets(model, targets)
    settings = peft.LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            peft.inject_adapter_in_model(settings, model)
        except (ValueError, TypeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"model.lora_target_modules: {first}") from None
    for name, param in model.named_parameters():
        param.requires_grad_(is_adapter(name))
    return model


def _check_targets(model: torch.nn.Module, targets: list[str]) -> None:
    """ConfigError naming the first target that is no Linear module of `model` (a name
    matches a module whose dotted name is it or ends with it)."""
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for target in targets:
        if not any(n == target or n.endswith(f".{target}") for n in linear):
            names = sorted({n.rsplit(".", 1)[-1] for n in linear})
            raise ConfigError(
                f"model.lora_target_modules: the model has no Linear module {target!r} "
                f"(its Linear modules: {', '.join(names)})"
            )


def trainable_share(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, all) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def adapter_weights(model: torch.nn.Module, state_dict: dict | None = None) -> dict:
    """The adapter's tensors under PEFT's saved names, from `state_dict` (the model's full or
    trainable weights gathered over ranks) or from `model` itself."""
    from peft import get_peft_model_state_dict

    weights = get_peft_model_state_dict(model, state_dict=state_dict)
    return {PEFT_PREFIX + key: value.detach().cpu().contiguous() for key, value in weights.items()}


class Adapter:
    """What a checkpoint saves of a LoRA policy: its `save_pretrained` writes the adapter
    (settings and weights), not the base model."""

    def __init__(self, model: torch.nn.Module, base: str) -> None:
        self.model, self.base = model, base

    def save_pretrained(self, directory: str | Path, state_dict: dict | None = None) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = copy.copy(self.model.peft_config["default"])
        settings.base_model_name_or_path = self.base
        with os_errors_of(directory):
            settings.save_pretrained(directory)
            weights = adapter_weights(self.model, state_dict)
            save_file(weights, directory / ADAPTER_WEIGHTS_FILE, metadata={"format": "pt"})


def is_adapter_dir(directory: Path) -> bool:
    """Whether `directory` holds a saved adapter (rather than a whole model)."""
    return (Path(directory) / ADAPTER_CONFIG_FILE).is_file()


def load_adapter(model: torch.nn.Module, directory: Path) -> None:
    """Set the adapter weights of `model` (from `add_lora`) to those saved in `directory`;
    RunError naming the file when they are not this model's adapter."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(directory) / ADAPTER_WEIGHTS_FILE
    try:
        saved = load_file(path)
    except Exception as err:  # missing or garbled: safetensors raises its own types
        raise RunError(f"{path}: not a readable adapter ({err})") from None
    weights = {key.removeprefix(PEFT_PREFIX): value for key, value in saved.items()}
    expected = get_peft_model_state_dict(model)
    if weights.keys() != expected.keys() or any(
        weights[k].shape != v.shape for k, v in expected.items()
    ):
        raise RunError(
            f"{path}: not an adapter of this model's model.lora_* settings "
            f"({len(weights)} tensors, the model has {len(expected)})"
        )
    set_peft_model_state_dict(model, weights)
