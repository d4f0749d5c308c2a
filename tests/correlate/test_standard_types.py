"""The specification's correlation types at their edges, in event time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from detector.correlate import EngineSettings
from detector.events import Event

from .conftest import Correlator, at

Make = Callable[..., Event]

BRUTE_FORCE = """
title: Brute force
id: 7d1f0a52-1111-4111-8111-000000000001
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 1h
  condition: {gte: 3}
level: high
"""


def test_event_count_fires_exactly_at_the_threshold(correlator: type[Correlator], event: Make):
    detections = correlator(BRUTE_FORCE).run([event(m, "login.failed") for m in (0, 20, 40)])
    [detection] = detections
    assert detection.rule.id == "7d1f0a52-1111-4111-8111-000000000001"
    assert detection.rule.level == "high"
    assert detection.group == {"user.name": "alice"}
    assert detection.timestamp == at(40)
    assert (detection.window.start, detection.window.end) == (at(-20), at(40))
    assert [e.id for e in detection.evidence] == [
        "login.failed:alice:0",
        "login.failed:alice:20",
        "login.failed:alice:40",
    ]
    assert detection.message == (
        "Brute force: event_count: 3 events (gte 3) within 1h, for user.name=alice"
    )


def test_event_count_one_short_is_silent(correlator: type[Correlator], event: Make):
    assert correlator(BRUTE_FORCE).run([event(m, "login.failed") for m in (0, 20)]) == []


def test_window_ends_are_inclusive(correlator: type[Correlator], event: Make):
    """Three events spanning exactly the timespan meet; a microsecond more and they do not."""
    inside = [event(0, "login.failed"), event(30, "login.failed"), event(60, "login.failed")]
    assert len(correlator(BRUTE_FORCE).run(inside)) == 1
    beyond = [*inside[:2], event(60 + 1 / 60_000_000, "login.failed")]
    assert correlator(BRUTE_FORCE).run(beyond) == []


def test_windows_slide_rather_than_fall_in_fixed_buckets(correlator: type[Correlator], event: Make):
    rule = BRUTE_FORCE.replace("gte: 3", "gte: 2")
    detections = correlator(rule).run([event(59, "login.failed"), event(61, "login.failed")])
    assert [d.timestamp for d in detections] == [at(61)]


def test_a_group_starts_over_after_a_detection(correlator: type[Correlator], event: Make):
    detections = correlator(BRUTE_FORCE).run([event(m, "login.failed") for m in range(7)])
    assert [[e.id for e in d.evidence] for d in detections] == [
        [f"login.failed:alice:{m}" for m in (0, 1, 2)],
        [f"login.failed:alice:{m}" for m in (3, 4, 5)],
    ]
    assert len({d.id for d in detections}) == 2


def test_groups_are_separate_and_compare_case_insensitively(
    correlator: type[Correlator], event: Make
):
    events = [
        event(0, "login.failed", "Alice"),
        event(1, "login.failed", "bob"),
        event(2, "login.failed", "alice"),
        event(3, "login.failed", "bob"),
        event(4, "login.failed", "ALICE"),
    ]
    [detection] = correlator(BRUTE_FORCE).run(events)
    assert detection.group == {"user.name": "alice"}
    assert [e.actor for e in detection.evidence] == ["Alice", "alice", "ALICE"]


def test_events_without_the_group_field_join_no_group(correlator: type[Correlator], event: Make):
    engine_run = correlator(BRUTE_FORCE)
    events = [event(m, "login.failed", None) for m in (0, 1, 2)]
    events += [event(3, "login.failed", ""), event(4, "login.failed", "alice")]
    assert engine_run.run(events) == []
    assert engine_run.engine.stats.ungrouped == 4


def test_no_group_by_is_one_group_over_all_events(correlator: type[Correlator], event: Make):
    rule = BRUTE_FORCE.replace("  group-by: [user.name]\n", "")
    events = [event(0, "login.failed", "a"), event(1, "login.failed", None)]
    [detection] = correlator(rule).run([*events, event(2, "login.failed", "b")])
    assert detection.group is None
    assert detection.message.endswith("within 1h, over all events")


def test_several_group_fields_must_all_match(correlator: type[Correlator], event: Make):
    rule = BRUTE_FORCE.replace("[user.name]", "[user.name, source.ip]")
    events = [
        event(0, "login.failed", **{"source_ip": "10.0.0.1"}),
        event(1, "login.failed", **{"source_ip": "10.0.0.2"}),
        event(2, "login.failed", **{"source_ip": "10.0.0.1"}),
        event(3, "login.failed", **{"source_ip": "10.0.0.1"}),
    ]
    [detection] = correlator(rule).run(events)
    assert detection.group == {"user.name": "alice", "source.ip": "10.0.0.1"}
    assert len(detection.evidence) == 3


VALUE_COUNT = """
title: Password spraying
id: 7d1f0a52-1111-4111-8111-000000000002
correlation:
  type: value_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10m
  condition: {field: user.name, gte: 3}
"""


def test_value_count_counts_distinct_values(correlator: type[Correlator], event: Make):
    ip = {"source_ip": "203.0.113.9"}
    events = [
        event(0, "login.failed", "a", **ip),
        event(1, "login.failed", "a", **ip),
        event(2, "login.failed", "B", **ip),
        event(3, "login.failed", "b", **ip),
    ]
    run = correlator(VALUE_COUNT)
    assert run.feed(events) == []
    [detection] = run.run([event(4, "login.failed", "c", **ip)])
    assert detection.group == {"source.ip": "203.0.113.9"}
    assert detection.message == (
        "Password spraying: value_count: 3 distinct user.name (gte 3) within 10m, "
        "for source.ip=203.0.113.9"
    )
    # the latest event of each value
    assert [e.id for e in detection.evidence] == [
        "login.failed:a:1",
        "login.failed:b:3",
        "login.failed:c:4",
    ]


def test_value_count_forgets_values_older_than_the_window(
    correlator: type[Correlator], event: Make
):
    ip = {"source_ip": "203.0.113.9"}
    events = [event(m, "login.failed", user, **ip) for m, user in ((0, "a"), (5, "b"), (11, "c"))]
    assert correlator(VALUE_COUNT).run(events) == []


def test_value_count_ignores_events_without_the_value(correlator: type[Correlator], event: Make):
    ip = {"source_ip": "203.0.113.9"}
    run = correlator(VALUE_COUNT)
    events = [event(0, "login.failed", None, **ip), event(1, "login.failed", "a", **ip)]
    assert run.run(events) == []
    assert run.engine.stats.no_value == 1


TEMPORAL = """
title: Recon then exfiltration
id: 7d1f0a52-1111-4111-8111-000000000003
correlation:
  type: temporal
  rules: [secret_read, token_created, download]
  group-by: [user.name]
  timespan: 15m
"""


def test_temporal_needs_every_rule_in_any_order(correlator: type[Correlator], event: Make):
    events = [event(0, "artifact.download"), event(5, "secret.read"), event(15, "token.create")]
    [detection] = correlator(TEMPORAL).run(events)
    assert detection.timestamp == at(15)
    assert [e.action for e in detection.evidence] == [
        "artifact.download",
        "secret.read",
        "token.create",
    ]
    assert "3 of 3 rules (gte 3) within 15m" in detection.message


def test_temporal_two_of_three_is_silent(correlator: type[Correlator], event: Make):
    events = [event(0, "artifact.download"), event(5, "secret.read"), event(6, "secret.read")]
    assert correlator(TEMPORAL).run(events) == []


def test_temporal_beyond_the_timespan_is_silent(correlator: type[Correlator], event: Make):
    events = [event(0, "artifact.download"), event(5, "secret.read"), event(16, "token.create")]
    assert correlator(TEMPORAL).run(events) == []


def test_temporal_uses_the_latest_event_of_each_rule(correlator: type[Correlator], event: Make):
    events = [
        event(0, "artifact.download"),
        event(14, "secret.read"),
        event(20, "artifact.download"),
        event(21, "token.create"),
    ]
    [detection] = correlator(TEMPORAL).run(events)
    assert [e.id for e in detection.evidence] == [
        "secret.read:alice:14",
        "artifact.download:alice:20",
        "token.create:alice:21",
    ]


ORDERED = TEMPORAL.replace("type: temporal", "type: temporal_ordered").replace(
    "000000000003", "000000000004"
)


def test_temporal_ordered_in_order_fires(correlator: type[Correlator], event: Make):
    events = [event(0, "secret.read"), event(1, "token.create"), event(2, "artifact.download")]
    [detection] = correlator(ORDERED).run(events)
    assert "3 of 3 rules in order (gte 3) within 15m" in detection.message


def test_temporal_ordered_out_of_order_is_silent(correlator: type[Correlator], event: Make):
    events = [event(0, "token.create"), event(1, "secret.read"), event(2, "artifact.download")]
    assert correlator(ORDERED).run(events) == []


def test_temporal_ordered_same_event_time_keeps_release_order(
    correlator: type[Correlator], event: Make
):
    """At one timestamp, events are ordered by (source, id): deterministic, documented."""
    events = [
        event(0, "secret.read", event_id="b"),
        event(0, "token.create", event_id="a"),
        event(1, "artifact.download"),
    ]
    assert correlator(ORDERED).run(events) == []


def test_temporal_ordered_keeps_the_chain_that_started_latest(
    correlator: type[Correlator], event: Make
):
    events = [
        event(0, "secret.read"),
        event(10, "secret.read"),
        event(12, "token.create"),
        event(24, "artifact.download"),
    ]
    [detection] = correlator(ORDERED).run(events)
    assert [e.id for e in detection.evidence] == [
        "secret.read:alice:10",
        "token.create:alice:12",
        "artifact.download:alice:24",
    ]


def test_temporal_ordered_with_a_lower_count_takes_any_rules_in_order(
    correlator: type[Correlator], event: Make
):
    rule = ORDERED.replace("  timespan: 15m\n", "  timespan: 15m\n  condition: {gte: 2}\n")
    events = [event(0, "artifact.download"), event(1, "token.create"), event(2, "secret.read")]
    assert correlator(rule).run(events) == []
    [detection] = correlator(rule).run([event(0, "token.create"), event(1, "artifact.download")])
    assert [e.action for e in detection.evidence] == ["token.create", "artifact.download"]


def test_temporal_ordered_one_event_is_never_two_steps(correlator: type[Correlator], event: Make):
    rules = """
    title: Broad secret rule
    id: 7d1f0a52-1111-4111-8111-0000000000a1
    name: any_secret
    logsource: {product: cicd}
    detection: {selection: {event.action|startswith: secret.}, condition: selection}
    ---
    title: Secret twice
    id: 7d1f0a52-1111-4111-8111-0000000000a2
    correlation:
      type: temporal_ordered
      rules: [any_secret, secret_read]
      group-by: [user.name]
      timespan: 5m
    """
    run = correlator(rules)
    assert run.run([event(0, "secret.read")]) == []
    [detection] = correlator(rules).run([event(0, "secret.read"), event(1, "secret.read")])
    assert len(detection.evidence) == 2


VALUE_SUM = """
title: Large download volume
id: 7d1f0a52-1111-4111-8111-000000000005
correlation:
  type: value_sum
  rules: [download]
  group-by: [user.name]
  timespan: 1h
  condition: {field: raw.bytes, gt: 1000}
"""


def test_value_sum_fires_above_the_threshold(correlator: type[Correlator], event: Make):
    def download(minute: float, size: object) -> Event:
        return event(minute, "artifact.download", raw={"bytes": size})

    run = correlator(VALUE_SUM)
    assert run.feed([download(0, 600), download(10, "400")]) == []
    [detection] = run.run([download(20, 0.5)])
    assert detection.message == (
        "Large download volume: value_sum: sum of raw.bytes 1000.5 (gt 1000) within 1h, "
        "for user.name=alice"
    )
    assert len(detection.evidence) == 3


def test_value_sum_drops_values_that_left_the_window(correlator: type[Correlator], event: Make):
    def download(minute: float, size: object) -> Event:
        return event(minute, "artifact.download", raw={"bytes": size})

    run = correlator(VALUE_SUM)
    events = [download(0, 600), download(30, "n/a"), download(61, 400), download(62, 1)]
    assert run.run(events) == []  # 600 left the window at minute 60
    assert run.engine.stats.no_value == 1


VALUE_AVG = """
title: Slow builds
id: 7d1f0a52-1111-4111-8111-000000000006
correlation:
  type: value_avg
  rules: [download]
  group-by: [user.name]
  timespan: 1h
  condition: {field: raw.seconds, gt: 2.5}
"""


def test_value_avg_is_decided_when_the_window_ends(correlator: type[Correlator], event: Make):
    def download(minute: float, seconds: float) -> Event:
        return event(minute, "artifact.download", raw={"seconds": seconds})

    run = correlator(VALUE_AVG, EngineSettings(allowed_lateness=timedelta(0)))
    # the first value alone is above 2.5, but the window's average is decided at its end
    assert run.feed([download(0, 4), download(30, 2), download(60, 2)]) == []
    # an event after the end moves the watermark past it: (4 + 2 + 2) / 3 = 2.67 > 2.5
    [detection] = run.feed([download(61, 9)])
    assert detection.timestamp == at(60)
    assert (detection.window.start, detection.window.end) == (at(0), at(60))
    assert "average of raw.seconds 2.6666666666666665 (gt 2.5) within 1h" in detection.message
    # the event at minute 61 opened the next window: average 9, decided at the flush
    [last] = run.engine.flush()
    assert last.window.start == at(61)


def test_value_avg_below_is_silent(correlator: type[Correlator], event: Make):
    events = [event(m, "artifact.download", raw={"seconds": s}) for m, s in ((0, 4), (1, 1))]
    assert correlator(VALUE_AVG).run(events) == []


def test_value_percentile(correlator: type[Correlator], event: Make):
    rule = VALUE_AVG.replace("type: value_avg", "type: value_percentile")
    events = [
        event(i / 100, "artifact.download", raw={"seconds": v}) for i, v in enumerate(range(1, 101))
    ]
    # the 90th percentile of 1..100, linearly interpolated: 90.1
    above = rule.replace("gt: 2.5", "percentile: 90, gt: 90")
    [detection] = correlator(above).run(events)
    assert "percentile 90 of raw.seconds 90.1 (gt 90) within 1h" in detection.message
    assert len(detection.evidence) == 100
    assert correlator(rule.replace("gt: 2.5", "percentile: 90, gt: 90.2")).run(events) == []


def test_value_median(correlator: type[Correlator], event: Make):
    rule = VALUE_AVG.replace("type: value_avg", "type: value_median").replace("2.5", "2")
    events = [
        event(m, "artifact.download", raw={"seconds": s}) for m, s in ((0, 1), (1, 3), (2, 9))
    ]
    [detection] = correlator(rule).run(events)
    assert "percentile 50 of raw.seconds 3 (gt 2)" in detection.message
