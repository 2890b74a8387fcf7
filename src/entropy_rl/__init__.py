"""entropy_rl: policy entropy in RL of language models (Cui et al., 2025).

The Python API (see `entropy_rl.api`): `train`, `resume`, `evaluate`, `load_config`,
`Config`, `read_metrics`, `fit_log`, `fit_entropy_law`. Each is imported on first use, so
`import entropy_rl` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "entropy_rl.api",
    "resume": "entropy_rl.api",
    "evaluate": "entropy_rl.api",
    "read_metrics": "entropy_rl.api",
    "fit_log": "entropy_rl.api",
    "load_config": "entropy_rl.config",
    "Config": "entropy_rl.config",
    "ConfigError": "entropy_rl.config",
    "fit_entropy_law": "entropy_rl.law",
    "EntropyLawFit": "entropy_rl.law",
}
"""Public name -> the module that defines it."""

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'entropy_rl' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
