"""Claim 2's early fit as the paper makes it: evaluations every step over the first 15% of a
run (`eval.dense_fraction`, `eval.dense_every`), and the early fit counted in steps
(`law.fit_size_by_step`), the same points as before for a constant interval; and the early
forecast's error from sampling noise alone (`law.forecast_noise`), the bar claim 2's verdict
measures a miss against."""

import numpy as np
import pytest

from entropy_rl.analysis.law import fit_size, fit_size_by_step, forecast, forecast_noise
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


DENSE_STEPS = np.array([*range(23), *range(25, 151, 5)])  # claim2_dense.yaml's 49 points


def _entropy_path() -> np.ndarray:
    """Entropy falling from 0.66 to 0.2 over 150 steps, at DENSE_STEPS."""
    return 0.2 + 0.46 * np.exp(-DENSE_STEPS / 40.0)


def _draw(p: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    return rng.binomial(draws, p) / draws


def test_an_exact_law_with_binomial_noise_stays_under_its_noise_quantile_about_as_often():
    """Calibration: runs made by the law plus binomial noise miss by more than their own
    noise-only 95% RMSE in about 5% of cases (the floor is fitted on the noisy run itself)."""
    rng = np.random.default_rng(1)
    h = _entropy_path()
    p = 1.47 - 0.49 * np.exp(h)  # the dense GRPO runs' whole-run law
    under = [
        forecast(h, r, steps=DENSE_STEPS).rmse_heldout
        <= forecast_noise(h, r, 1024, rng, sims=100, steps=DENSE_STEPS).rmse_quantile(0.95)
        for r in (_draw(p, 1024, rng) for _ in range(60))
    ]
    assert 0.85 <= np.mean(under) <= 1.0, np.mean(under)


def test_an_early_fit_with_its_own_slope_misses_by_more_than_noise():
    """The early points on a flatter line than the rest (as two of the three dense GRPO runs
    have): the forecast's miss is well above what noise alone gives it."""
    rng = np.random.default_rng(2)
    h = _entropy_path()
    x = np.exp(h)
    # claim2-t1 seed 0's early and whole-run fits: a 0.378, b 1.282 and a 0.471, b 1.447
    p = np.where(DENSE_STEPS <= 22, 1.282 - 0.378 * x, 1.447 - 0.471 * x)
    r = _draw(p, 1024, rng)
    early = forecast(h, r, steps=DENSE_STEPS)
    noise = forecast_noise(h, r, 1024, rng, sims=200, steps=DENSE_STEPS)
    assert early.rmse_heldout > noise.rmse_quantile(0.95)
    assert np.mean(early.predicted - r[early.n_fit :]) < -0.02  # biased low, as measured


def test_noise_falls_with_more_draws_and_sparse_early_fits_are_noisier():
    rng = np.random.default_rng(3)
    h = _entropy_path()
    r = np.clip(1.47 - 0.49 * np.exp(h), 0, 1)
    few = forecast_noise(h, r, 100, rng, sims=200, steps=DENSE_STEPS)
    many = forecast_noise(h, r, 10_000, rng, sims=200, steps=DENSE_STEPS)
    ratio = np.median(few.rmse_heldout) / np.median(many.rmse_heldout)
    assert 7 < ratio < 14, ratio  # sqrt(100) = 10
    sparse = np.arange(0, 151, 5)
    h_sparse = 0.2 + 0.46 * np.exp(-sparse / 40.0)
    r_sparse = np.clip(1.47 - 0.49 * np.exp(h_sparse), 0, 1)
    five = forecast_noise(h_sparse, r_sparse, 1024, rng, sims=200, steps=sparse)
    dense = forecast_noise(h, r, 1024, rng, sims=200, steps=DENSE_STEPS)
    assert five.rmse_quantile(0.95) > 1.3 * dense.rmse_quantile(0.95)


@pytest.mark.parametrize(("draws", "sims"), [(0, 100), (100, 1)])
def test_forecast_noise_refuses_no_draws_or_one_simulation(draws, sims):
    h = _entropy_path()
    with pytest.raises(ValueError, match="draws >= 1 and sims >= 2"):
        forecast_noise(h, 1.4 - 0.5 * np.exp(h), draws, np.random.default_rng(0), sims=sims)
