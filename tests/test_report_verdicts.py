"""The report's claim-5b rule on synthetic law fits: log-linear coefficients, a held-out size."""

import re
from types import SimpleNamespace

import numpy as np

from entropy_rl.report.sections import Section, _loglinear_verdict


def _fits(params, a_of, b_of, noise=0.0):
    rng = np.random.default_rng(0)
    fits = {}
    for p in params:
        a = a_of(np.log10(p)) + noise * rng.standard_normal()
        b = b_of(np.log10(p)) + noise * rng.standard_normal()
        fits[p] = [SimpleNamespace(a=a, b=b, ceiling=b - a)]
    return fits


def test_loglinear_sizes_hold_and_the_held_out_size_is_forecast():
    params = np.array([100_000, 260_000, 590_000, 1_050_000])
    fits = _fits(params, lambda x: 0.1 * x - 0.2, lambda x: 0.3 * x - 0.9)
    section = Section("6")
    verdict = _loglinear_verdict("5b", section, "sum3", params, fits)
    assert verdict.status == "held"
    measured = fits[params[-1]][0].ceiling
    assert f"{measured:.3f}" in verdict.detail and re.search(r"off by [+-]0\.000", verdict.detail)
    assert "fit over 3 sizes" in verdict.detail
    assert "sizes_sum3.png" in section.figures


def test_coefficients_unrelated_to_size_do_not_hold():
    params = np.array([100_000, 260_000, 590_000, 1_050_000])
    fits = _fits(params, lambda x: 0.0, lambda x: 1.0, noise=0.5)
    verdict = _loglinear_verdict("5b", Section("6"), "sum3", params, fits)
    assert verdict.status == "did not hold"


def test_a_forecast_that_misses_the_held_out_size_does_not_hold():
    params = np.array([100_000, 260_000, 590_000, 1_050_000])
    fits = _fits(params, lambda x: 0.1 * x - 0.2, lambda x: 0.3 * x - 0.9)
    fits[params[-1]][0].ceiling += 0.2  # the largest size saturates higher than forecast
    verdict = _loglinear_verdict("5b", Section("6"), "sum3", params, fits)
    assert verdict.status == "did not hold" and "off by +0.200" in verdict.detail
