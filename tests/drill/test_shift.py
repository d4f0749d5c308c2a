"""Shifting a recorded incident in time: every event of every shipped scenario moves by
exactly the shift, and time values keep their format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.drill.scenario import load_scenario
from detector.drill.shift import RecordShifter
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.records import RawRecord
from detector.timestamps import from_epoch, from_iso
from tests.e2e.test_replay_scenarios import SCENARIOS

SHIFT = timedelta(days=640, hours=5, seconds=17)


def stage() -> NormalizeStage:
    return NormalizeStage(build_registry(SourcesSettings()))


def events(normalize: NormalizeStage, data: bytes, source: str) -> list[Event]:
    results = normalize.process(RawRecord(data, "test", source))
    found = [item for item in results if isinstance(item, Event)]
    assert found, data[:200]
    return found


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_every_event_of_a_scenario_moves_by_exactly_the_shift(scenario: object) -> None:
    normalize = stage()
    loaded = load_scenario(scenario, normalize)  # type: ignore[arg-type]
    sources = {record.source for record in loaded.records}
    assert len(sources) >= 1
    for record in loaded.records:
        shifted = RecordShifter(record.source, SHIFT).shift(record.data)
        before = events(normalize, record.data, record.source)
        after = events(normalize, shifted, record.source)
        assert [e.timestamp + SHIFT for e in before] == [e.timestamp for e in after]
        # nothing else changes (content-hash ids aside, which include the time)
        fields = ("event_action", "user_name", "repository", "namespace", "source_ip")
        assert [[getattr(e, f) for f in fields] for e in before] == [
            [getattr(e, f) for f in fields] for e in after
        ]


def test_records_are_in_event_time_order_and_the_expected_detections_are_read() -> None:
    loaded = load_scenario(SCENARIOS[0], stage())
    times = [record.time for record in loaded.records]
    assert times == sorted(times)
    assert loaded.end == times[-1]
    assert (
        len(loaded.expected) == len((SCENARIOS[0] / "expected.jsonl").read_text().split("\n")) - 1
    )


moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
formats = st.sampled_from(
    ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d %H:%M:%S.%f+00:00",
     "%Y-%m-%dT%H:%M:%S+0000"]
)  # fmt: skip
shifts = st.timedeltas(min_value=timedelta(days=-3000), max_value=timedelta(days=3000)).map(
    lambda d: timedelta(seconds=int(d.total_seconds()))
)


@given(moments, formats, shifts)
def test_iso_text_keeps_its_format(moment: datetime, pattern: str, delta: timedelta) -> None:
    text = moment.strftime(pattern)
    shifted = RecordShifter("gitlab", delta).value(text)
    assert len(shifted) == len(text) and shifted[-1] == text[-1]
    assert from_iso(shifted) == from_iso(text) + delta


@given(moments, shifts)
def test_epoch_milliseconds_stay_milliseconds(moment: datetime, delta: timedelta) -> None:
    millis = int(moment.timestamp() * 1000)
    shifted = RecordShifter("github", delta).value(millis)
    assert isinstance(shifted, int)
    assert from_epoch(shifted, "ms") == from_epoch(millis, "ms") + delta


def test_a_jenkins_line_keeps_its_layout() -> None:
    line = b"Mar 3, 2025 12:03:00,000 AM job/payments-api/ #1188 Started by user bob"
    shifted = RecordShifter("jenkins", timedelta(hours=13, seconds=5)).shift(line)
    assert shifted == b"Mar 3, 2025 1:03:05,000 PM job/payments-api/ #1188 Started by user bob"
