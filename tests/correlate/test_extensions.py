"""The engine's extensions: first_seen, absence and suppression."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from detector.correlate import EngineSettings
from detector.events import Event
from detector.rules.loader import correlation_section

from .conftest import Correlator, at, load_text

Make = Callable[..., Event]

FIRST_SEEN = """
title: Login from a new address
id: 7d1f0a52-4444-4444-8444-000000000001
correlation:
  type: first_seen
  rules: [login]
  group-by: [user.name]
  timespan: 1d
  condition: {field: source.ip}
"""


def _login(event: Make, minute: float, ip: str | None, user: str = "alice") -> Event:
    return event(minute, "login.success", user, source_ip=ip)


def test_first_seen_fires_once_per_new_value(correlator: type[Correlator], event: Make):
    events = [
        _login(event, 0, "10.0.0.1"),
        _login(event, 1, "10.0.0.1"),
        _login(event, 2, "10.0.0.2"),
        _login(event, 3, "10.0.0.1", "bob"),
        _login(event, 4, None),
    ]
    run = correlator(FIRST_SEEN)
    detections = run.run(events)
    assert [(d.group, e.id) for d in detections for e in d.evidence] == [
        ({"user.name": "alice"}, "login.success:alice:0"),
        ({"user.name": "alice"}, "login.success:alice:2"),
        ({"user.name": "bob"}, "login.success:bob:3"),
    ]
    assert detections[1].message == (
        "Login from a new address: first_seen: new source.ip 10.0.0.2 (not seen within 1d), "
        "for user.name=alice"
    )
    assert (detections[1].window.start, detections[1].window.end) == (at(2 - 1440), at(2))
    assert run.engine.stats.no_value == 1


def test_first_seen_forgets_values_after_the_timespan(correlator: type[Correlator], event: Make):
    day = 24 * 60
    events = [
        _login(event, 0, "10.0.0.1"),
        _login(event, day, "10.0.0.1"),  # seen exactly 1d ago: still known
        _login(event, 2 * day + 1, "10.0.0.1"),  # last seen more than 1d ago: new again
    ]
    detections = correlator(FIRST_SEEN).run(events)
    assert [d.timestamp for d in detections] == [at(0), at(2 * day + 1)]


def test_first_seen_history_is_bounded_per_group(correlator: type[Correlator], event: Make):
    rule = FIRST_SEEN + "  max-values: 2\n"
    run = correlator(rule)
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.2", "10.0.0.1"]
    detections = run.run([_login(event, m, ip) for m, ip in enumerate(ips)])
    # 10.0.0.1 was pushed out by 10.0.0.3 and is new again; 10.0.0.2 stayed
    assert [d.evidence[0].id for d in detections] == [
        "login.success:alice:0",
        "login.success:alice:1",
        "login.success:alice:2",
        "login.success:alice:4",
    ]
    assert run.engine.stats.evicted_values == 2


def test_first_seen_learns_without_detections_first(correlator: type[Correlator], event: Make):
    rule = FIRST_SEEN + "  learn: 1h\n"
    events = [
        _login(event, 0, "10.0.0.1"),
        _login(event, 59, "10.0.0.2"),
        _login(event, 61, "10.0.0.2"),
        _login(event, 62, "10.0.0.3"),
    ]
    [detection] = correlator(rule).run(events)
    assert detection.evidence[0].id == "login.success:alice:62"


def test_one_event_with_two_new_values_makes_two_detections(
    correlator: type[Correlator], event: Make
):
    rule = FIRST_SEEN.replace("{field: source.ip}", "{field: [source.ip, user_agent.original]}")
    detections = correlator(rule).run(
        [event(0, "login.success", source_ip="10.0.0.1", user_agent="curl/8.5.0")]
    )
    assert [d.message.split(": ")[2].split(" (")[0] for d in detections] == [
        'new source.ip, user_agent.original ["10.0.0.1","curl/8.5.0"]'
    ]


ABSENCE = """
title: Token created without a login
id: 7d1f0a52-4444-4444-8444-000000000002
correlation:
  type: absence
  rules: [token_created, login]
  group-by: [user.name]
  timespan: 10m
"""


def test_absence_fires_when_the_watermark_passes_the_deadline(
    correlator: type[Correlator], event: Make
):
    run = correlator(ABSENCE, EngineSettings(allowed_lateness=timedelta(0)))
    assert run.feed([event(0, "token.create"), event(10, "repo.create")]) == []
    [detection] = run.feed([event(10.5, "repo.create")])
    assert detection.timestamp == at(10)
    assert (detection.window.start, detection.window.end) == (at(0), at(10))
    assert [e.id for e in detection.evidence] == ["token.create:alice:0"]
    assert detection.message == (
        "Token created without a login: absence: Token created not followed by Successful "
        "login within 10m, for user.name=alice"
    )


def test_absence_is_silent_when_followed_in_time(correlator: type[Correlator], event: Make):
    for minute in (0, 5, 10):  # at the same time, within, at the deadline
        events = [event(0, "token.create"), event(minute, "login.success")]
        assert correlator(ABSENCE).run(events) == [], minute


def test_absence_at_the_same_time_counts_whatever_the_order(
    correlator: type[Correlator], event: Make
):
    events = [event(0, "login.success", event_id="a"), event(0, "token.create", event_id="b")]
    assert correlator(ABSENCE).run(events) == []


def test_absence_too_late_or_before_does_not_count(correlator: type[Correlator], event: Make):
    events = [event(0, "login.success"), event(1, "token.create"), event(11.5, "login.success")]
    [detection] = correlator(ABSENCE).run(events)
    assert detection.timestamp == at(11)


def test_absence_per_event_of_the_first_rule(correlator: type[Correlator], event: Make):
    events = [
        event(0, "token.create"),
        event(5, "token.create"),
        event(12, "login.success"),
        event(13, "token.create", "bob"),
    ]
    detections = correlator(ABSENCE).run(events)
    assert [(d.group, d.timestamp) for d in detections] == [
        ({"user.name": "alice"}, at(10)),
        ({"user.name": "bob"}, at(23)),
    ]


SUPPRESSED = """
title: Brute force
id: 7d1f0a52-4444-4444-8444-000000000003
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 1h
  condition: {gte: 2}
  suppression: 30m
"""


def test_suppression_emits_one_detection_per_group_and_period(
    correlator: type[Correlator], event: Make
):
    # lateness 0: an event is released (and decided) when a later one arrives
    run = correlator(SUPPRESSED, EngineSettings(allowed_lateness=timedelta(0)))
    [opened] = run.feed([event(m, "login.failed") for m in (0, 1, 10)])
    assert run.feed([event(m, "login.failed") for m in (11, 20, 21)]) == []
    assert run.feed([event(m, "login.failed", "bob") for m in (22, 23)]) == []
    # minute 40 releases bob's second event, then passes the end of alice's period (31)
    bob, absorbed = run.feed([event(40, "login.failed")])
    assert bob.group == {"user.name": "bob"}
    assert absorbed.id == opened.id
    assert absorbed.timestamp == opened.timestamp == at(1)
    assert absorbed.message == opened.message + " (+2 suppressed within 30m)"
    assert [e.id for e in absorbed.evidence] == [
        f"login.failed:alice:{m}" for m in (0, 1, 10, 11, 20, 21)
    ]
    assert (absorbed.window.start, absorbed.window.end) == (opened.window.start, at(21))
    assert run.engine.stats.suppressed == 2
    assert run.engine.stats.detections["7d1f0a52-4444-4444-8444-000000000003"] == 4
    # the next detection of the group opens a new period
    assert run.feed([event(41, "login.failed")]) == []
    [later] = run.feed([event(42, "login.failed")])
    assert later.id != opened.id
    assert later.timestamp == at(41)
    assert run.engine.flush() == []


def test_a_period_without_suppressed_detections_ends_silently(
    correlator: type[Correlator], event: Make
):
    detections = correlator(SUPPRESSED).run([event(m, "login.failed") for m in (0, 1)])
    assert len(detections) == 1


def test_the_loader_keeps_the_written_section_of_extensions():
    loaded = load_text(
        FIRST_SEEN.replace("{field: source.ip}", "{field: source.ip}\n  learn: 2h")
        + "\n---\n"
        + SUPPRESSED.replace("gte: 2", "gt: 1, lte: 5")
    )
    assert loaded.errors == []
    sections = [correlation_section(rule) for rule in loaded.correlations]
    assert sections[0]["type"] == "first_seen"
    assert sections[0]["learn"] == "2h"
    assert sections[1]["condition"] == {"gt": 1, "lte": 5}
    assert sections[1]["suppression"] == "30m"
