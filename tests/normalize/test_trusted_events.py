"""The built-in normalizers build events without pydantic's validation (`trusted_event`):
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
from detector.normalize.base import NormalizationError, trusted_event
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
        trusted_event(**{**good, "timestamp": good["timestamp"].replace(tzinfo=None)})
    with pytest.raises(ValueError, match="empty"):
        trusted_event(**{**good, "event_id": ""})
    with pytest.raises(TypeError):
        trusted_event(**good, colour="red")


def test_a_trusted_event_holds_every_field_in_the_models_order() -> None:
    """What validation makes: each field once, in order, so `to_record`, equality and
    the JSON shape cannot tell the two apart."""
    good = normalized([ROOT / "tests" / "fixtures" / "sources" / "kubernetes"])[0]
    event = trusted_event(**good.__dict__)
    assert list(event.__dict__) == list(Event.model_fields)
    assert event == good
    assert event.model_fields_set == set(Event.model_fields)
