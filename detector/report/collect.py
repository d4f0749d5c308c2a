"""What a replay report needs, gathered while the replay runs.

`ReportCollector` is fed from the replay's existing hooks: the events that matched a rule
(`DetectionStage.on_match`), each detection, and each dead letter. It keeps per rule the
detection times, counts per day and the groups that fired it, a bounded sample of the
detections themselves, and the key fields of matched events so that evidence can be shown
with its repository or namespace. Every kept string is redacted first.
"""

from __future__ import annotations

from array import array
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from detector.deadletter import DeadLetter
from detector.detections import Detection, Evidence
from detector.events import Event
from detector.redact import redact_text

#: matched events whose fields are remembered for evidence (oldest forgotten first)
MAX_FACTS = 200_000
#: detections of one rule kept in full for the report (the rest are counted)
MAX_KEPT_PER_RULE = 50
#: distinct dead-letter reasons counted apart; the rest go under OTHER_REASONS
MAX_REASONS = 100
OTHER_REASONS = "(other reasons)"

#: (label, Event attribute) of the fields shown beside each evidence event
FACT_FIELDS = (
    ("identity", "user_identity"),
    ("repository", "repository"),
    ("organization", "organization"),
    ("namespace", "namespace"),
    ("resource", "resource_name"),
    ("image", "image_name"),
    ("branch", "branch"),
    ("source ip", "source_ip"),
)
#: the kinds of group a backtest ranks: evidence actors, and these event fields
GROUP_KINDS = ("actor", "repository", "namespace")


def event_facts(event: Event) -> dict[str, str]:
    """The key fields of `event` that it carries, redacted."""
    facts = {}
    for label, attribute in FACT_FIELDS:
        value = getattr(event, attribute)
        if value:
            facts[label] = redact_text(str(value))
    return facts


@dataclass
class RuleStats:
    """One rule's detections over the replay."""

    rule_id: str
    title: str
    level: str | None
    count: int = 0
    #: event time of each detection (epoch seconds), for the timeline; 8 bytes each
    times: array[float] = field(default_factory=lambda: array("d"))
    by_day: Counter[str] = field(default_factory=Counter)
    #: "kind: value" of actors, repositories and namespaces in the evidence
    groups: Counter[str] = field(default_factory=Counter)
    kept: list[Detection] = field(default_factory=list)

    @property
    def not_kept(self) -> int:
        return self.count - len(self.kept)


class ReportCollector:
    """Collects the detections, evidence fields and dead-letter reasons of one run."""

    def __init__(self, max_facts: int = MAX_FACTS, max_kept: int = MAX_KEPT_PER_RULE) -> None:
        self.max_facts = max_facts
        self.max_kept = max_kept
        self.rules: dict[str, RuleStats] = {}
        #: identity → detection times (epoch seconds)
        self.identities: dict[str, array[float]] = {}
        self.dead_letters: Counter[str] = Counter()
        self._facts: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        #: event time of the first and last event replayed
        self.first: datetime | None = None
        self.last: datetime | None = None

    def event_seen(self, event: Event) -> None:
        """Every replayed event: the period the report covers."""
        when = event.timestamp
        if self.first is None or when < self.first:
            self.first = when
        if self.last is None or when > self.last:
            self.last = when

    def event_matched(self, event: Event) -> None:
        """`event` matched a rule: it may become evidence, so remember its fields."""
        key = (event.event_source, event.event_id)
        self._facts[key] = event_facts(event)
        self._facts.move_to_end(key)
        if len(self._facts) > self.max_facts:
            self._facts.popitem(last=False)

    def facts(self, evidence: Evidence) -> dict[str, str]:
        """The remembered fields of an evidence event (empty when forgotten)."""
        return self._facts.get((evidence.source, evidence.id), {})

    def dead_letter(self, letter: DeadLetter) -> None:
        reason = letter.reason
        if reason not in self.dead_letters and len(self.dead_letters) >= MAX_REASONS:
            reason = OTHER_REASONS
        self.dead_letters[reason] += 1

    def detection(self, detection: Detection) -> None:
        rule = detection.rule
        stats = self.rules.get(rule.id)
        if stats is None:
            stats = self.rules[rule.id] = RuleStats(rule.id, rule.title, rule.level)
        when = detection.timestamp.timestamp()
        stats.count += 1
        stats.times.append(when)
        stats.by_day[detection.timestamp.astimezone(UTC).date().isoformat()] += 1
        stats.groups.update(self._groups(detection))
        if len(stats.kept) < self.max_kept:
            stats.kept.append(detection)
        self.identities.setdefault(self.identity(detection), array("d")).append(when)

    def identity(self, detection: Detection) -> str:
        """Who a detection is about: the person of its first evidence event (identity map,
        else actor), else its correlation group."""
        if detection.evidence:
            first = detection.evidence[0]
            person = self.facts(first).get("identity") or first.actor
            if person:
                return redact_text(person)
        if detection.group:
            return redact_text(", ".join(f"{k}={v}" for k, v in detection.group.items()))
        return "(unknown)"

    def _groups(self, detection: Detection) -> set[str]:
        found = set()
        for evidence in detection.evidence:
            if evidence.actor:
                found.add(f"actor: {redact_text(evidence.actor)}")
            facts = self.facts(evidence)
            for kind in GROUP_KINDS[1:]:
                if kind in facts:
                    found.add(f"{kind}: {facts[kind]}")
        return found

    @property
    def detections(self) -> int:
        return sum(stats.count for stats in self.rules.values())

    def detection_span(self) -> tuple[datetime, datetime] | None:
        """First and last detection time."""
        return self._span([])

    def span(self) -> tuple[datetime, datetime] | None:
        """The replayed period: first and last event time (and detection time: a
        correlation may be decided after the last event)."""
        return self._span([t.timestamp() for t in (self.first, self.last) if t is not None])

    def _span(self, times: list[float]) -> tuple[datetime, datetime] | None:
        times += [t for stats in self.rules.values() for t in (min(stats.times), max(stats.times))]
        if not times:
            return None
        return datetime.fromtimestamp(min(times), UTC), datetime.fromtimestamp(max(times), UTC)


@dataclass(frozen=True)
class RuleSummary:
    """A rule's share of a run: what a backtest shows per rule."""

    rule_id: str
    title: str
    level: str | None
    count: int
    #: of all detections of the run, 0..1
    share: float
    #: detections per day, aligned with `days()`
    per_day: list[int]
    #: the most frequent groups, with their counts
    top_groups: list[tuple[str, int]]


def days(collector: ReportCollector) -> list[str]:
    """Every day (ISO date) of the replayed period."""
    span = collector.span()
    if span is None:
        return []
    first, last = span[0].date(), span[1].date()
    return [date.fromordinal(n).isoformat() for n in range(first.toordinal(), last.toordinal() + 1)]


def rule_summaries(collector: ReportCollector, top: int = 5) -> list[RuleSummary]:
    """One summary per rule that fired, the most frequent first."""
    total = collector.detections or 1
    every_day = days(collector)
    ranked = sorted(collector.rules.values(), key=lambda s: (-s.count, s.title))
    return [
        RuleSummary(
            rule_id=stats.rule_id,
            title=stats.title,
            level=stats.level,
            count=stats.count,
            share=stats.count / total,
            per_day=[stats.by_day.get(day, 0) for day in every_day],
            top_groups=sorted(stats.groups.items(), key=lambda g: (-g[1], g[0]))[:top],
        )
        for stats in ranked
    ]
