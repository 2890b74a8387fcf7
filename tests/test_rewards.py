"""score_all: raising, hanging and non-number reward calls give 0 and are counted."""

import time

from entropy_rl.tasks.rewards import score_all


def _reward(x):
    if x == 3:
        raise RuntimeError("verifier crashed")
    if x == 5:
        time.sleep(30)
    if x == 7:
        return float("nan")
    if x == 8:
        return "1.0"
    return x / 10


def test_failures_and_timeouts_are_zero_and_counted():
    start = time.perf_counter()
    scored = score_all(_reward, [(i,) for i in range(10)], timeout_s=0.3)
    assert time.perf_counter() - start < 5
    assert scored.rewards == [0.0, 0.1, 0.2, 0.0, 0.4, 0.0, 0.6, 0.0, 0.0, 0.9]
    assert scored.errors == 4


def test_many_fast_calls_in_order():
    scored = score_all(lambda a, b: a * b, [(i, 2) for i in range(500)], timeout_s=1.0)
    assert scored.rewards == [2.0 * i for i in range(500)] and scored.errors == 0
