"""The status of a run directory, one name for the commands that train (runner, demo,
experiment) and the report that reads experiment.json: torch-free."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run directory stands (`entropy_rl.runs.run_dir.run_status`). A `str`: written
    to experiment.json as its value, and equal to it."""

    NEW = "new"
    """Nothing to resume from: no directory, or metrics without a checkpoint."""
    PARTIAL = "partial"
    """A checkpoint to resume from (not yet verified), no summary."""
    DONE = "done"
    """Finished: its summary is written."""
