"""The report's verdict rules (`report.verdicts`), each claim on numbers that make it hold and
not hold; claim 5b end to end on synthetic law fits (log-linear coefficients, a held-out
size); and the entropy controller's rule and report section."""

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from entropy_rl.analysis.report import stats
from entropy_rl.analysis.report import verdicts as v
from entropy_rl.analysis.report.data import RunData, main_size
from entropy_rl.analysis.report.sections import Section, section_control
from entropy_rl.analysis.report.sections.coefficients import _loglinear_verdict


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


# ---- each claim's rule on numbers that make it hold and not hold (report.verdicts) ----------


@pytest.mark.parametrize(
    ("held", "total", "status"),
    [(2, 2, "held"), (1, 2, "partly held"), (0, 2, "did not hold"), (0, 0, "no data")],
)
def test_status_counts_the_cases_that_held(held, total, status):
    assert v.status(held, total) == status


def test_claim1_collapse_shares_and_rule():
    # entropy 1.0 -> 0.4 at 25% -> 0.2 at the end: 75% of the drop early;
    # accuracy 0.2 -> 0.7 at 50% -> 0.8: a sixth of the gain late.
    early, late = v.collapse_shares((1.0, 0.4, 0.2), (0.2, 0.7, 0.8))
    assert early == pytest.approx(0.75) and late == pytest.approx(1 / 6)
    assert v.collapse_holds([early], [late])
    assert not v.collapse_holds([0.3], [late])  # entropy falls late
    assert not v.collapse_holds([early], [0.5])  # accuracy still rising after mid-run
    assert v.collapse_holds([0.5], [1 / 3])  # both bounds inclusive
    assert v.collapse_shares((1.0, 0.5, 1.0), (0.2, 0.5, 0.8)) is None  # entropy did not move
    assert v.collapse_shares((1.0, None, 0.2), (0.2, 0.5, 0.8)) is None


def test_claim2_law_rule():
    nan = math.nan
    assert v.law_status([0.9, 0.95], [0.02, 0.04], [nan, nan]) == "held"
    assert v.law_status([0.9, 0.95], [0.04, 0.08], [nan, nan]) == "partly held"  # 0.08 > 0.05
    assert v.law_status([0.9, 0.95], [0.06, 0.08], [nan, nan]) == "did not hold"
    assert v.law_status([0.5, 0.6], [0.01, 0.01], [nan, nan]) == "did not hold"  # fits poorly
    assert v.law_status([0.9, nan], [0.02, nan], [0.03, nan]) == "held"  # NaN runs ignored
    assert v.law_status([], [], []) == "no data"
    assert v.law_status([0.9], [nan], [nan]) == "no data"  # too few points for an early fit
    # Within LAW_MAX_RMSE but above what noise alone gives: the early fit is biased.
    assert v.law_status([0.9, 0.9], [0.04, 0.02], [0.03, 0.03]) == "partly held"
    assert v.law_status([0.9, 0.9], [0.04, 0.04], [0.03, 0.03]) == "did not hold"
    # Noise alone would explain it, but the forecast misses by more than a useful one may.
    assert v.law_status([0.9], [0.07], [0.08]) == "did not hold"
    assert v.law_verdict([0.9], [nan], [nan], [nan], 3).detail == (
        "not enough data: 3 validation points in the longest reference run, need 4"
    )
    verdict = v.law_verdict([0.98, 0.96], [0.044, 0.019], [0.033, 0.043], [-0.04, -0.006], 49)
    assert verdict.status == "partly held"
    assert verdict.detail == (
        "mean R² 0.970; early fits predicting the rest on 1 of 2 reference runs, mean RMSE "
        "0.032, mean held-out error -0.023, from noise alone 0.038 at 95% (held when R² >= 0.7 "
        "and each run's RMSE <= 0.05 and <= its own from noise alone)"
    )


def test_claim3_lemma1_and_positive_covariance_rules():
    assert v.lemma1_status([0.9, 0.4]) == "held"  # mean 0.65
    assert v.lemma1_status([0.3, 0.5]) == "did not hold"
    assert v.lemma1_status([]) == "no data"
    assert v.positive_cov_status([1.0, 0.2]) == "held"
    assert v.positive_cov_status([0.5, 0.5]) == "did not hold"  # half is not "mostly"


def test_claim4_gain_rule():
    assert v.gain_holds(0.05, 0.02)  # 2.5 SE
    assert not v.gain_holds(0.03, 0.02)  # 1.5 SE
    assert not v.gain_holds(-0.05, 0.02)
    assert not v.gain_holds(0.3, math.nan)  # one seed: no error, no claim


def test_claim5a_algorithm_rule():
    held = v.algorithm_verdict([("sum3", 0.05, 0.03), ("trap", 0.1, 0.14)])
    assert held.status == "held" and "under 15%" in held.detail
    partly = v.algorithm_verdict([("sum3", 0.05, 0.03), ("trap", 0.2, 0.01)])
    assert partly.status == "partly held"
    assert v.algorithm_verdict([]).status == "no data"


def test_claim5b_size_rule():
    assert v.size_law_holds(0.9, 0.85, error=0.01)
    assert v.size_law_holds(0.9, 0.85, error=None)  # three sizes: nothing held out
    assert not v.size_law_holds(0.9, 0.5, error=0.0)  # b is not log-linear
    assert not v.size_law_holds(0.9, 0.9, error=-0.06)  # the forecast misses
    assert "held-out" in v.size_law_rule(True) and "held-out" not in v.size_law_rule(False)


def test_claim5a_numbers_are_relative_spreads_of_the_method_means():
    from entropy_rl.analysis.report.stats import method_spread

    fit = lambda a, b: SimpleNamespace(a=a, b=b)  # noqa: E731
    same = method_spread([[fit(0.5, 1.4), fit(0.5, 1.4)], [fit(0.5, 1.4)]])
    assert same == (0.0, 0.0) and v.algorithm_verdict([("t", *same)]).status == "held"
    spread_a, spread_b = method_spread([[fit(0.4, 1.0)], [fit(0.6, 1.0)], []])
    assert spread_a == pytest.approx(0.2) and spread_b == 0.0  # std 0.1 over mean 0.5
    assert v.algorithm_verdict([("t", spread_a, spread_b)]).status == "did not hold"
    assert method_spread([[fit(0.5, 1.4)], []]) is None  # one method with fits


def _run(size, method):
    return RunData(
        source=f"{size}/{method}",
        task="sum3",
        size=size,
        method=method,
        seed=0,
        params=None,
        records=(),
    )


def test_main_size_is_where_methods_are_compared_else_the_default_size():
    sizes_of_one_method = [_run(s, "grpo") for s in ("h48x4", "h80x4", "h128x4", "h160x4")]
    assert main_size(sizes_of_one_method, "sum3") == "h128x4"  # the embedded default
    without_default = [_run(s, "grpo") for s in ("h48x4", "h80x4")]
    assert main_size(without_default, "sum3") == "h48x4"  # the first seen
    compared = [*without_default, _run("h80x4", "clip_cov"), _run("h128x4", "grpo")]
    assert main_size(compared, "sum3") == "h80x4"  # the most methods


def _controlled_run(method: str, seed: int, offset: float, wobble: float) -> RunData:
    """A 100-step run whose entropy sits `offset` from a 0.45 target, with `wobble` on every
    other step; GRPO's (method grpo) has no controller."""
    records = []
    for step in range(101):
        h = 0.45 + offset + (wobble if step % 2 else -wobble)
        row = {"step": step, "entropy/mean": h}
        if method != "grpo":
            row |= {"control/target": 0.45, "control/value": 0.02 + step * 1e-4}
        if step % 5 == 0:
            row["val/acc"] = 0.5 + step / 1000
        records.append(row)
    return RunData("x", "sum3", "h128x4", method, seed, None, tuple(records))


def test_control_rule_and_section():
    assert v.control_holds(0.02, 0.09) and v.control_holds(-0.03, 0.1)
    assert not v.control_holds(0.04, 0.05) and not v.control_holds(0.0, 0.12)
    runs = [_controlled_run("grpo", s, -0.25, 0.0) for s in range(2)]
    runs += [_controlled_run("kl_cov_target", s, 0.01 * s, 0.02) for s in range(2)]
    runs += [_controlled_run("clip_cov_target", 0, -0.2, 0.0)]
    section = section_control(runs)
    (verdict,) = section.verdicts
    assert verdict.status == "partly held"
    assert "kl_cov_target: 2 of 2" in verdict.detail
    assert "clip_cov_target: 0 of 1" in verdict.detail
    (table,) = [b for b in section.blocks if b[0] == "table"]
    methods = [row[2] for row in table[2]]
    assert methods == ["kl_cov_target", "clip_cov_target"]  # GRPO only in the figure
    assert "control_sum3.png" in section.figures
    assert stats.control_tracking(runs[0]) is None
    mean, worst = stats.control_tracking(runs[3])
    assert mean == pytest.approx(0.01, abs=1e-3) and worst == pytest.approx(0.03)


def test_no_controlled_run_says_so():
    section = section_control([_controlled_run("grpo", 0, -0.2, 0.0)])
    assert not section.verdicts and "No run here used the entropy controller" in str(section.blocks)
