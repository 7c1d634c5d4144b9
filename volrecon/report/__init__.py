"""Figures, the HTML report and cohort comparison."""

from volrecon.report.html import render_report

__all__ = ["render_report"]
