"""Where each framework puts the policy entropy H, the performance R and the step: one
`Preset` per framework, its keys as that framework's own code names them.

A key may be a pattern, `*` standing for any text (verl names validation metrics after the
data source: `val-core/openai/gsm8k/acc/mean@4`). A preset's keys are tried in order, in
every format the framework writes (a TRL trainer_state.json says `entropy`, its TensorBoard
and W&B logs `train/entropy`, as Hugging Face's callbacks rename them). R is validation
performance first; a preset falls back to the training reward only after every validation
key, and the fit says which key it used.

Sources (each framework's own code, the versions named; tests/fixtures holds logs their
writers wrote, made by scripts/fixtures/make_framework_logs.py):
- entropy_rl: `metric_keys` (entropy/mean, val/acc).
- verl 0.9.1: `actor/entropy` (ray_trainer.py); validation `val-core/<data source>/<var>/
  mean@<n>`, <var> `acc` when the reward function returns one, else `reward`, at the
  largest n (`process_validation_metrics`, trainer/ppo/metric_utils.py); the older
  `val/test_score/<data source>` of earlier releases (seen in their forks, not checked
  against a release); training reward `critic/score/mean`. The step is `Tracking.log`'s
  (the console's `step:N`, the file logger's "step"); validation before training is
  logged alone at step 0, without entropy.
- TRL 1.16: GRPOTrainer's `entropy`, `reward`, and `eval_reward` when it evaluates;
  `train/<key>` and `eval/<key>` through Hugging Face's TensorBoard and W&B callbacks.
- OpenRLHF 0.11.2: the mean token entropy is logged only as `train/entropy_loss`, and only
  when the run sets `--actor.entropy_coef` (0 logs it without the bonus); validation
  `eval/eval_<data source>_pass1` (`compute_eval_metrics`, trainer/ppo_trainer.py, with
  `eval/eval_<data source>_pass<n>` the best of n beside it); training reward
  `train/reward`. TensorBoard steps are the global step; its W&B runs log
  `train/global_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_rl.runs.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC


@dataclass(frozen=True)
class Preset:
    """A framework's keys, each tuple tried in order (see the module docstring).

    Attributes:
        name: The `--from` value.
        entropy: Keys (or patterns) of the policy entropy H.
        reward: Keys (or patterns) of the performance R, validation first.
        step: Keys of the training step, tried before the format's own step; "a|b" is a,
            or b in a record without a (`keys.with_step_column`).
    """

    name: str
    entropy: tuple[str, ...]
    reward: tuple[str, ...]
    step: tuple[str, ...]


ENTROPY_RL = Preset("entropy_rl", (ENTROPY_MEAN,), (VAL_ACC,), (STEP,))
VERL = Preset(
    "verl",
    ("actor/entropy",),
    (
        "val-core/*/acc/mean@*",
        "val-core/*/reward/mean@*",
        "val/test_score/*",
        "critic/score/mean",
    ),
    ("step", "training/global_step"),
)
TRL = Preset(
    "trl",
    ("entropy", "train/entropy"),
    ("eval_reward", "eval/reward", "reward", "train/reward"),
    ("step", "train/global_step", "global_step"),
)
OPENRLHF = Preset(
    "openrlhf",
    ("train/entropy_loss",),
    ("eval/eval_*_pass1", "train/reward"),
    ("train/global_step|eval/global_step", "global_step"),
)
PRESETS = {p.name: p for p in (ENTROPY_RL, VERL, TRL, OPENRLHF)}
"""The presets by name, in the order they are tried when none is named."""
GENERIC_STEP_KEYS = ("step", "Step", "_step", "global_step")
"""Step keys tried after a preset's own (a CSV export's "Step", W&B's "_step")."""
