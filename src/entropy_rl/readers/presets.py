"""Where each framework puts the policy entropy H, the performance R and the step: one
`Preset` per framework, its keys as that framework's own code names them.

A key may be a pattern, `*` standing for any text (verl names validation metrics after the
data source: `val-core/openai/gsm8k/acc/mean@4`). A preset's keys are tried in order, in
every format the framework writes (a TRL trainer_state.json says `entropy`, its TensorBoard
and W&B logs `train/entropy`, as Hugging Face's callbacks rename them). R is validation
performance first; a preset falls back to the training reward only after every validation
key, and the fit says which key it used.

Sources (read for this table; versions named):
- entropy_rl: `metric_keys` (entropy/mean, val/acc).
- verl 0.7: `actor/entropy` (dp_actor's metrics), validation
  `val-core/<data source>/<var>/mean@<n>` (`process_validation_metrics` in
  verl/trainer/ppo/metric_utils.py, the "core" variable at the largest n) and the older
  `val/test_score/<data source>`; training reward `critic/score/mean`; the step is
  `Tracking.log`'s step (the console's `step:N`, the file logger's "step").
- TRL 1.16: GRPOTrainer's `entropy`, `reward`, and `eval_reward` when it evaluates;
  `train/<key>` and `eval/<key>` through Hugging Face's TensorBoard and W&B callbacks.
- OpenRLHF: see OPENRLHF below.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_rl.metric_keys import ENTROPY_MEAN, STEP, VAL_ACC


@dataclass(frozen=True)
class Preset:
    """A framework's keys, each tuple tried in order (see the module docstring).

    Attributes:
        name: The `--from` value.
        entropy: Keys (or patterns) of the policy entropy H.
        reward: Keys (or patterns) of the performance R, validation first.
        step: Keys of the training step, when the format has none of its own.
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
        "val-core/*/mean@*",
        "val/test_score/*",
        "critic/score/mean",
    ),
    ("step", "training/global_step"),
)
OPENRLHF = Preset(
    "openrlhf",
    ("train/entropy", "train/policy_entropy"),
    ("eval/*pass1*", "eval/*", "train/reward", "train/reward_mean"),
    ("global_step", "train/global_step"),
)
TRL = Preset(
    "trl",
    ("entropy", "train/entropy"),
    ("eval_reward", "eval/reward", "reward", "train/reward"),
    ("step", "train/global_step", "global_step"),
)
PRESETS = {p.name: p for p in (ENTROPY_RL, VERL, TRL, OPENRLHF)}
"""The presets by name, in the order they are tried when none is named."""
GENERIC_STEP_KEYS = ("step", "Step", "_step", "global_step")
"""Step keys tried after a preset's own (a CSV export's "Step", W&B's "_step")."""
