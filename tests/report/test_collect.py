"""The report's collector: bounded memory of evidence fields and dead-letter reasons,
redacted text, and the per-rule summaries a backtest shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from detector.deadletter import DeadLetter
from detector.detections import RuleRef
from detector.events import Event
from detector.report.collect import (
    MAX_REASONS,
    OTHER_REASONS,
    ReportCollector,
    days,
    rule_summaries,
)
from detector.single_event import single_event_detection

T0 = datetime(2025, 3, 10, 23, 0, tzinfo=UTC)
GITHUB_TOKEN = "ghp_" + "a" * 36


def event(number: int, minutes: int = 0, actor: str = "alice", repo: str = "acme/x") -> Event:
    return Event.model_validate(
        {
            "@timestamp": T0 + timedelta(minutes=minutes),
            "event.id": f"e{number}",
            "event.source": "github",
            "event.action": "repo.destroy",
            "user.name": actor,
            "repository": repo,
            "raw": {},
        }
    )


def test_evidence_fields_are_kept_for_the_most_recent_matched_events_only() -> None:
    collector = ReportCollector(max_facts=3)
    for number in range(5):
        collector.event_matched(event(number, repo=f"acme/r{number}"))
    rule = RuleRef(id="r1", title="Destroyed")
    kept = [collector.facts(single_event_detection(rule, event(n)).evidence[0]) for n in range(5)]
    assert kept == [
        {},
        {},
        {"repository": "acme/r2"},
        {"repository": "acme/r3"},
        {"repository": "acme/r4"},
    ]


def test_tokens_in_event_fields_are_redacted() -> None:
    collector = ReportCollector()
    collector.event_matched(event(1, repo=f"acme/{GITHUB_TOKEN}"))
    detection = single_event_detection(RuleRef(id="r1", title="t"), event(1, actor=GITHUB_TOKEN))
    collector.detection(detection)
    assert GITHUB_TOKEN not in str(collector.facts(detection.evidence[0]))
    assert GITHUB_TOKEN not in str(collector.identities) + str(collector.rules["r1"].groups)


def test_distinct_dead_letter_reasons_are_bounded() -> None:
    collector = ReportCollector()
    for number in range(MAX_REASONS + 50):
        collector.dead_letter(DeadLetter(f"bad record {number}", "x:1", b"{"))
    assert len(collector.dead_letters) == MAX_REASONS + 1
    assert collector.dead_letters[OTHER_REASONS] == 50
    assert sum(collector.dead_letters.values()) == MAX_REASONS + 50


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 4 * 24 * 60)), min_size=1)
)
def test_summaries_count_every_detection_once_per_day(fired: list[tuple[str, int]]) -> None:
    collector = ReportCollector()
    for number, (rule, minutes) in enumerate(fired):
        happened = event(number, minutes)
        collector.event_seen(happened)
        collector.detection(single_event_detection(RuleRef(id=rule, title=rule.upper()), happened))
    summaries = rule_summaries(collector)
    every_day = days(collector)
    assert every_day == sorted(set(every_day))
    assert sum(s.count for s in summaries) == len(fired)
    assert abs(sum(s.share for s in summaries) - 1) < 1e-9
    for summary in summaries:
        assert (
            sum(summary.per_day)
            == summary.count
            == sum(1 for r, _ in fired if r == summary.rule_id)
        )
    assert [s.count for s in summaries] == sorted((s.count for s in summaries), reverse=True)
