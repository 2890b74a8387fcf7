"""Figures (and later the HTML report) made from logs and law fits."""

from entropy_rl.analysis.report.figures import plot_entropy_law

__all__ = ["plot_entropy_law"]
