"""The Python API, exported by the package (`entropy_rl.train`, ...) and imported only when
first used, so `import entropy_rl` loads neither torch nor transformers.

    import entropy_rl
    config = entropy_rl.load_config(overrides=["loss.mode=kl_cov", "train.steps=50"])
    summary = entropy_rl.train(config, "runs/klcov")      # the run directory's summary.json
    records = entropy_rl.read_metrics("runs/klcov")       # metrics.jsonl as a list of dicts
    fit = entropy_rl.fit_log("runs/klcov")                # R = -a exp(H) + b on val/acc
    result = entropy_rl.evaluate("runs/klcov", overrides=["eval.samples=16"])

Errors a user can fix (a bad field, a missing file) raise `ConfigError` with one line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from entropy_rl.analysis.law import DEFAULT_CI_LEVEL, EntropyLawFit, fit_entropy_law
from entropy_rl.analysis.readers import read_entropy_reward
from entropy_rl.config import Config, override
from entropy_rl.config import load_config as _load_config
from entropy_rl.runs.layout import METRICS_FILE
from entropy_rl.runs.metrics_log import read_records


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The run config from an optional YAML file and `section.field=value` overrides (as the
    commands read it), checked against the registries: an unknown loss mode, task, advantage
    estimator or rollout engine raises `ConfigError` here, not when the run starts."""
    from entropy_rl.training.checks import check  # the registries: torch

    return check(_load_config(path, list(overrides)))


def default_run_dir(config: Config) -> Path:
    """runs/<loss.mode>-<timestamp>: where a run goes when no directory is named."""
    return Path("runs") / f"{config.loss.mode}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    config: Config | str | Path | None = None,
    run_dir: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train (as `entropy-rl train`) and return the end-of-run summary (summary.json's content).

    Args:
        config: a `Config`, a YAML file's path, or None for the defaults.
        run_dir: a new run directory (default: runs/<loss.mode>-<timestamp>).
        overrides: `section.field=value` strings applied on top of `config`.
        show_progress: the progress display (on stderr); the summary table goes to stdout
            either way.
    A run stopped by Ctrl-C returns {"stopped_at": step}; continue it with `resume`.
    """
    from entropy_rl.training import runner  # torch and transformers from here on

    if isinstance(config, Config):
        config = override(config, list(overrides))
    else:
        config = _load_config(config, list(overrides))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    return runner.train(config, run_dir, show_progress=show_progress)


def resume(run_dir: str | Path, *, show_progress: bool = True) -> dict[str, Any]:
    """Continue the run in `run_dir` from its newest checkpoint that verifies, with its saved
    config (see `entropy_rl.runs.resume_point`); a finished run is left as it is, and one stopped at
    saturation too unless its config.yaml no longer stops it there (`runner.continues`)."""
    from entropy_rl.training import runner

    return runner.train(None, Path(run_dir), resume=True, show_progress=show_progress)


def evaluate(
    target: str | Path,
    data: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    config: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a run's last checkpoint, a checkpoint or a model directory (as `entropy-rl
    eval`): pass@k for every k <= eval.samples, greedy accuracy, answer and token entropy.
    `config` is a YAML file for a model directory (a run uses its own)."""
    from entropy_rl.commands.evaluate import evaluate_model

    return evaluate_model(target, data, config_file=config, overrides=list(overrides))


def _metrics_path(source: str | Path) -> Path:
    source = Path(source)
    return source / METRICS_FILE if source.is_dir() else source


def read_metrics(source: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl (a run directory or the file), in step order."""
    return read_records(_metrics_path(source))


def fit_log(
    source: str | Path,
    entropy_key: str | None = None,
    reward_key: str | None = None,
    *,
    preset: str | None = None,
    ci_level: float = DEFAULT_CI_LEVEL,
) -> EntropyLawFit:
    """The entropy-performance law fitted on any log `entropy-rl fit` reads: a run directory,
    JSONL, CSV, a TRL trainer_state.json or output directory, TensorBoard events, a W&B run,
    verl's console or file log (`entropy_rl.analysis.readers`). Keys default as in `entropy-rl fit`:
    `preset` ("entropy_rl", "verl", "trl", "openrlhf"), else the first preset the log
    matches."""
    series = read_entropy_reward(source, entropy_key, reward_key, preset=preset)
    return fit_entropy_law(series.entropy, series.reward, ci_level=ci_level)
