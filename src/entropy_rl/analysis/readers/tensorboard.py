"""TensorBoard event files, read with TensorBoard's own reader (`EventAccumulator`).

A PATH is an event file (`events.out.tfevents.*`) or a directory: the one folder under it
(itself included) that holds event files; several such folders are ambiguous and listed.
Scalars written by `add_scalar` (torch's SummaryWriter, tensorboardX, Hugging Face's
TensorBoardCallback) and scalar tensors (TensorBoard's own `tensorboard.summary.Writer`, TF2
summaries) are both read. One record per step, holding every tag logged at that step under
the tag's name, and the step under STEP_COLUMN. A tag logged twice at a step keeps its
last value (TensorBoard's reader already drops the events a restarted writer orphaned).

Needs the `tensorboard` package (`pip install 'entropy-rl[tensorboard]'`); no torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from entropy_rl.analysis.readers.table import LogFormatError, LogIncomplete, Table, make_table

EVENT_GLOB = "events.out.tfevents.*"
STEP_COLUMN = "step"
"""The key each record's event step is stored under."""


def is_event_file(path: Path) -> bool:
    return path.name.startswith("events.out.tfevents.")


def event_folders(root: Path) -> list[Path]:
    """The folders under `root` (itself included) that hold event files, sorted."""
    return sorted({p.parent for p in root.rglob(EVENT_GLOB) if p.is_file()})


class TensorBoardLog:
    """A TensorBoard log read again and again as it grows: `table()` reloads only the events
    written since the last call (the accumulator keeps its place)."""

    def __init__(self, path: Path) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise LogFormatError(
                f"{path}: reading TensorBoard logs needs the tensorboard package: "
                "pip install 'entropy-rl[tensorboard]'"
            )
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        self.path = path if is_event_file(path) else _one_folder(path)
        guidance = {"scalars": 0, "tensors": 0, "histograms": 1, "images": 1, "audio": 1}
        self._events = EventAccumulator(str(self.path), size_guidance=guidance)

    def table(self) -> Table:
        """Every scalar logged so far, one record per step in step order."""
        try:
            self._events.Reload()
        except Exception as err:  # a damaged file: TensorBoard raises its own types
            raise LogFormatError(f"{self.path}: cannot read TensorBoard events ({err})") from err
        by_step: dict[int, dict[str, object]] = {}
        tags = self._events.Tags()
        for tag in tags.get("scalars", []):
            for event in self._events.Scalars(tag):
                by_step.setdefault(event.step, {})[tag] = float(event.value)
        for tag in tags.get("tensors", []):
            for event in self._events.Tensors(tag):
                value = _scalar(event.tensor_proto)
                if value is not None:
                    by_step.setdefault(event.step, {})[tag] = value
        rows = [(f"step {s}", {STEP_COLUMN: s, **by_step[s]}) for s in sorted(by_step)]
        return make_table(self.path, "tensorboard", rows, step_key=STEP_COLUMN)


def _one_folder(path: Path) -> Path:
    folders = event_folders(path)
    if not folders:
        raise LogIncomplete(f"{path}: no TensorBoard event files ({EVENT_GLOB}) under it")
    if len(folders) > 1:
        names = ", ".join(str(f.relative_to(path)) or "." for f in folders[:8])
        raise LogFormatError(
            f"{path}: {len(folders)} folders of TensorBoard events ({names}); name one of them"
        )
    return folders[0]


def _scalar(proto: Any) -> float | None:
    """A tensor summary's value when it is one number, else None (not a scalar series)."""
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(proto)
    if array.size != 1 or array.dtype.kind not in "fiu":
        return None
    return float(array.reshape(()))
