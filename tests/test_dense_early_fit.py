"""Claim 2's early fit as the paper makes it: evaluations every step over the first 15% of a
run (`eval.dense_fraction`, `eval.dense_every`), and the early fit counted in steps
(`law.fit_size_by_step`), the same points as before for a constant interval."""

import numpy as np
import pytest

from entropy_rl.analysis.law import fit_size, fit_size_by_step, forecast
from entropy_rl.config import ConfigError, EvalConfig, load_config


def test_the_dense_schedule_evaluates_each_step_early_then_every_interval():
    dense = EvalConfig(every=5, dense_fraction=0.15, dense_every=1)
    due = [s for s in range(151) if dense.due(s, 150)]
    assert due[:23] == list(range(23))  # steps 0..22: 22 <= 0.15 * 150 = 22.5
    assert due[23:] == list(range(25, 151, 5))
    plain = EvalConfig(every=5)
    assert [s for s in range(151) if plain.due(s, 150)] == list(range(0, 151, 5))
    assert [s for s in range(13) if plain.due(s, 12)] == [0, 5, 10, 12]  # and the last step


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.dense_fraction=1", "eval.dense_fraction must be in [0, 1)"),
        ("eval.dense_fraction=-0.1", "eval.dense_fraction must be in [0, 1)"),
        ("eval.dense_every=0", "eval.dense_every must be > 0"),
    ],
)
def test_bad_dense_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        load_config(None, [override])


def test_the_early_fit_in_steps_takes_the_same_points_at_a_constant_interval():
    for last, every in ((150, 5), (100, 5), (240, 1), (300, 10)):
        steps = np.arange(0, last + 1, every)
        assert fit_size_by_step(steps) == fit_size(steps.size), (last, every)


def test_the_early_fit_in_steps_takes_every_dense_point():
    steps = np.array([*range(23), *range(25, 151, 5)])
    assert fit_size_by_step(steps) == 23  # steps 0..22
    assert fit_size(steps.size) == 8  # 15% of the points would take steps 0..7 only


def test_forecast_with_steps_fits_the_early_steps():
    rng = np.random.default_rng(0)
    steps = np.array([*range(23), *range(25, 151, 5)])
    h = np.linspace(0.7, 0.1, steps.size)
    r = -0.5 * np.exp(h) + 1.4 + rng.normal(0, 0.01, steps.size)
    early = forecast(h, r, steps=steps)
    assert early.n_fit == 23 and early.n_heldout == steps.size - 23
    assert forecast(h, r).n_fit == 8
    with pytest.raises(ValueError, match="steps has 3 values"):
        forecast(h, r, steps=steps[:3])
