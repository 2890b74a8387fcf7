"""`entropy-rl eval`: a saved model, or a run's checkpoint, on a data file or on its task's
validation prompts.

n = `eval.samples` samples per prompt at `eval.temperature`, drawn with `eval.seed`; reported:
the unbiased pass@k for every k <= n (`core.pass_at_k`; pass@1 is the mean reward of the
samples, the estimator of training's `val/acc`), greedy accuracy (`val/acc_greedy`), the
answer entropy (how many distinct final answers a prompt's samples give, in nats, mean over
prompts) and the token entropy of the samples (the policy entropy H on these prompts).

What is evaluated:
- a run directory (config.yaml): its newest checkpoint that verifies, on the run's task (the same
  validation prompts as its `val/*` metrics), with the run's config plus the overrides;
- a checkpoint directory (holding model/): that model, with its run's config when the
  directory sits in a run directory;
- a model directory (config.json, saved with `save_pretrained`): with the defaults plus
  `--config` and the overrides (the embedded task sum3 unless `task.name` says otherwise).
`--data FILE` (.jsonl / .json / .parquet, `task.prompt_key` / `task.answer_key`) replaces the
task's prompts by every row of the file, scored by the math reward unless `--reward` says
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from entropy_rl import checkpoint
from entropy_rl.config import Config, ConfigError, load_config
from entropy_rl.evaluation import accuracy, pass_at_k_table, sample_statistics
from entropy_rl.layout import CONFIG_FILE
from entropy_rl.models import load_pretrained
from entropy_rl.policy import Policy
from entropy_rl.tasks import Problem, Task, make_reward, make_task
from entropy_rl.tasks.dataset import DatasetTask, load_problems


@dataclass(frozen=True)
class EvalTarget:
    """The model to evaluate, the run it comes from (if any) and the config to use."""

    model_dir: Path
    run_dir: Path | None
    config: Config


def resolve_target(
    path: str | Path,
    config_file: str | Path | None = None,
    overrides: list[str] = (),
    data: str | Path | None = None,
) -> EvalTarget:
    """What `path` names (see the module docstring); ConfigError if it names nothing usable."""
    path = Path(path)
    if (path / "model" / "config.json").is_file():  # before the run: it has a config.yaml too
        run_dir = path.parent if (path.parent / CONFIG_FILE).is_file() else None
        model_dir = path / "model"
    elif (path / CONFIG_FILE).is_file():
        found = checkpoint.find_checkpoint(path)
        if found is None:
            raise ConfigError(f"{path}: the run has no checkpoint to evaluate yet")
        run_dir, model_dir = path, found / "model"
    elif (path / "config.json").is_file():
        run_dir, model_dir = None, path
    else:
        raise ConfigError(
            f"{path}: not a run directory ({CONFIG_FILE}), a checkpoint (model/) or a saved "
            "model (config.json)"
        )
    if run_dir is not None and config_file is not None:
        raise ConfigError("--config: a run is evaluated with its own config; use overrides")
    extra = [] if data is None else ["task.name=dataset", f"task.train_file={data}"]
    extra += [f"model.path={model_dir}"] if data is not None else []
    base = run_dir / CONFIG_FILE if run_dir is not None else config_file
    return EvalTarget(model_dir, run_dir, load_config(base, [*overrides, *extra]))


def _problems(config: Config, data: str | Path | None) -> tuple[Task, list[Problem]]:
    if data is None:
        task = make_task(config.task)
        return task, task.validation_problems()
    problems = load_problems(data, config.task.prompt_key, config.task.answer_key)
    return DatasetTask(config.task, problems), problems


def _policy(target: EvalTarget, task: Task) -> Policy:
    config = target.config
    try:
        model, tokenizer = load_pretrained(target.model_dir)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = config.model.autocast and device.type == "cuda" and torch.cuda.is_bf16_supported()
    return Policy(
        model.to(device).eval(),
        tokenizer,
        task,
        make_reward(config.task, task),
        chat_template=config.model.chat_template,
        autocast=autocast,
    )


def evaluate_model(
    path: str | Path,
    data: str | Path | None = None,
    *,
    config_file: str | Path | None = None,
    overrides: list[str] = (),
) -> dict[str, Any]:
    """Evaluate the model `path` names (see the module docstring); returns the JSON-ready
    result `entropy-rl eval` prints. Raises ConfigError (one line) for a bad target, config
    or data file."""
    target = resolve_target(path, config_file, list(overrides), data)
    config = target.config
    task, problems = _problems(config, data)
    policy = _policy(target, task)
    settings, timeout = config.eval, config.train.reward_timeout_s
    generator = torch.Generator(policy.device).manual_seed(settings.seed)
    stats = sample_statistics(
        policy, problems, settings.samples, generator, timeout, settings.temperature
    )
    greedy, greedy_errors = None, 0
    if settings.greedy:
        scores, greedy_errors = accuracy(policy, problems, None, True, timeout)
        greedy = float(scores.mean())
    return {
        "model": str(target.model_dir),
        "run": None if target.run_dir is None else str(target.run_dir),
        "data": str(data) if data is not None else f"task {config.task.name} validation prompts",
        "prompts": len(problems),
        "samples": settings.samples,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "pass_at_k": pass_at_k_table(stats),
        "acc_greedy": greedy,
        "answer_entropy": stats.answer_entropy,
        "entropy": stats.token_entropy,
        "reward_errors": stats.reward_errors + greedy_errors,
    }
