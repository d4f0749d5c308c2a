"""The responder's HTML report of a replay or backtest: one self-contained file (inline
CSS and SVG, no script, nothing fetched), safe to open whatever the logs contained: every
piece of text is escaped, since detections carry attacker-controlled strings."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from html import escape

from detector.detections import Detection
from detector.pipeline import RunCounts
from detector.redact import redact_text
from detector.report.chart import Lane, colour_of, sparkline_svg, timeline_svg
from detector.report.collect import ReportCollector, RuleSummary, days, rule_summaries
from detector.report.provenance import Provenance
from detector.timestamps import format_timestamp

SEVERITY = ("critical", "high", "medium", "low", "informational", None)
#: rows of each timeline (the most frequent); the rest are counted below the chart
MAX_LANES = 40

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1d2329;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
#d5dadf;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d5dadf;padding:3px 8px;
text-align:left;vertical-align:top}td.w{overflow-wrap:anywhere;min-width:12em}th{background:#eef1f4}td.n{text-align:right}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f4f6f8}
pre{padding:8px;white-space:pre-wrap;word-break:break-all}
.timeline text{font:11px system-ui,sans-serif;fill:#1d2329}.timeline .axis{fill:#5b6670}
.level{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.detection{border:1px solid #d5dadf;border-radius:4px;padding:8px 12px;margin:10px 0}
.chain{display:flex;flex-wrap:wrap;align-items:stretch;gap:0;margin:8px 0;padding:0;
list-style:none}
.step{border:1px solid #90a4ae;border-radius:4px;padding:6px 8px;background:#f7f9fa;
max-width:260px;font-size:12px;overflow-wrap:anywhere}
.arrow{align-self:center;font-size:20px;color:#546e7a;padding:0 6px}
.muted{color:#5b6670}.facts{font-size:12px}
"""


@dataclass(frozen=True)
class Report:
    """Everything a report shows."""

    title: str
    provenance: Provenance
    counts: RunCounts
    collector: ReportCollector


def render(report: Report) -> str:
    """The report as one HTML document."""
    collector = report.collector
    summaries = rule_summaries(collector)
    body = [
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="muted">generated {escape(format_timestamp(report.provenance.generated))} '
        f"by detector {escape(report.provenance.detector_version)}</p>",
        "<h2>Command</h2>",
        f"<pre>{escape(report.provenance.command)}</pre>",
        _summary(report.counts, collector),
        _timelines(collector),
        _rules_table(summaries, days(collector)),
        _detections(collector, summaries),
        _rule_versions(report.provenance),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _summary(counts: RunCounts, collector: ReportCollector) -> str:
    totals = {
        "records read": counts.read,
        "events normalized": counts.normalized,
        "dead-lettered": counts.dead_lettered,
        "filtered out": counts.filtered,
        "too late to correlate": counts.late,
        "detections": collector.detections,
    }
    parts = [
        '<h2 id="summary">Summary</h2>',
        _table(("", "count"), [(name, value) for name, value in totals.items()]),
        "<h3>Events per source</h3>",
        _table(("source", "events"), sorted(counts.by_source.items())),
        "<h3>Dead letters by reason</h3>",
    ]
    if collector.dead_letters:
        parts.append(_table(("reason", "records"), collector.dead_letters.most_common(), wrap=(0,)))
    else:
        parts.append("<p>none</p>")
    return "".join(parts)


def _timelines(collector: ReportCollector) -> str:
    span = collector.detection_span()
    if span is None:
        return '<h2 id="timeline">Timeline</h2><p>no detections</p>'
    start, end = span[0].timestamp(), span[1].timestamp()
    by_rule = sorted(collector.rules.values(), key=lambda s: (-s.count, s.title))
    rule_lanes = [Lane(s.title, s.times, colour_of(s.level)) for s in by_rule]
    people = sorted(collector.identities.items(), key=lambda item: (-len(item[1]), item[0]))
    identity_lanes = [Lane(name, times, "#1976d2") for name, times in people]
    return "".join(
        [
            '<h2 id="timeline">Timeline</h2>',
            f'<p class="muted">from the first detection to the last, in event time: '
            f"{escape(format_timestamp(span[0]))} to "
            f"{escape(format_timestamp(span[1]))}; bar height: detections in the "
            "interval, relative to the busiest one</p>",
            "<h3>Detections per rule</h3>",
            _chart(rule_lanes, start, end, "Detections per rule over event time"),
            "<h3>Detections per identity</h3>",
            _chart(identity_lanes, start, end, "Detections per identity over event time"),
        ]
    )


def _chart(lanes: Sequence[Lane], start: float, end: float, title: str) -> str:
    chart = timeline_svg(lanes[:MAX_LANES], start, end, title)
    rest = lanes[MAX_LANES:]
    if rest:
        hidden = sum(len(lane.times) for lane in rest)
        chart += f'<p class="muted">{len(rest)} more rows ({hidden} detections) not drawn</p>'
    return f'<div class="chart">{chart}</div>'


def _rules_table(summaries: Sequence[RuleSummary], every_day: Sequence[str]) -> str:
    rows = []
    for summary in summaries:
        groups = "<br>".join(f"{escape(group)} ({count})" for group, count in summary.top_groups)
        days_text = ", ".join(
            f"{day}: {count}" for day, count in zip(every_day, summary.per_day, strict=True)
        )
        rows.append(
            "<tr>"
            f'<td><a href="#rule-{escape(summary.rule_id)}">{escape(summary.title)}</a><br>'
            f'<code class="muted">{escape(summary.rule_id)}</code></td>'
            f"<td>{_level(summary.level)}</td>"
            f'<td class="n">{summary.count}</td><td class="n">{summary.share:.1%}</td>'
            f'<td title="{escape(days_text)}">'
            f"{sparkline_svg(summary.per_day, every_day, colour_of(summary.level))}</td>"
            f'<td class="w">{groups}</td></tr>'
        )
    header = "".join(
        f"<th>{name}</th>"
        for name in ("rule", "level", "detections", "share", "per day", "top groups")
    )
    return (
        '<h2 id="rules">Rules that fired</h2>'
        f'<p class="muted">{len(every_day)} day(s): '
        f"{escape(every_day[0] if every_day else '-')} to "
        f"{escape(every_day[-1] if every_day else '-')}</p>"
        f"<table><tr>{header}</tr>{''.join(rows)}</table>"
    )


def _detections(collector: ReportCollector, summaries: Sequence[RuleSummary]) -> str:
    parts = [
        '<h2 id="detections">Detections and their evidence</h2>',
        '<p class="muted">most severe rules first; a correlation\'s evidence is drawn as the '
        "sequence of its steps</p>",
    ]
    for summary in sorted(summaries, key=lambda s: SEVERITY.index(s.level)):
        stats = collector.rules[summary.rule_id]
        parts.append(
            f'<h3 id="rule-{escape(summary.rule_id)}">{_level(summary.level)} '
            f'{escape(summary.title)} <span class="muted">({summary.count})</span></h3>'
        )
        parts.extend(_detection(collector, detection) for detection in stats.kept)
        if stats.not_kept:
            parts.append(f'<p class="muted">{stats.not_kept} more not shown</p>')
    return "".join(parts)


def _detection(collector: ReportCollector, detection: Detection) -> str:
    head = [
        f'<div class="detection"><b>{escape(_text(detection.message))}</b><br>',
        f'<span class="muted">{escape(format_timestamp(detection.timestamp))} · id '
        f"<code>{escape(detection.id)}</code></span>",
    ]
    if detection.group:
        group = ", ".join(f"{k}={v}" for k, v in detection.group.items())
        head.append(f"<br>group <code>{escape(_text(group))}</code>")
    if detection.window:
        head.append(
            f"<br>window {escape(format_timestamp(detection.window.start))} to "
            f"{escape(format_timestamp(detection.window.end))}"
        )
    if _is_chain(detection):
        head.append(_chain(collector, detection))
    else:
        head.append(_evidence_table(collector, detection))
    head.append("</div>")
    return "".join(head)


def _is_chain(detection: Detection) -> bool:
    """A correlation's detection: its evidence is a sequence of steps."""
    return detection.group is not None or detection.window is not None


def _chain(collector: ReportCollector, detection: Detection) -> str:
    steps: list[str] = []
    for number, evidence in enumerate(detection.evidence, start=1):
        facts = collector.facts(evidence)
        lines = [
            f"<b>{number}. {escape(_text(evidence.action or '-'))}</b>",
            escape(format_timestamp(evidence.timestamp)),
            f"{escape(evidence.source)} · {escape(_text(evidence.actor or '-'))}",
            *(f"{escape(k)}: {escape(v)}" for k, v in facts.items()),
        ]
        if steps:
            steps.append('<li class="arrow" aria-hidden="true">→</li>')
        steps.append(f'<li class="step">{"<br>".join(lines)}</li>')
    return f'<ol class="chain">{"".join(steps)}</ol>'


def _evidence_table(collector: ReportCollector, detection: Detection) -> str:
    rows = []
    for evidence in detection.evidence:
        facts = collector.facts(evidence)
        rows.append(
            (
                format_timestamp(evidence.timestamp),
                evidence.source,
                _text(evidence.action or "-"),
                _text(evidence.actor or "-"),
                "; ".join(f"{k}: {v}" for k, v in facts.items()),
                evidence.id,
            )
        )
    header = ("time", "source", "action", "actor", "target and context", "event id")
    return _table(header, rows, wrap=(2, 3, 4, 5))


def _rule_versions(provenance: Provenance) -> str:
    rows = [(v.rule_id, v.title, v.path, v.sha256[:16]) for v in provenance.rules]
    return (
        '<h2 id="rules-used">Rule versions</h2>'
        f"<p>{len(provenance.rules)} rules; SHA-256 over every rule file: "
        f"<code>{escape(provenance.pack_sha256)}</code></p>"
        + _table(("rule id", "title", "file", "file SHA-256 (first 16)"), rows, wrap=(0, 2))
    )


def _table(
    header: Sequence[str], rows: Iterable[Sequence[object]], wrap: Collection[int] = ()
) -> str:
    """A table; the columns in `wrap` may break anywhere (long names from logs)."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(_cell(value, n in wrap) for n, value in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: object, wrap: bool = False) -> str:
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    attribute = ' class="w"' if wrap else ""
    return f"<td{attribute}>{escape(str(value))}</td>"


def _level(level: str | None) -> str:
    return (
        f'<span class="level" style="background:{colour_of(level)}">'
        f"{escape(level or 'none')}</span>"
    )


def _text(value: object) -> str:
    """Redacted text of a detection field (tokens quoted in logs never reach the report)."""
    return redact_text(str(value))
