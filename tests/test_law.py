"""Tests of the entropy-performance law fit, its ceiling interval and the forecast."""

import math

import numpy as np
import pytest

from entropy_rl.analysis import law

A, B = 0.5, 1.42
CEILING = B - A


def _entropy(n: int) -> np.ndarray:
    """A decaying entropy curve like a training run's."""
    return 0.15 + 0.55 * np.exp(-np.arange(n) / 10.0)


def _reward(h: np.ndarray, sd: float = 0.0, seed: int = 0) -> np.ndarray:
    return -A * np.exp(h) + B + np.random.default_rng(seed).normal(0.0, sd, h.size)


def test_recovers_noiseless_parameters_exactly():
    h = _entropy(30)
    fit = law.fit_entropy_law(h, _reward(h))
    assert fit.a == pytest.approx(A, abs=1e-10)
    assert fit.b == pytest.approx(B, abs=1e-10)
    assert fit.ceiling == pytest.approx(CEILING, abs=1e-10)
    assert fit.ceiling_ci[0] == pytest.approx(CEILING, abs=1e-8)
    assert fit.ceiling_ci[1] == pytest.approx(CEILING, abs=1e-8)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.rmse == pytest.approx(0.0, abs=1e-10)
    assert fit.n == 30
    assert fit.ci_level == law.DEFAULT_CI_LEVEL


def test_matches_numpy_polyfit_and_stats():
    h = _entropy(25)
    r = _reward(h, sd=0.02, seed=3)
    fit = law.fit_entropy_law(h, r)
    slope, intercept = np.polyfit(np.exp(h), r, 1)
    assert fit.a == pytest.approx(-slope)
    assert fit.b == pytest.approx(intercept)
    resid = r - fit.predict(h)
    assert fit.rmse == pytest.approx(math.sqrt(np.mean(resid**2)))
    assert fit.r2 == pytest.approx(1 - np.sum(resid**2) / np.sum((r - r.mean()) ** 2))


def test_recovers_noisy_parameters_within_tolerance():
    h = _entropy(60)
    fit = law.fit_entropy_law(h, _reward(h, sd=0.01, seed=1))
    assert fit.a == pytest.approx(A, abs=0.05)
    assert fit.b == pytest.approx(B, abs=0.05)
    assert fit.ceiling == pytest.approx(CEILING, abs=0.03)
    assert fit.ceiling_ci[0] < fit.ceiling < fit.ceiling_ci[1]
    assert 0.9 < fit.r2 < 1.0


def test_ceiling_interval_covers_truth_at_its_level():
    h = _entropy(20)
    hits = 0
    for seed in range(200):
        low, high = law.fit_entropy_law(h, _reward(h, sd=0.02, seed=seed)).ceiling_ci
        hits += low <= CEILING <= high
    assert 0.9 <= hits / 200 <= 0.99


def test_wider_level_gives_wider_interval():
    h = _entropy(20)
    r = _reward(h, sd=0.02)
    narrow = law.fit_entropy_law(h, r, ci_level=0.5).ceiling_ci
    wide = law.fit_entropy_law(h, r, ci_level=0.99).ceiling_ci
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_three_points_are_enough():
    h = np.array([0.3, 0.5, 0.9])
    fit = law.fit_entropy_law(h, _reward(h, sd=0.01))
    assert fit.n == 3
    assert all(math.isfinite(v) for v in fit.ceiling_ci)


def test_constant_reward_fits_exactly_with_r2_one():
    fit = law.fit_entropy_law([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert fit.a == pytest.approx(0.0)
    assert fit.r2 == 1.0


def test_predict_accepts_scalar_and_array():
    h = _entropy(10)
    fit = law.fit_entropy_law(h, _reward(h))
    assert fit.predict(0.0) == pytest.approx(CEILING)
    assert np.asarray(fit.predict(0.0)).shape == ()
    np.testing.assert_allclose(fit.predict([0.0, 1.0]), [CEILING, B - A * math.e])


def test_forecast_noiseless_has_zero_error():
    h = _entropy(40)
    fc = law.forecast(h, _reward(h))
    assert fc.n_fit == 6  # ceil(0.15 * 40)
    assert fc.n_heldout == 34
    assert fc.predicted.shape == (34,)
    assert fc.rmse_heldout == pytest.approx(0.0, abs=1e-10)
    assert fc.final_error == pytest.approx(0.0, abs=1e-10)
    assert fc.fit.n == 6
    assert fc.fit_fraction == law.DEFAULT_FIT_FRACTION


def test_forecast_errors_are_signed_prediction_minus_actual():
    h = _entropy(20)
    r = _reward(h)
    r[-1] -= 0.1  # actual below the law: the forecast is optimistic by 0.1
    fc = law.forecast(h, r, 0.5)
    assert fc.final_error == pytest.approx(0.1)
    assert fc.rmse_heldout == pytest.approx(0.1 / math.sqrt(10))


def test_fit_size_rounds_up_and_keeps_three_points():
    assert law.fit_size(240, 0.15) == 36
    assert law.fit_size(30, 0.1) == 3  # 0.1 * 30 is 3.0000000000000004 in floats
    assert law.fit_size(10, 0.01) == law.MIN_POINTS
    assert law.fit_size(41, 0.15) == 7


def test_forecast_without_held_out_points_raises():
    h = _entropy(3)
    with pytest.raises(ValueError, match="leaves none"):
        law.forecast(h, _reward(h))


@pytest.mark.parametrize(
    ("entropy", "reward", "match"),
    [
        ([0.1, 0.2], [0.5, 0.6], "at least 3"),
        ([0.1, np.nan, 0.3], [0.5, 0.6, 0.7], "entropy contains NaN"),
        ([0.1, 0.2, 0.3], [0.5, np.inf, 0.7], "reward contains NaN or infinite"),
        ([0.1, 0.2, 0.3], [0.5, 0.6], "differ in length"),
        ([[0.1, 0.2, 0.3]], [[0.5, 0.6, 0.7]], "1-D"),
        ([0.4] * 5, [0.5, 0.6, 0.7, 0.8, 0.9], "entropy is constant"),
    ],
)
def test_bad_inputs_raise(entropy, reward, match):
    with pytest.raises(ValueError, match=match):
        law.fit_entropy_law(entropy, reward)
    with pytest.raises(ValueError, match=match):
        law.forecast(entropy, reward)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5])
def test_bad_levels_raise(level):
    h = _entropy(10)
    r = _reward(h)
    with pytest.raises(ValueError, match="ci_level must be in"):
        law.fit_entropy_law(h, r, ci_level=level)
    with pytest.raises(ValueError, match="fit_fraction must be in"):
        law.forecast(h, r, level)


def test_to_dict_is_json_ready():
    import json

    h = _entropy(20)
    fc = law.forecast(h, _reward(h, sd=0.01))
    data = json.loads(json.dumps(fc.to_dict(), allow_nan=False))
    assert data["fit"]["n"] == fc.n_fit
    assert len(data["predicted"]) == fc.n_heldout


def test_a_ceiling_from_few_points_or_a_poor_fit_is_flagged():
    h = _entropy(40)
    good = law.fit_entropy_law(h, _reward(h, sd=0.01))
    assert good.reliable and good.caveat is None and good.ceiling_text() == f"{good.ceiling:.3f}"
    few = law.fit_entropy_law(h[:4], _reward(h[:4], sd=0.01))
    assert not few.reliable and few.caveat == "4 points < 5"
    noisy = law.fit_entropy_law(h, _reward(h, sd=0.3, seed=1))
    assert noisy.r2 < law.RELIABLE_MIN_R2 and noisy.caveat == f"R² {noisy.r2:.2f} < 0.8"
    both = law.fit_entropy_law([1.0, 0.5, 0.2], [0.1, 0.9, 0.2])
    assert both.caveat.startswith("3 points < 5, R² ")
    assert both.ceiling_text().endswith(f"(unreliable: {both.caveat})")
    assert both.to_dict()["reliable"] is False and both.to_dict()["caveat"] == both.caveat
    assert law.fit_caveat(5, 0.8) is None
