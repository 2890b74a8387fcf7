"""Errors the command line reports in one line, without a traceback."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. repeated non-finite losses); the message says why."""
