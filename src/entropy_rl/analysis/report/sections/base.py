"""What the sections share: `Section`, the blocks it holds, and the selections of runs they
make (tasks, methods, the main size, the reference runs)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from entropy_rl.analysis.report.data import RunData, main_size
from entropy_rl.analysis.report.stats import mean_curve
from entropy_rl.analysis.report.verdicts import Verdict
from entropy_rl.config.methods import REFERENCE_METHOD

DPI = 110


@dataclass
class Section:
    """A heading and its blocks in order: ("text", str), ("table", header, rows) or
    ("figure", file name); rendered to HTML and Markdown by `report.build`."""

    heading: str
    blocks: list[tuple] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def text(self, line: str) -> None:
        self.blocks.append(("text", line))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", [str(h) for h in header], [[str(c) for c in r] for r in rows]))

    def figure(self, name: str, fig: Figure) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        self.figures[name] = buffer.getvalue()
        self.blocks.append(("figure", name))


def _tasks(runs: list[RunData]) -> list[str]:
    return list(dict.fromkeys(run.task for run in runs))


def _methods(runs: list[RunData]) -> list[str]:
    """Methods in first-seen order, the reference method first."""
    methods = list(dict.fromkeys(run.method for run in runs))
    return sorted(methods, key=lambda m: m != REFERENCE_METHOD)


def _main_runs(runs: list[RunData], task: str) -> list[RunData]:
    size = main_size(runs, task)
    return [run for run in runs if run.task == task and run.size == size]


def _reference(runs: list[RunData]) -> list[RunData]:
    """GRPO runs when there are any, else every run (logs from elsewhere)."""
    grpo = [run for run in runs if run.method == REFERENCE_METHOD]
    return grpo or runs


def _plot_spread(ax, group: list[RunData], key: str, color: int, label: str) -> None:
    """`key` against step: the mean over the runs of `group` as a line, min to max as a band."""
    steps, mean, low, high = mean_curve(group, key)
    ax.plot(steps, mean, color=f"C{color}", label=label)
    ax.fill_between(steps, low, high, color=f"C{color}", alpha=0.15, lw=0)


def _with(runs: list[RunData], key: str) -> list[RunData]:
    return [r for r in runs if r.column(key)[1].size]


def _signed(x: float) -> str:
    """A signed number to two decimals, '–' for NaN."""
    return f"{x:+.2f}" if np.isfinite(x) else "–"


def _values(x: np.ndarray) -> str:
    """Numbers to two decimals, '–' where there is none (NaN)."""
    return " ".join(f"{v:.2f}" if np.isfinite(v) else "–" for v in x)
