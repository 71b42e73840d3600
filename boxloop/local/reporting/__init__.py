"""The local run's report: accuracy against reference labels and a self-contained HTML page."""

from __future__ import annotations

from boxloop.local.reporting.evaluation import evaluate_against_reference
from boxloop.local.reporting.gallery import least_confident_auto_labels
from boxloop.local.reporting.page import render_html_report, write_html_report

__all__ = [
    "evaluate_against_reference",
    "least_confident_auto_labels",
    "render_html_report",
    "write_html_report",
]
