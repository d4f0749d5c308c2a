"""The watermark over upstream partitions: never past an upstream that may still send."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detector.runtime.kafka.control import UpstreamClock, control_headers, control_kind

UPSTREAMS = [f"raw:{n}" for n in range(4)]
steps = st.lists(st.tuples(st.sampled_from(UPSTREAMS), st.integers(0, 10**6)), max_size=60)


@given(steps)
def test_live_watermark_is_the_oldest_upstream_once_all_are_heard(seen: list[tuple[str, int]]):
    clock = UpstreamClock(len(UPSTREAMS))
    newest: dict[str, int] = {}
    for upstream, time in seen:
        clock.saw(upstream, time)
        newest[upstream] = max(time, newest.get(upstream, time))
        expected = min(newest.values()) if len(newest) == len(UPSTREAMS) else None
        assert clock.watermark() == expected


@given(steps, st.sampled_from(UPSTREAMS))
def test_an_idle_upstream_stops_holding_the_watermark_until_it_sends(
    seen: list[tuple[str, int]], quiet: str
):
    clock = UpstreamClock(len(UPSTREAMS))
    for upstream in UPSTREAMS:
        clock.saw(upstream, 0)
    clock.went_idle(quiet)
    for upstream, time in seen:
        if upstream != quiet:
            clock.saw(upstream, time)
    others = [u for u in UPSTREAMS if u != quiet]
    assert clock.watermark() == min(
        max([0] + [t for u, t in seen if u == other]) for other in others
    )
    clock.saw(quiet, 0)
    assert clock.watermark() == 0


@given(steps)
def test_a_run_holds_until_every_upstream_started_and_finishes_when_all_ended(
    seen: list[tuple[str, int]],
):
    clock = UpstreamClock(len(UPSTREAMS))
    for upstream in UPSTREAMS[:-1]:
        clock.start(upstream, "run-1")
    for upstream, time in seen:
        clock.saw(upstream, time)
    assert clock.watermark() is None  # the last upstream has not started
    clock.start(UPSTREAMS[-1], "run-1")
    for upstream in UPSTREAMS:
        assert not clock.finished
        clock.end(upstream, "run-1")
    assert clock.finished
    assert clock.complete() == "run-1"
    clock.start(UPSTREAMS[0], "run-1")  # a late duplicate of the finished run
    assert clock.run is None


def test_restored_clock_equals_the_saved_one():
    clock = UpstreamClock(2)
    clock.start("raw:0", "r")
    clock.saw("raw:0", 5)
    clock.went_idle("raw:1")
    assert UpstreamClock.restore(2, clock.snapshot()) == clock


def test_control_kind_reads_the_header_and_ignores_others():
    assert control_kind(control_headers("end")) == "end"
    assert control_kind({"detector-control": b"tick"}) == "tick"
    assert control_kind([("other", b"end")]) is None
    assert control_kind([("detector-control", b"bogus")]) is None
    assert control_kind(None) is None


def test_a_new_run_forgets_what_an_upstream_said_before_it():
    clock = UpstreamClock(1)
    clock.start("raw:0", "run-1")
    clock.end("raw:0", "run-1")
    clock.complete()
    clock.saw("raw:0", 10**9)  # a tick of the first run's last records, after its end
    clock.start("raw:0", "run-2")
    assert clock.watermark() is None  # the second run's events may be older
    clock.saw("raw:0", 5)
    assert clock.watermark() == 5
