"""What changes during a run and is saved in its checkpoints (`RunState`), and a run stopped
at saturation (`EarlyStop`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from entropy_rl.analysis.live_law import Point
from entropy_rl.core import ControlState

RANK_SEED_STRIDE = 1_000_003
"""Rank r samples its rollouts with seed + r * RANK_SEED_STRIDE (rank 0: the run's seed)."""


@dataclass
class RunState:
    """What changes during a run and is saved in checkpoints. Every rank draws the same
    prompts and selections; each samples with its own `rollout_gen`."""

    step: int
    prompt_rng: np.random.Generator
    rollout_gen: torch.Generator
    select_gen: torch.Generator
    consecutive_bad: int = 0
    law_points: list[Point] = field(default_factory=list)
    """(H, R) of the evaluation rows so far, the live law's points."""
    control: ControlState = field(default_factory=ControlState)
    """The entropy controller's state (loss.entropy_target; unused without it)."""
    stop_requested: bool = field(default=False, repr=False)
    notices: list[str] = field(default_factory=list, repr=False)
    """Lines for the console from the last step (a knob declared inert); not saved."""
    early_stop: EarlyStop | None = field(default=None, repr=False)

    @classmethod
    def fresh(cls, seed: int, rank: int = 0, device: str | torch.device = "cpu") -> RunState:
        return cls(
            step=0,
            prompt_rng=np.random.default_rng(seed),
            rollout_gen=torch.Generator(device).manual_seed(seed + RANK_SEED_STRIDE * rank),
            select_gen=torch.Generator().manual_seed(seed + 1),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "prompt_rng": self.prompt_rng.bit_generator.state,
            "rollout_gen": self.rollout_gen.get_state(),
            "select_gen": self.select_gen.get_state(),
            "consecutive_bad": self.consecutive_bad,
            "law_points": [list(p) for p in self.law_points],
            "control": dataclasses.asdict(self.control),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], device: str | torch.device = "cpu") -> RunState:
        state = cls.fresh(0, device=device)
        state.step, state.consecutive_bad = data["step"], data["consecutive_bad"]
        state.prompt_rng.bit_generator.state = data["prompt_rng"]
        state.rollout_gen.set_state(data["rollout_gen"])
        state.select_gen.set_state(data["select_gen"])
        state.law_points = [(h, r) for h, r in data.get("law_points", [])]
        state.control = ControlState(**data.get("control", {}))
        return state

    def copy(self) -> RunState:
        """The saved part of this state, as a new state."""
        return RunState.from_dict(self.to_dict(), self.rollout_gen.device)


@dataclass(frozen=True)
class EarlyStop:
    """A run stopped at saturation (train.stop_at_saturation): the row where it stopped, why
    (`live_law.saturation`), and the run state to checkpoint, taken before that row's
    rollouts, so that a resume recomputes the row and goes on as the run would have."""

    step: int
    reason: str
    gain_left: float
    state: RunState

    def to_dict(self) -> dict[str, Any]:
        """summary.json's `stopped_early`."""
        return {"step": self.step, "reason": self.reason, "gain_left": self.gain_left}
