"""Event time: window-end decisions by watermark, lateness, redelivery, bounded state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.correlate import EngineSettings
from detector.correlate.engine import microseconds, to_datetime
from detector.deadletter import DeadLetter
from detector.detections import Detection
from detector.events import Event
from detector.timestamps import EPOCH

from .conftest import Correlator, at

Make = Callable[..., Event]
LIVE = EngineSettings(allowed_lateness=timedelta(minutes=5))

FEW_LOGINS = """
title: Few failed logins
id: 7d1f0a52-2222-4222-8222-000000000001
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 1h
  condition: {lt: 3}
"""


def test_upper_bound_is_decided_when_the_watermark_passes_the_window_end(
    correlator: type[Correlator], event: Make
):
    run = correlator(FEW_LOGINS, LIVE)
    assert run.feed([event(0, "login.failed"), event(30, "login.failed")]) == []
    # watermark 64 - 5 = 59: the window [0, 60] is still open
    assert run.feed([event(64, "login.success")]) == []
    # watermark 60: an event at exactly 60 could still arrive and belong to the window
    assert run.feed([event(65, "login.success")]) == []
    [detection] = run.feed([event(65.5, "login.success")])
    assert detection.timestamp == at(60)
    assert (detection.window.start, detection.window.end) == (at(0), at(60))
    assert detection.message == (
        "Few failed logins: event_count: 2 events (lt 3) within 1h, for user.name=alice"
    )


def test_upper_bound_with_enough_events_is_silent(correlator: type[Correlator], event: Make):
    events = [event(m, "login.failed") for m in (0, 30, 60)]
    assert correlator(FEW_LOGINS).run(events) == []


def test_an_event_at_the_window_end_is_inside(correlator: type[Correlator], event: Make):
    run = correlator(FEW_LOGINS, EngineSettings(allowed_lateness=timedelta(0)))
    assert run.feed([event(0, "login.failed"), event(30, "login.failed")]) == []
    assert run.feed([event(60, "login.failed")]) == []
    assert run.feed([event(61, "login.success")]) == []


def test_the_next_window_opens_at_the_next_event(correlator: type[Correlator], event: Make):
    events = [event(m, "login.failed") for m in (0, 61, 62, 63)]
    [detection] = correlator(FEW_LOGINS).run(events)
    assert detection.window.start == at(0)


@pytest.mark.parametrize(
    ("condition", "count", "fires"),
    [
        ("{eq: 2}", 2, True),
        ("{eq: 2}", 3, False),
        ("{neq: 2}", 3, True),
        ("{neq: 2}", 2, False),
        ("{lte: 2}", 2, True),
        ("{gt: 1, lte: 3}", 3, True),
        ("{gt: 1, lte: 3}", 4, False),
        ("{gt: 1, lte: 3}", 1, False),
        ("{gte: 2, lt: 4}", 2, True),
    ],
)
def test_conditions_with_an_upper_bound(
    correlator: type[Correlator], event: Make, condition: str, count: int, fires: bool
):
    rule = FEW_LOGINS.replace("{lt: 3}", condition)
    detections = correlator(rule).run([event(m, "login.failed") for m in range(count)])
    assert len(detections) == (1 if fires else 0)
    if fires:
        assert f"{count} events ({condition[1:-1].replace(':', '').replace(',', ' and')})" in (
            detections[0].message
        )


def test_a_range_keeps_every_operator(compile_correlations: Callable[..., object]):
    _, correlations = compile_correlations(FEW_LOGINS.replace("{lt: 3}", "{gt: 100, lte: 200}"))
    [rule] = correlations.rules
    assert rule.condition.bounds == (("gt", 100), ("lte", 200))
    assert not rule.decided_on_arrival


def test_late_events_are_dead_lettered_and_counted(correlator: type[Correlator], event: Make):
    run = correlator(FEW_LOGINS, LIVE)
    run.feed([event(10, "login.failed", "bob")])
    # watermark 5: an event at 4 is late; one at 5 is not
    [late] = run.feed([event(4, "login.failed", raw={"action": "login.failed", "n": 1})])
    assert isinstance(late, DeadLetter)
    assert late.reason == (
        "late: event time 2025-03-11T10:04:00.000000Z is before the correlation watermark "
        "2025-03-11T10:05:00.000000Z"
    )
    assert late.origin == "github:login.failed:alice:4"
    assert late.source == "github"
    assert orjson.loads(late.data) == {"action": "login.failed", "n": 1}
    assert run.feed([event(5, "login.failed")]) == []
    assert run.engine.stats.late == 1
    assert run.engine.watermark == at(5)


def test_events_no_correlation_uses_are_never_late(correlator: type[Correlator], event: Make):
    run = correlator(FEW_LOGINS, LIVE)
    run.feed([event(10, "login.failed")])
    assert run.feed([event(0, "repo.create")]) == []
    assert run.engine.stats.late == 0


def test_a_redelivered_event_counts_once(correlator: type[Correlator], event: Make):
    rule = FEW_LOGINS.replace("{lt: 3}", "{gte: 2}")
    run = correlator(rule)
    assert run.run([event(0, "login.failed"), event(0, "login.failed")]) == []
    assert run.engine.stats.duplicates == 1


def test_the_group_cap_evicts_the_least_recently_active(
    correlator: type[Correlator], event: Make, caplog: pytest.LogCaptureFixture
):
    rule = FEW_LOGINS.replace("{lt: 3}", "{gte: 2}")
    run = correlator(rule, EngineSettings(max_groups=2))
    with caplog.at_level(logging.WARNING, logger="detector.correlate"):
        detections = run.run(
            [
                event(0, "login.failed", "a"),
                event(1, "login.failed", "b"),
                event(2, "login.failed", "a"),  # a completes: a's group ends
                event(3, "login.failed", "c"),
                event(4, "login.failed", "d"),  # evicts b, the least recently active
                event(5, "login.failed", "b"),
                event(6, "login.failed", "d"),
            ]
        )
    assert [d.group for d in detections] == [{"user.name": "a"}, {"user.name": "d"}]
    assert run.engine.stats.evicted_groups == 2  # b at minute 4, then c at minute 5
    assert caplog.messages == [
        "correlation 7d1f0a52-2222-4222-8222-000000000001: more than 2 live groups, "
        "evicting the least recently active (1 evicted so far)"
    ]


def test_idle_groups_expire_by_event_time(correlator: type[Correlator], event: Make):
    rule = FEW_LOGINS.replace("{lt: 3}", "{gte: 5}")
    run = correlator(rule, EngineSettings(max_groups=2))
    run.feed([event(0, "login.failed", "a"), event(1, "login.failed", "b")])
    run.run([event(120, "login.failed", "c"), event(121, "login.failed", "d")])
    assert run.engine.stats.evicted_groups == 0


def test_detection_ids_are_deterministic_and_distinct(correlator: type[Correlator], event: Make):
    rule = FEW_LOGINS.replace("{lt: 3}", "{gte: 2}")
    events = [event(m, "login.failed", user) for m in range(4) for user in ("a", "b")]
    first = correlator(rule).run(events)
    second = correlator(rule).run(list(reversed(events)))
    assert [d.id for d in first] == [d.id for d in second]
    assert len({d.id for d in first}) == len(first) == 4


def test_unbounded_lateness_orders_the_whole_input(correlator: type[Correlator], event: Make):
    rule = FEW_LOGINS.replace("{lt: 3}", "{gte: 3}")
    run = correlator(rule)
    events = [event(m, "login.failed") for m in (300, 0, 1, 2, -600)]
    assert run.feed(events) == []
    assert run.engine.watermark is None
    [detection] = [d for d in run.engine.flush() if isinstance(d, Detection)]
    assert [e.id for e in detection.evidence] == [
        "login.failed:alice:0",
        "login.failed:alice:1",
        "login.failed:alice:2",
    ]


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_the_clock_reads_any_zoned_time_as_microseconds_since_the_epoch(moment: datetime) -> None:
    assert microseconds(moment) == (moment - EPOCH) // timedelta(microseconds=1)
    assert to_datetime(microseconds(moment)) == moment
