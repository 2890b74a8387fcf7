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
  directory sits in a run directory; a LoRA run's checkpoint (an adapter in model/) is its
  adapter on its base model (model.path, or the embedded base model in its cache), with the
  run's config (or the checkpoint's own config.yaml);
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
from rich.console import Console

from entropy_rl.config import Config, ConfigError, load_config
from entropy_rl.runs import checkpoint
from entropy_rl.runs.layout import CHECKPOINT_MODEL_DIR, CONFIG_FILE
from entropy_rl.tasks import Problem, Task, make_reward, make_task
from entropy_rl.tasks.base_models import base_model_dir
from entropy_rl.tasks.dataset import DatasetTask, load_problems
from entropy_rl.training.checks import check
from entropy_rl.training.lora import add_lora, is_adapter_dir, load_adapter
from entropy_rl.training.models import load_pretrained
from entropy_rl.training.policy import Policy, RolloutWorker
from entropy_rl.training.rollout import logits_rows, policy_sampler
from entropy_rl.training.runner import progress_bar, require_plain_logits
from entropy_rl.training.validation import (
    EvalProgress,
    accuracy,
    pass_at_k_table,
    sample_statistics,
)


@dataclass(frozen=True)
class EvalTarget:
    """The model to evaluate, the run it comes from (if any) and the config to use."""

    model_dir: Path
    run_dir: Path | None
    config: Config
    base_dir: Path | None = None
    """The base model of a LoRA checkpoint (model_dir holds its adapter); None otherwise."""


def resolve_target(
    path: str | Path,
    config_file: str | Path | None = None,
    overrides: list[str] = (),
    data: str | Path | None = None,
) -> EvalTarget:
    """What `path` names (see the module docstring); ConfigError if it names nothing usable."""
    path = Path(path)
    model = path / CHECKPOINT_MODEL_DIR
    if (model / "config.json").is_file() or is_adapter_dir(model):  # before the run's test
        run_dir = path.parent if (path.parent / CONFIG_FILE).is_file() else None
        model_dir = model
    elif (path / CONFIG_FILE).is_file():
        found = checkpoint.find_checkpoint(path)
        if found is None:
            raise ConfigError(f"{path}: the run has no checkpoint to evaluate yet")
        run_dir, model_dir = path, found / CHECKPOINT_MODEL_DIR
    elif (path / "config.json").is_file():
        run_dir, model_dir = None, path
    else:
        raise ConfigError(
            f"{path}: not a run directory ({CONFIG_FILE}), a checkpoint (model/) or a saved "
            "model (config.json)"
        )
    adapter = is_adapter_dir(model_dir)
    own = model_dir.parent / CONFIG_FILE if adapter and run_dir is None else None
    if (run_dir is not None or own is not None) and config_file is not None:
        raise ConfigError("--config: a run is evaluated with its own config; use overrides")
    settings = run_dir / CONFIG_FILE if run_dir is not None else own or config_file
    base_dir = _adapter_base(load_config(settings, overrides)) if adapter else None
    extra = [] if data is None else ["task.name=dataset", f"task.train_file={data}"]
    extra += [f"model.path={base_dir or model_dir}"] if data is not None else []
    config = check(load_config(settings, [*overrides, *extra]))
    return EvalTarget(model_dir, run_dir, config, base_dir)


def _adapter_base(config: Config) -> Path:
    """Where a LoRA run's base model is: model.path, or the embedded base model's cache."""
    return Path(config.model.path) if config.model.path else base_model_dir(config)


def _problems(config: Config, data: str | Path | None) -> tuple[Task, list[Problem]]:
    if data is None:
        task = make_task(config.task)
        return task, task.validation_problems()
    problems = load_problems(data, config.task.prompt_key, config.task.answer_key)
    return DatasetTask(config.task, problems), problems


def _load(target: EvalTarget):
    """The model and tokenizer of `target`: a LoRA checkpoint's adapter on its base model."""
    try:
        model, tokenizer = load_pretrained(target.base_dir or target.model_dir)
    except ValueError as err:
        what = f"the base model of {target.model_dir}: " if target.base_dir else ""
        raise ConfigError(f"{what}{err}") from None
    if target.base_dir is not None:
        add_lora(model, target.config.model, target.config.train.seed)
        load_adapter(model, target.model_dir)
    return model, tokenizer


def _policy(target: EvalTarget, task: Task) -> tuple[Policy, RolloutWorker]:
    """The model of `target` and its worker: our sampler by `rollout.sampling`, on `task`."""
    config = target.config
    model, tokenizer = _load(target)
    require_plain_logits(model, target.model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = config.model.autocast and device.type == "cuda" and torch.cuda.is_bf16_supported()
    policy = Policy(
        model.to(device).eval(),
        tokenizer,
        chat_template=config.model.chat_template,
        autocast=autocast,
    )
    engine = policy_sampler(policy, config.rollout.sampling)
    return policy, RolloutWorker(engine, task, make_reward(config.task, task))


def _measure(
    policy: Policy,
    worker: RolloutWorker,
    problems: list[Problem],
    config: Config,
    progress: EvalProgress,
):
    """eval.samples samples per problem (`sample_statistics`), then greedy accuracy when
    eval.greedy (else None), and its failed reward calls; the work reported to `progress`."""
    settings, timeout = config.eval, config.train.reward_timeout_s
    generator = torch.Generator(policy.device).manual_seed(settings.seed)
    stats = sample_statistics(
        policy,
        worker,
        problems,
        settings.samples,
        generator,
        timeout,
        settings.temperature,
        logits_rows(policy.model, config.train.logits_mib),
        progress,
    )
    if not settings.greedy:
        return stats, None, 0
    scores, errors = accuracy(policy, worker, problems, None, True, timeout, progress=progress)
    return stats, float(scores.mean()), errors


def evaluate_model(
    path: str | Path,
    data: str | Path | None = None,
    *,
    config_file: str | Path | None = None,
    overrides: list[str] = (),
    show_progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the model `path` names (see the module docstring); returns the JSON-ready
    result `entropy-rl eval` prints. `show_progress`: a progress display on stderr, over the
    sampled and the greedy responses. Raises ConfigError (one line) for a bad target, config
    or data file."""
    target = resolve_target(path, config_file, list(overrides), data)
    config = target.config
    task, problems = _problems(config, data)
    policy, worker = _policy(target, task)
    settings = config.eval
    with progress_bar(Console(stderr=True), show_progress) as bar:
        total = len(problems) * (settings.samples + settings.greedy)  # responses
        task_id = bar.add_task("eval", total=total, status="")

        def progress(advance: int, status: str) -> None:
            bar.update(task_id, advance=advance, status=status)

        stats, greedy, greedy_errors = _measure(policy, worker, problems, config, progress)
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
