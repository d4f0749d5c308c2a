"""The event behind a single-event detection travels in its record's header."""

from __future__ import annotations

from detector.events import Event
from detector.runtime.kafka.alerts import EVENT_HEADER, event_headers, event_of
from detector.runtime.kafka.control import control_headers


def _event() -> Event:
    return Event.model_validate(
        {
            "event.id": "e-1",
            "event.source": "github",
            "event.action": "protected_branch.destroy",
            "@timestamp": "2025-03-03T00:37:45Z",
            "organization": "octo-org",
            "user.name": "ivan-sre",
            "raw": {"token": "ghp_" + "a" * 36, "action": "protected_branch.destroy"},
        }
    )


def test_the_event_comes_back_from_the_header_with_its_secrets_redacted() -> None:
    event = _event()
    back = event_of([*control_headers("noop"), *event_headers(event)])
    assert back is not None
    assert back.organization == "octo-org"
    assert back.user_name == "ivan-sre"
    assert back.event_id == event.event_id
    assert "a" * 36 not in back.raw["token"]


def test_no_header_or_a_broken_one_gives_no_event() -> None:
    assert event_of(None) is None
    assert event_of(control_headers("end")) is None
    assert event_of({EVENT_HEADER: b"{not json"}) is None
