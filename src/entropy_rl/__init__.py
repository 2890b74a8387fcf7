"""entropy_rl: policy entropy in RL of language models (Cui et al., 2025).

The Python API (see `entropy_rl.commands.api`): `train`, `resume`, `evaluate`, `load_config`,
`Config`, `read_metrics`, `fit_log`, `fit_entropy_law`. Each is imported on first use, so
`import entropy_rl` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers read: the names, typed, without the import at run time
    from entropy_rl.analysis.law import EntropyLawFit, fit_entropy_law
    from entropy_rl.commands.api import evaluate, fit_log, load_config, read_metrics, resume, train
    from entropy_rl.config import Config, ConfigError

__version__ = "0.1.0"

_EXPORTS = {
    "train": "entropy_rl.commands.api",
    "resume": "entropy_rl.commands.api",
    "evaluate": "entropy_rl.commands.api",
    "read_metrics": "entropy_rl.commands.api",
    "fit_log": "entropy_rl.commands.api",
    "load_config": "entropy_rl.commands.api",
    "Config": "entropy_rl.config",
    "ConfigError": "entropy_rl.config",
    "fit_entropy_law": "entropy_rl.analysis.law",
    "EntropyLawFit": "entropy_rl.analysis.law",
}
"""Public name -> the module that defines it."""

__all__ = [  # as _EXPORTS, spelled out for type checkers (tests/test_api.py compares them)
    "Config",
    "ConfigError",
    "EntropyLawFit",
    "__version__",
    "evaluate",
    "fit_entropy_law",
    "fit_log",
    "load_config",
    "read_metrics",
    "resume",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'entropy_rl' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
