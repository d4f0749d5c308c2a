"""Group keys, values and the normalized record correlations read."""

from __future__ import annotations

from typing import Any

import pytest

from detector.correlate.keys import EventRecord, key_text
from detector.rules.fields import MISSING

from .conftest import make_event
from .test_cross_source import _scenario


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Alice", "alice"),
        (200, "200"),
        (2.5, "2.5"),
        (True, "true"),
        (["B", 1], '["b",1]'),
        ({"b": 1, "a": "X"}, '{"a":"x","b":1}'),
        ("", None),
        ([], None),
        (None, None),
        (MISSING, None),
    ],
)
def test_key_text(value: Any, text: str | None):
    assert key_text(value) == text


def test_the_event_record_is_the_event_as_json():
    events = [
        *_scenario(),
        make_event(0, "x", None, raw={"nested": {"list": [1, {"a": None}]}}, event_type=["start"]),
    ]
    for event in events:
        record = EventRecord(event)
        assert dict(record) == event.to_dict()
        assert record.get("user.name", "none") == event.to_dict().get("user.name", "none")
        assert "nothing" not in record
