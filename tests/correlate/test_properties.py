"""Properties: arrival order within the lateness and crashes with restore change nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.correlate import CorrelationEngine, EngineSettings, checkpoint, compile_correlations
from detector.detections import Detection
from detector.events import Event
from detector.rules.routing import RuleRouter

from .conftest import BASE_RULES, ROUTES, load_text, make_event

#: Every aggregator: on arrival, at window end, chains, extensions, suppression, no group.
#: (`Count` is silenced by `Chain`, which references it: generate defaults to false; `Chain`
#: groups by a field `Count` does not, which `Count` carries.)
RULES = """
title: Count
id: 9a000000-0000-4000-8000-000000000001
correlation:
  type: event_count
  rules: [failed_login, login]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 2}
---
title: Sum
id: 9a000000-0000-4000-8000-000000000002
correlation:
  type: value_sum
  rules: [download]
  group-by: [user.name]
  timespan: 10m
  condition: {field: raw.n, gt: 6}
---
title: Distinct addresses
id: 9a000000-0000-4000-8000-000000000003
correlation:
  type: value_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 10m
  condition: {field: source.ip, gte: 2}
---
title: All three
id: 9a000000-0000-4000-8000-000000000004
correlation:
  type: temporal
  rules: [secret_read, token_created, download]
  group-by: [user.name]
  timespan: 10m
---
title: In order
id: 9a000000-0000-4000-8000-000000000005
correlation:
  type: temporal_ordered
  rules: [secret_read, token_created, download]
  group-by: [user.name]
  timespan: 10m
  condition: {gte: 2}
  suppression: 30m
---
title: Quiet
id: 9a000000-0000-4000-8000-000000000006
correlation:
  type: event_count
  rules: [login]
  group-by: [user.name]
  timespan: 5m
  condition: {lt: 2}
---
title: Average
id: 9a000000-0000-4000-8000-000000000007
correlation:
  type: value_avg
  rules: [download]
  timespan: 7m
  condition: {field: raw.n, gte: 2}
---
title: Ordered range
id: 9a000000-0000-4000-8000-000000000008
correlation:
  type: temporal_ordered
  rules: [failed_login, login]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 2, lte: 2}
---
title: New address
id: 9a000000-0000-4000-8000-000000000009
correlation:
  type: first_seen
  rules: [login, failed_login]
  group-by: [user.name]
  timespan: 20m
  condition: {field: source.ip}
  max-values: 2
---
title: Token without login
id: 9a000000-0000-4000-8000-00000000000a
correlation:
  type: absence
  rules: [token_created, login]
  group-by: [user.name]
  timespan: 5m
---
title: Chain
id: 9a000000-0000-4000-8000-00000000000b
correlation:
  type: temporal
  rules: [9a000000-0000-4000-8000-000000000001, secret_read]
  group-by: [source.ip]
  timespan: 10m
"""

LOADED = load_text(BASE_RULES + "\n---\n" + RULES)
CORRELATIONS = compile_correlations(LOADED)
ROUTER = RuleRouter(LOADED.rules, ROUTES)
LATENESS = 120  # seconds
ACTIONS = ["login.failed", "login.success", "secret.read", "token.create", "artifact.download"]


def test_the_rules_under_test_load():
    assert LOADED.errors == []
    assert CORRELATIONS.errors == []
    assert len(CORRELATIONS.rules) == 11


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """Events over an hour, few users and addresses so that groups fill up; redeliveries."""
    count = draw(st.integers(min_value=1, max_value=60))
    events = []
    for number in range(count):
        second = draw(st.integers(min_value=0, max_value=3600))
        action = draw(st.sampled_from([*ACTIONS, "repo.create"]))
        events.append(
            make_event(
                second / 60,
                action,
                draw(st.sampled_from(["alice", "bob", None])),
                source=draw(st.sampled_from(["github", "gitlab"])),
                event_id=f"e{number}",
                raw={"n": draw(st.integers(min_value=0, max_value=4))},
                source_ip=draw(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", None])),
            )
        )
    redelivered = draw(st.lists(st.sampled_from(events), max_size=3))
    return events + redelivered


def _in_order(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.timestamp, e.event_source, e.event_id))


def _run(engine: CorrelationEngine, events: Sequence[Event], flush: bool = True) -> list[bytes]:
    out = []
    for event in events:
        for item in engine.process(event, ROUTER.match(event)):
            assert isinstance(item, Detection), item  # nothing is late within the lateness
            out.append(item.to_json())
    if flush:
        out += [item.to_json() for item in engine.flush()]
    return out


def _engine(lateness: int | None = LATENESS) -> CorrelationEngine:
    allowed = None if lateness is None else timedelta(seconds=lateness)
    return CorrelationEngine(CORRELATIONS, EngineSettings(allowed_lateness=allowed))


@st.composite
def arrivals(draw: st.DrawFn) -> list[Event]:
    """A stream in an arrival order where no event is later than the allowed lateness:
    each event arrives at its time plus a delay of at most the lateness."""
    events = draw(streams())
    delays = [draw(st.integers(min_value=0, max_value=LATENESS * 1_000_000)) for _ in events]
    order = sorted(
        range(len(events)),
        key=lambda i: (events[i].timestamp + timedelta(microseconds=delays[i]), i),
    )
    return [events[i] for i in order]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_any_order_within_the_lateness_gives_the_in_order_result(events: list[Event]):
    expected = _run(_engine(), _in_order(events))
    assert _run(_engine(), events) == expected
    assert _run(_engine(None), events) == expected
    assert _run(_engine(0), _in_order(events)) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals(), st.data())
def test_crashes_with_restore_from_a_checkpoint_give_the_uninterrupted_result(
    events: list[Event], data: st.DataObject
):
    expected = _run(_engine(), events)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(events)), max_size=3)))
    engine, out, start = _engine(), [], 0
    for cut in cuts:
        out += _run(engine, events[start:cut], flush=False)
        saved = checkpoint.encode(checkpoint.Checkpoint(cut, [], engine.snapshot()))
        engine = _engine()  # the process died; a new one resumes
        restored = checkpoint.decode(saved)
        assert restored.records == cut
        engine.restore(restored.engine)
        start = cut
    out += _run(engine, events[start:])
    assert out == expected
