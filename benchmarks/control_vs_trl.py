"""TRL's own adaptive entropy bonus against our controller, on the same work, and the table.

`--train OUT`: TRL 1.16's `GRPOTrainer` with `use_adaptive_entropy=True` (its fixed-step
rule: the bonus from 0, `entropy_coef_delta` 0.005 per optimizer step, within [0, 1], applied
only at or below `entropy_target`) trains the embedded base model on the embedded task, as
our runs of experiments/control_vs_field.yaml do: 16 prompts x 8 completions per rollout
step, 4 optimizer steps of 32 completions on it (steps_per_generation=4, one iteration),
at most 8 completion tokens, temperature 1, lr 5e-5 constant, grad clip 1, the PPO clip 0.2,
no KL term, the loss normalised by the mini-batch's tokens (loss_type 'bnpo', our
token_mean), the same reward. Its prompts are drawn from the task by the seed, in TRL's own
order. Every `eval.every` rollout steps (and at 0 and the last), our validation
(`training.validation.evaluate`) measures the model on the same prompts, samples and seeds as
our runs' `val/*` rows. OUT/trl_adaptive/seed<s>/metrics.jsonl holds a row per rollout step:
`entropy/mean` (the mean of TRL's logged `entropy` over the step's 4 optimizer steps, what
its rule measures), `control/value` (TRL's `entropy_coef` after the step's first optimizer
step), `control/target`, and the `val/*` keys on evaluation rows.

`--table DIR ...`: every metrics.jsonl under the directories, grouped by method (its
run directory's parent), mean [min, max] over seeds: the second half's mean and largest
|H - target| (each row's `control/target` where it has one, so a moving target is followed;
`--target` for runs without a controller), the steps to first enter the band target +- 0.05, the runs that hold the target
(|mean error| <= 0.03 and every |error| <= 0.1 over the second half: the report's rule), the
knob's value over the second half (`control/value`; the bonus coefficient for the bonus arms),
and the end's sampled accuracy (mean of the last 3 evaluations), pass@k and greedy accuracy.
With `--noise SD` (the standard deviation of a fixed policy's `entropy/mean` from batch to
batch, from scripts/entropy_noise.py), a column more: the error above that noise,
sqrt(max(0, mean (H - target)^2 - SD^2)) over the second half, the root-mean-square error of
the entropy itself once the measurement's own scatter is taken out.

    .venv/bin/python benchmarks/control_vs_trl.py --train runs/cvf-trl --seeds 0 1 2
    .venv/bin/python benchmarks/control_vs_trl.py --table runs/cvf-t1 runs/cvf-trl --noise 0.017
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from entropy_rl.analysis.report.stats import control_deviations
from entropy_rl.analysis.report.verdicts import control_holds
from entropy_rl.runs.metrics_log import read_records

BAND = 0.05
UPDATES = 4


def train_trl(out: Path, seed: int, target: float, steps: int) -> Path:
    """One TRL run; returns its metrics.jsonl."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from entropy_rl.config import load_config
    from entropy_rl.runs.atomic import write_atomic
    from entropy_rl.tasks import Problem, make_task
    from entropy_rl.tasks.base_models import base_model_dir
    from entropy_rl.training.distributed import Dist
    from entropy_rl.training.policy import Policy, local_worker
    from entropy_rl.training.validation import evaluate, validation_seed

    config = load_config(None, [f"train.seed={seed}", f"train.steps={steps}"])
    train = config.train
    base = base_model_dir(config)
    if not (base / "model.safetensors").is_file():
        sys.exit(f"no base model at {base}: make it first with `entropy-rl pretrain`")
    task = make_task(config.task)
    rng = np.random.default_rng(seed)
    problems = task.sample_problems(train.prompts_per_step * (steps + 1), rng)
    data = Dataset.from_dict(
        {"prompt": [p.prompt for p in problems], "answer": [p.answer for p in problems]}
    )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(base, local_files_only=True)
    eos = tokenizer.eos_token

    def reward(prompts, completions, answer, **kwargs):
        return [
            task.reward(Problem(prompt, right), text.split(eos)[0])
            for prompt, text, right in zip(prompts, completions, answer, strict=True)
        ]

    run = out / "trl_adaptive" / f"seed{seed}"
    args = GRPOConfig(
        output_dir=str(run / "trl"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=train.prompts_per_step * train.group_size // UPDATES,
        gradient_accumulation_steps=1,
        steps_per_generation=UPDATES,
        num_generations=train.group_size,
        num_iterations=1,
        max_completion_length=task.max_response_tokens + 1,
        temperature=train.temperature,
        beta=0.0,
        epsilon=config.loss.clip_low,
        loss_type="bnpo",
        learning_rate=train.lr,
        lr_scheduler_type="constant",
        weight_decay=train.weight_decay,
        max_grad_norm=train.grad_clip,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        max_steps=UPDATES * steps,
        seed=seed,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        use_adaptive_entropy=True,
        entropy_target=target,
    )
    trainer = GRPOTrainer(
        model=str(base),
        reward_funcs=reward,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    rows: dict[int, dict] = {}
    val_problems = task.validation_problems()

    def validate(step: int) -> None:
        model = trainer.model
        was_training = model.training
        model.eval()
        policy = Policy(model, tokenizer)
        generator = torch.Generator().manual_seed(validation_seed(seed, step))
        metrics = evaluate(
            policy, local_worker(policy, task), val_problems, config.eval, generator,
            train.reward_timeout_s, Dist(),
        )  # fmt: skip
        rows.setdefault(step, {"step": step}).update(metrics)
        model.train(was_training)

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            validate(0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "entropy" in logs:
                step = (state.global_step - 1) // UPDATES
                row = rows.setdefault(step, {"step": step})
                row.setdefault("_entropy", []).append(logs["entropy"])
                row.setdefault("control/value", logs.get("entropy_coef", float("nan")))

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step // UPDATES
            due = step % config.eval.every == 0 or step == steps
            if state.global_step % UPDATES == 0 and due:
                validate(step)

    trainer.add_callback(Record())
    trainer.train()
    lines = []
    for step in sorted(rows):
        row = rows[step]
        entropy = row.pop("_entropy", None)
        if entropy:
            row["entropy/mean"] = statistics.fmean(entropy)
            row["control/target"] = target
        lines.append(json.dumps(row) + "\n")
    path = run / "metrics.jsonl"
    write_atomic(path, "".join(lines))
    return path


def _run_stats(rows: list[dict], target: float, steps: int) -> dict:
    measured = [r for r in rows if "entropy/mean" in r]
    # H - target: each row's control/target when it has one (a schedule), else `target`
    late = control_deviations(measured, target)
    entered = next(
        (
            r["step"]
            for r in measured
            if abs(r["entropy/mean"] - r.get("control/target", target)) <= BAND
        ),
        None,
    )
    evals = [r for r in rows if "val/acc" in r]
    knob = [r["control/value"] for r in rows if r["step"] >= steps / 2 and "control/value" in r]
    return {
        "knob": statistics.fmean(knob) if knob else None,
        "mean_abs": float(abs(late).mean()),
        "max_abs": float(abs(late).max()),
        "mean_square": float((late**2).mean()),
        "entered": entered,
        "holds": control_holds(float(late.mean()), float(abs(late).max())),
        "acc": statistics.fmean(r["val/acc"] for r in evals[-3:]),
        "pass": evals[-1]["val/pass_at_k"],
        "greedy": evals[-1]["val/acc_greedy"],
    }


def _spread(values, digits: int = 3, none: str = "never") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return none
    return f"{statistics.fmean(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def table(directories: list[Path], target: float, steps: int, noise: float | None = None) -> str:
    arms: dict[str, list[dict]] = {}
    for directory in directories:
        for path in sorted(directory.rglob("metrics.jsonl")):
            rows = list(read_records(path))
            last = rows[-1]["step"]
            if last < steps:  # a run still going, or stopped: not in the table
                print(f"left out, at step {last} of {steps}: {path}", file=sys.stderr)
                continue
            arms.setdefault(path.parent.parent.name, []).append(_run_stats(rows, target, steps))
    head = "| method | runs holding | mean \\|H - T\\|, 2nd half | largest \\|H - T\\| | first step in T +- 0.05 | knob, 2nd-half mean | end val/acc | end pass@k | end greedy |"
    if noise is not None:
        head += f" error above the noise ({noise:g}) |"
    lines = [head, "|" + "---|" * (9 + (noise is not None))]
    for arm, runs in arms.items():
        entered = [r["entered"] for r in runs]
        reached = [e for e in entered if e is not None]
        lines.append(
            f"| {arm} | {sum(r['holds'] for r in runs)} of {len(runs)} "
            f"| {_spread(r['mean_abs'] for r in runs)} | {_spread(r['max_abs'] for r in runs)} "
            f"| {_spread(reached, 0)}"
            f"{'' if len(reached) == len(runs) else f' ({len(runs) - len(reached)} never)'} "
            f"| {_spread((r['knob'] for r in runs), 3, '-')} | {_spread(r['acc'] for r in runs)} | {_spread(r['pass'] for r in runs)} "
            f"| {_spread(r['greedy'] for r in runs)} |"
            + ("" if noise is None else f" {_spread(_above(r, noise) for r in runs)} |")
        )
    return "\n".join(lines)


def _above(run: dict, noise: float) -> float:
    """The root-mean-square error of the entropy once a measurement noise of sd `noise` is
    taken out of the measured one (0 when the measured one is within the noise)."""
    return math.sqrt(max(0.0, run["mean_square"] - noise**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--train", type=Path, metavar="OUT", help="train TRL's arm into OUT")
    what.add_argument("--table", type=Path, nargs="+", metavar="DIR", help="print the table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="train.seed")
    parser.add_argument("--target", type=float, default=0.45, help="entropy target (nats)")
    parser.add_argument("--steps", type=int, default=150, help="rollout steps per run")
    parser.add_argument(
        "--noise",
        type=float,
        metavar="SD",
        help="--table: a fixed policy's batch-to-batch sd of entropy/mean "
        "(scripts/entropy_noise.py); adds the error above it",
    )
    args = parser.parse_args()
    if args.train is not None:
        for seed in args.seeds:
            print(
                f"TRL adaptive entropy, seed {seed}: {train_trl(args.train, seed, args.target, args.steps)}"
            )
    else:
        print(table(args.table, args.target, args.steps, args.noise))


if __name__ == "__main__":
    main()
