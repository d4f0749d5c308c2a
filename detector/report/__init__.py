"""The responder's HTML report: `collect.py` gathers during a replay, `html.py` renders,
`chart.py` draws the SVG timelines, `provenance.py` records the command and rule versions."""

from detector.report.collect import ReportCollector, RuleSummary, rule_summaries
from detector.report.html import Report, render
from detector.report.provenance import Provenance, provenance

__all__ = [
    "Provenance",
    "Report",
    "ReportCollector",
    "RuleSummary",
    "provenance",
    "render",
    "rule_summaries",
]
