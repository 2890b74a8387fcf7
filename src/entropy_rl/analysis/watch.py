"""`entropy-rl watch`: the entropy-performance law and its alarms on logs while they grow.

Each watched log (any that `entropy_rl.analysis.readers` reads: ours, TensorBoard, W&B, verl's
console or file log, TRL's trainer state, JSONL, CSV) is read again every `interval`
seconds. Every new evaluation (a record with both H and R) gets one line: the step, H, R,
the law fitted on the evaluations so far (`live_law.fit_so_far`, as the trainer's `law/*`
keys), the ceiling with its interval, the forecast gain left, and a status: "ok" or the
alarms that hold at that evaluation, each the `live_law` function of its rule:
- collapse: `live_law.collapse`;
- explosion: `live_law.explosion`;
- saturation: `live_law.saturation`, the rule and function of `train.stop_at_saturation`.

A log that does not exist yet, or has no evaluation yet, is waited for; a half-written last
JSON line is left for the next read. The keys are chosen once, at the log's first
evaluation, and then kept.

Standard library, numpy and the log readers: no torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from entropy_rl.analysis import live_law
from entropy_rl.analysis.law import EntropyLawFit
from entropy_rl.analysis.readers import LogIncomplete, LogReader, entropy_reward
from entropy_rl.config import TrainConfig
from entropy_rl.runs.layout import METRICS_FILE

ALARMS = ("collapse", "explosion", "saturation")
"""The alarms, in the order they are checked and reported."""
EXIT_CODES = {"collapse": 3, "explosion": 4, "saturation": 5}
"""Exit code of `--exit-on KIND` when that alarm fires (2 is a user error, 130 Ctrl-C)."""


@dataclass(frozen=True)
class Rules:
    """The alarms' thresholds (see `live_law`'s docstring for each rule)."""

    collapse_spent: float = live_law.COLLAPSE_SPENT
    collapse_gain: float = live_law.COLLAPSE_MIN_GAIN
    explosion_rise: float = live_law.EXPLOSION_RISE
    explosion_window: int = live_law.EXPLOSION_WINDOW
    min_gain: float = TrainConfig.saturation_min_gain


@dataclass(frozen=True)
class Evaluation:
    """One new evaluation of a watched log, with the law fitted on the evaluations so far.

    Attributes:
        step: Its training step.
        entropy: H.
        reward: R.
        n: Evaluations so far, this one included.
        fit: The law fitted on the evaluations so far, None below 5 of them.
        gain_left: The forecast gain left (`live_law.gain_left`), None without a fit.
        alarms: kind -> why, for the alarms that hold (ALARMS order).
    """

    step: float
    entropy: float
    reward: float
    n: int
    fit: EntropyLawFit | None
    gain_left: float | None
    alarms: dict[str, str]


def judge(points: Sequence[live_law.Point], step: float, rules: Rules) -> Evaluation:
    """The last of `points` as an Evaluation: the law so far and the alarms that hold."""
    fit = live_law.fit_so_far(points)
    saturated = live_law.saturation(fit, points, rules.min_gain)
    found = {
        "collapse": live_law.collapse(fit, points, rules.collapse_spent, rules.collapse_gain),
        "explosion": live_law.explosion(points, rules.explosion_rise, rules.explosion_window),
        "saturation": None if saturated is None else saturated["reason"],
    }
    h, r = points[-1]
    gain = None if fit is None else live_law.gain_left(fit, points)
    alarms = {kind: why for kind, why in found.items() if why is not None}
    return Evaluation(step, h, r, len(points), fit, gain, alarms)


@dataclass
class Follower:
    """One log followed: its reader, the keys (chosen at its first evaluation) and the
    evaluations seen so far."""

    path: Path
    keys: dict[str, str | None]
    reader: LogReader = field(init=False)
    chosen: dict[str, str | None] | None = None
    seen: int = 0
    waiting_for: str | None = None
    label: str = ""
    """Its lines' prefix: none when it is the only log watched (`_labels`)."""
    board_name: str = ""
    """Its folder under --tensorboard (`_board_names`)."""
    fired: set[str] = field(default_factory=set)
    """The alarms already explained in a note."""

    def __post_init__(self) -> None:
        self.reader = LogReader(self.path, partial_tail=True)

    def poll(self, rules: Rules) -> list[Evaluation]:
        """The evaluations logged since the last poll; [] while the log is to come (the
        reason in `waiting_for`).

        Raises:
            LogFormatError: A log that cannot be read (not one that is still to come).
        """
        try:
            table = self.reader.table()
            series = entropy_reward(table, **(self.chosen or self.keys), min_points=1)
        except LogIncomplete as err:
            self.waiting_for = str(err)
            return []
        self.waiting_for = None
        if self.chosen is None:
            self.chosen = {
                "entropy_key": series.entropy_key,
                "reward_key": series.reward_key,
                "step_key": series.step_key,
                "preset": series.preset,
            }
        points = list(zip(series.entropy.tolist(), series.reward.tolist(), strict=True))
        new = [
            judge(points[: i + 1], series.steps[i], rules) for i in range(self.seen, len(points))
        ]
        self.seen = len(points)
        return new

    def describe(self) -> str:
        """'PATH: H = key, R = key, step = key (preset P)'."""
        keys = self.chosen or {}
        preset = f" (preset {keys['preset']})" if keys.get("preset") else ""
        return (
            f"{self.path}: H = {keys.get('entropy_key')}, R = {keys.get('reward_key')}, "
            f"step = {keys.get('step_key') or 'record index'}{preset}"
        )


def line(evaluation: Evaluation, label: str | None = None) -> str:
    """One evaluation as a line of text."""
    e = evaluation
    head = f"{label}  " if label else ""
    text = f"{head}step {e.step:g}  H {e.entropy:.4f}  R {e.reward:.4f}  "
    if e.fit is None:
        text += f"law: {e.n} of {live_law.RELIABLE_MIN_POINTS} evaluations  "
    else:
        low, high = e.fit.ceiling_ci
        caveat = "" if e.fit.reliable else f" (unreliable: {e.fit.caveat})"
        text += (
            f"a {e.fit.a:.4f}  b {e.fit.b:.4f}  ceiling {e.fit.ceiling:.4f} "
            f"[{low:.4f}, {high:.4f}]{caveat}  gain left {e.gain_left:+.4f}  "
        )
    return text + (", ".join(a.upper() for a in e.alarms) or "ok")


def as_json(evaluation: Evaluation, label: str) -> dict[str, Any]:
    """One evaluation as a JSON-ready object."""
    e = evaluation
    return {
        "log": label,
        "step": e.step,
        "entropy": e.entropy,
        "reward": e.reward,
        "evaluations": e.n,
        "law": None if e.fit is None else e.fit.to_dict(),
        "gain_left": e.gain_left,
        "status": list(e.alarms) or ["ok"],
        "alarms": e.alarms,
    }


class LawBoard:
    """The law's `law/*` scalars written to a TensorBoard folder, one subfolder per log
    (`_board_names`), with TensorBoard's own writer (no torch)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[str, Any] = {}

    def write(self, name: str, evaluation: Evaluation) -> None:
        from tensorboard.summary import Writer

        if evaluation.fit is None:
            return
        if name not in self._writers:
            self._writers[name] = Writer(str(self.root / name))
        writer = self._writers[name]
        for key, value in live_law.law_metrics(evaluation.fit).items():
            writer.add_scalar(key, value, int(evaluation.step))
        writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


@dataclass(frozen=True)
class Options:
    """How `watch` runs (the command's options)."""

    rules: Rules = Rules()
    exit_on: tuple[str, ...] = ()
    interval: float = 5.0
    once: bool = False
    idle_timeout: float = 0.0
    json: bool = False
    tensorboard: Path | None = None


def watch(
    followers: list[Follower],
    options: Options,
    out: TextIO,
    notes: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Follow the logs until an alarm in `options.exit_on` fires (its EXIT_CODES code),
    `options.once` has read each log once, or no log has grown for `options.idle_timeout`
    seconds (> 0): then 0. Lines go to `out`, notes (keys chosen, waiting, why an alarm
    fired) to `notes`; `sleep` and `clock` are time.sleep and time.monotonic but in tests.

    Raises:
        LogFormatError: A log that cannot be read.
    """
    board = None if options.tensorboard is None else LawBoard(options.tensorboard)
    paths = [f.path for f in followers]
    for follower, label, name in zip(followers, _labels(paths), _board_names(paths), strict=True):
        follower.label, follower.board_name = label, name
    seen, last_news = 0, clock()
    try:
        while True:
            for follower in followers:
                code = _turn(follower, options, out, notes, board)
                if code:
                    return code
            if options.once:
                return 0
            now_seen = sum(f.seen for f in followers)
            if now_seen != seen:
                seen, last_news = now_seen, clock()
            if options.idle_timeout > 0 and clock() - last_news > options.idle_timeout:
                notes(f"no new evaluation for {options.idle_timeout:g} s: stopping")
                return 0
            sleep(options.interval)
    finally:
        if board is not None:
            board.close()


def _turn(
    follower: Follower,
    options: Options,
    out: TextIO,
    notes: Callable[[str], None],
    board: LawBoard | None,
) -> int:
    """One poll of one log: print its new evaluations; the exit code of an alarm in
    `options.exit_on`, else 0."""
    before = follower.chosen
    waited = follower.waiting_for
    evaluations = follower.poll(options.rules)
    if follower.waiting_for is not None and follower.waiting_for != waited:
        notes(f"waiting: {follower.waiting_for}")
    if before is None and follower.chosen is not None:
        notes(f"watching {follower.describe()}")
    label = follower.label
    for evaluation in evaluations:
        text = json.dumps(as_json(evaluation, label)) if options.json else line(evaluation, label)
        print(text, file=out, flush=True)
        if board is not None:
            board.write(follower.board_name, evaluation)
        for kind, why in evaluation.alarms.items():
            if kind not in follower.fired:
                follower.fired.add(kind)
                notes(f"{label + ': ' if label else ''}{kind} at step {evaluation.step:g}: {why}")
            if kind in options.exit_on:
                return EXIT_CODES[kind]
    return 0


def _board_names(paths: list[Path]) -> list[str]:
    """Each log's subfolder under --tensorboard: its name (a run's folder for its
    metrics.jsonl), made unique with -2, -3, ..."""
    names: list[str] = []
    for path in paths:
        path = Path(path).resolve()
        base = (path.parent if path.name == METRICS_FILE else path).name or "log"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def _labels(paths: list[Path]) -> list[str]:
    """Each log's label on its lines: none for one log, its path for several."""
    return [""] if len(paths) == 1 else [str(p) for p in paths]
