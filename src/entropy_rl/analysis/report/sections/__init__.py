"""The nine sections of the report, each computed from runs: numbers, figures, verdicts.

Each `section_*` returns a `Section`: its heading, its text, tables and figures in order (PNG
bytes by file name) and, where it tests one of the paper's claims, a `Verdict`. The numbers
come from `report.stats`, the rules that turn them into verdicts from `report.verdicts`.
A section without the data it needs says so instead of drawing anything.

By theme: `dynamics` (1, 2: entropy and accuracy over training, the law), `mechanism` (3, 4,
8: Lemma 1, the sign of the covariance, entropy by position), `interventions` (5, 7, 9: the
remedies against the GRPO curve, the final table, entropy control) and `coefficients` (6: a
and b per method and model size); `base` holds `Section` and the selections of runs they share.
"""

from entropy_rl.analysis.report.sections.base import Section
from entropy_rl.analysis.report.sections.coefficients import section_coefficients
from entropy_rl.analysis.report.sections.dynamics import section_dynamics, section_law
from entropy_rl.analysis.report.sections.interventions import (
    section_control,
    section_final,
    section_interventions,
)
from entropy_rl.analysis.report.sections.mechanism import (
    section_lemma1,
    section_positions,
    section_positive_cov,
)
from entropy_rl.analysis.report.verdicts import Verdict

__all__ = [
    "SECTIONS",
    "Section",
    "Verdict",
    "section_coefficients",
    "section_control",
    "section_dynamics",
    "section_final",
    "section_interventions",
    "section_law",
    "section_lemma1",
    "section_positions",
    "section_positive_cov",
]

SECTIONS = (
    section_dynamics,
    section_law,
    section_lemma1,
    section_positive_cov,
    section_interventions,
    section_coefficients,
    section_final,
    section_positions,
    section_control,
)
"""The report's sections, in order."""
