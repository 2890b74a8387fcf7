"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

import resource


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
