"""The report's sections on inputs built by hand (no training): runs of different response
lengths, runs too short for a claim, which must say so without numpy warnings, and claim 2's
early forecast judged against its noise alone."""

import json
import math
import warnings

import numpy as np

from entropy_rl.analysis.report.build import build_report
from entropy_rl.analysis.report.data import RunData
from entropy_rl.analysis.report.sections import section_positions
from entropy_rl.analysis.report.sections.dynamics import section_law
from entropy_rl.analysis.report.stats import position_profile


def _run(method: str, seed: int, points: int, width: int) -> RunData:
    """A run of `points` records, each with entropy, accuracy and a `width`-long
    entropy/by_position."""
    records = tuple(
        {
            "step": step,
            "entropy/mean": 1.0 - 0.2 * step,
            "val/acc": 0.2 + 0.1 * step,
            "entropy/by_position": [1.0 - 0.1 * step + 0.01 * i for i in range(width)],
        }
        for step in range(points)
    )
    return RunData(f"{method}{seed}", "sum3", "h128x4", method, seed, None, records)


def test_position_profile_pads_shorter_runs_and_counts_who_is_there():
    mean, counts = position_profile([[1.0, 2.0], [3.0, None, 5.0], [math.nan]])
    np.testing.assert_allclose(mean, [2.0, 2.0, 5.0])
    assert counts.tolist() == [2, 1, 1]
    mean, counts = position_profile([[math.nan]])
    assert np.isnan(mean).all() and counts.tolist() == [0]


def test_positions_section_takes_runs_of_different_response_lengths():
    runs = [_run("grpo", 0, 3, 4), _run("grpo", 1, 3, 6), _run("kl_cov", 0, 3, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        section = section_positions(runs)
    (table,) = [b for b in section.blocks if b[0] == "table"]
    grpo, kl_cov = table[2]
    assert len(grpo[2].split()) == 6 and grpo[3] == "2 2 2 2 1 1"
    assert len(kl_cov[2].split()) == 5 and kl_cov[3] == "1 1 1 1 1"
    assert "positions_sum3.png" in section.figures
    assert "padded" in " ".join(b[1] for b in section.blocks if b[0] == "text")


def test_a_three_point_run_says_not_enough_data_without_numpy_warnings(tmp_path):
    grpo = _run("grpo", 0, 3, 4)
    clip_cov = _run("clip_cov", 0, 3, 4)  # one seed each, ending higher than GRPO
    clip_cov = RunData(
        **{
            **clip_cov.__dict__,
            "records": tuple({**r, "val/acc": r["val/acc"] + 0.1} for r in clip_cov.records),
        }
    )
    probe = ({"step": 0, "dynamics/dH_actual": -0.1, "dynamics/dH_lemma1": -0.1},)
    grpo = RunData(**{**grpo.__dict__, "records": grpo.records + probe})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        build_report([grpo, clip_cov], tmp_path, "t", "entropy-rl report")
    verdicts = {v["claim"][:2]: v for v in json.loads((tmp_path / "verdicts.json").read_text())}
    assert verdicts["1."]["detail"] == (
        "not enough data: 3 entropy points in the longest reference run, need 6"
    )
    assert verdicts["2."]["status"] == "no data"
    assert verdicts["2."]["detail"] == (
        "not enough data: 3 validation points in the longest reference run, need 4"
    )
    assert verdicts["3."]["detail"] == "not enough data: 1 probe steps in the longest run, need 3"
    assert verdicts["4."]["status"] == "no data"
    assert "a gain needs 2+ seeds" in verdicts["4."]["detail"]
    assert all(v["status"] != "did not hold" for v in verdicts.values())
    assert "nan" not in (tmp_path / "report.md").read_text().lower()


def _law_run(seed: int, early_a: float, draws: int | None) -> RunData:
    """A GRPO run evaluated every step to 22 then every 5 to 150, its val/acc binomial around
    a law whose a is `early_a` over the first 15% of the steps and 0.47 after."""
    rng = np.random.default_rng(seed)
    steps = np.array([*range(23), *range(25, 151, 5)])
    h = 0.2 + 0.46 * np.exp(-steps / 40.0)
    x = np.exp(h)
    late = 1.447 - 0.471 * x
    early = late[22] + early_a * (x[22] - x)  # the same R at step 22, slope early_a before
    p = np.where(steps <= 22, early, late)
    r = rng.binomial(1024, p) / 1024
    records = tuple(
        {"step": int(t), "entropy/mean": float(e), "val/acc": float(a)}
        for t, e, a in zip(steps, h, r, strict=True)
    )
    prompts, samples = (256, 4) if draws else (None, None)
    return RunData(f"grpo{seed}", "sum3", "h128x4", "grpo", seed, None, records, prompts, samples)


def test_claim2_tells_a_biased_early_fit_from_noise():
    straight = section_law([_law_run(s, 0.471, 1024) for s in range(3)])
    bent = section_law([_law_run(s, 0.30, 1024) for s in range(3)])
    assert straight.verdicts[0].status == "held", straight.verdicts[0].detail
    assert bent.verdicts[0].status == "did not hold", bent.verdicts[0].detail
    assert "mean held-out error -0.0" in bent.verdicts[0].detail  # the forecast is low
    header, rows = next(b[1:] for b in bent.blocks if b[0] == "table")
    noise = header.index("RMSE from noise alone (95%)")
    assert all(float(row[noise]) < float(row[header.index("RMSE on the rest")]) for row in rows)
    early, whole = next(b[2] for b in bent.blocks if b[0] == "table" and "early H" in b[1])[0][5:]
    assert float(early.split(",")[0]) < float(whole.split(",")[0])  # a: early below whole run


def test_claim2_without_the_draws_judges_the_rmse_alone():
    section = section_law([_law_run(s, 0.471, None) for s in range(3)])
    header, rows = next(b[1:] for b in section.blocks if b[0] == "table")
    assert {row[header.index("RMSE from noise alone (95%)")] for row in rows} == {"–"}
    assert section.verdicts[0].status == "held"
    assert "noise" not in section.verdicts[0].detail
