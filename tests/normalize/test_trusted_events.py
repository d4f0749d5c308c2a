"""The built-in normalizers build events without pydantic's validation (`Event.trusted`):
every event they make must be one validation accepts unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.base import NormalizationError
from detector.normalize.builtin import build_registry
from detector.sources.files import read_paths
from tests.normalize.test_stage import K8S_EVENT
from tests.strategies import JSON_VALUES

ROOT = Path(__file__).resolve().parents[2]
STAGE = NormalizeStage(build_registry(SourcesSettings()))
#: every source's fixtures and the replay scenarios' logs
INPUTS = [ROOT / "tests" / "fixtures" / "sources", ROOT / "replay"]


def assert_valid(event: Event) -> None:
    validated = Event(**event.__dict__)
    assert validated.__dict__ == event.__dict__
    assert [type(v) for v in validated.__dict__.values()] == [
        type(v) for v in event.__dict__.values()
    ]
    assert validated.to_json() == event.to_json()


def normalized(paths: list[Path]) -> list[Event]:
    records = STAGE.join_continuation_lines(read_paths([str(p) for p in paths]))
    return [result for raw in records for result in STAGE.process(raw) if isinstance(result, Event)]


def test_every_fixture_event_is_what_validation_would_make() -> None:
    events = normalized(INPUTS)
    assert {event.event_source for event in events} >= {
        "github",
        "gitlab",
        "kubernetes",
        "github_actions",
        "jenkins",
        "registry",
        "cloudtrail",
    }
    for event in events:
        assert_valid(event)


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(sorted(K8S_EVENT)), JSON_VALUES, max_size=4))
def test_events_from_odd_values_are_what_validation_would_make(changes: dict[str, Any]) -> None:
    record = {**K8S_EVENT, **changes}
    normalizer = STAGE.registry.by_name["kubernetes"]
    try:
        event = normalizer.normalize(record)
    except NormalizationError:  # a refusal is the normalizer's business, not this test's
        return
    assert_valid(event)


def test_trusted_refuses_what_validation_would() -> None:
    good = dict(normalized([ROOT / "tests" / "fixtures" / "sources" / "kubernetes"])[0].__dict__)
    with pytest.raises(ValueError, match="time zone"):
        Event.trusted(**{**good, "timestamp": good["timestamp"].replace(tzinfo=None)})
    with pytest.raises(ValueError, match="empty"):
        Event.trusted(**{**good, "event_id": ""})
    with pytest.raises(TypeError, match="no field"):
        Event.trusted(**good, colour="red")
