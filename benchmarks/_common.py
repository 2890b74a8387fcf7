"""Helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

import resource
import time


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(table: dict, key: str, fn):
    """`fn`, wrapped to add the seconds each call takes to `table[key]`."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[key] = table.get(key, 0.0) + time.perf_counter() - start

    return wrapper
