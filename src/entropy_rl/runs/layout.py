"""The directory layout: every file and folder name that a run, a base model, an experiment
and a report write, in one place.

Standard library only, so that whatever reads these directories (the report, the summary,
the commands) finds them without importing the training stack. Metric key names are in
`entropy_rl.runs.metric_keys`.
"""

from __future__ import annotations

from pathlib import Path

# ---- a run directory (`entropy-rl train`) -----------------------------------------------

CONFIG_FILE = "config.yaml"
"""The resolved config of a run directory (and of each of its checkpoints)."""
METRICS_FILE = "metrics.jsonl"
"""The per-step log of a run directory (keys: docs/metrics.md)."""
SUMMARY_FILE = "summary.json"
"""The end-of-run summary, written last: a run directory holding it is finished."""
DYNAMICS_PLOT = "dynamics.png"
"""Accuracy, entropy, covariance and Lemma 1 over the steps of a run."""
LAW_PLOT = "entropy_law.png"
"""The fitted law and its early-fit forecast (a run directory; `entropy-rl fit`'s folder)."""
LAW_RESULT = "entropy_law.json"
"""`entropy-rl fit`'s numbers, beside its LAW_PLOT."""
LOCK_FILE = ".lock"
"""The lock file of a run, demo or experiment directory."""
TENSORBOARD_DIR = "tensorboard"
"""TensorBoard's folder in a run directory."""
WANDB_ID_FILE = "wandb_id.txt"
"""The W&B run id of a run directory, so a resumed run continues the same W&B run."""

# ---- a checkpoint, `<run dir>/checkpoint-<step>/` ---------------------------------------

CHECKPOINT_PREFIX = "checkpoint-"
"""A checkpoint's folder is this prefix and its step, zero-padded to 6 digits."""
CHECKPOINT_MODEL_DIR = "model"
"""The model and tokenizer of a checkpoint (`save_pretrained`); with LoRA, the adapter
(`ADAPTER_CONFIG_FILE`, `ADAPTER_WEIGHTS_FILE`) and the tokenizer."""
ADAPTER_CONFIG_FILE = "adapter_config.json"
"""A LoRA adapter's settings (PEFT's format; model.lora_rank > 0)."""
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
"""A LoRA adapter's weights, PEFT's key names (`base_model.model.<module>.lora_A.weight`)."""
CHECKPOINT_STATE_FILE = "trainer_state.pt"
"""The optimizer, the generators and the step of a checkpoint."""
CHECKPOINT_MANIFEST_FILE = "manifest.json"
"""The checksums of a checkpoint's files."""


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """The folder of the checkpoint of `step` in `run_dir`."""
    return run_dir / f"{CHECKPOINT_PREFIX}{step:06d}"


# ---- a base model, `<pretrain.cache_dir>/<task>-<key>/` ---------------------------------

PRETRAIN_FILE = "pretrain.json"
"""Written last into a base model's directory: its config, losses, checks and metrics."""


def base_model_name(task: str, key: str) -> str:
    """A base model's folder name in the cache: its task's name and its cache key."""
    return f"{task}-{key}"


def base_model_lock(directory: Path) -> Path:
    """The lock file held while the base model of `directory` is made: `.<name>.lock` beside it."""
    return directory.with_name(f".{directory.name}.lock")


# ---- an experiment directory (`entropy-rl experiment`) ----------------------------------

MANIFEST_FILE = "experiment.json"
"""Written in the experiment directory: every run's labels and directory, and the wall time."""
LOG_DIR = "logs"
"""Subdirectory of the experiment directory holding each process's output."""

# ---- a report folder (`entropy-rl report --out`) ----------------------------------------

REPORT_FILE = "report.html"
"""The self-contained report, figures embedded."""
MARKDOWN_FILE = "report.md"
"""The same report as Markdown, next to its PNGs."""
VERDICTS_FILE = "verdicts.json"
"""Each claim's verdict and the numbers behind it."""
