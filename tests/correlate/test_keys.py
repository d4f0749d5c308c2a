"""Group keys, values and the normalized fields correlations read."""

from __future__ import annotations

from typing import Any

import pytest

from detector.correlate.keys import event_getter, key_text
from detector.events import FIELD_ATTRIBUTES
from detector.rules.fields import MISSING, compile_getter

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


def test_a_normalized_field_reads_as_in_the_events_json():
    events = [
        *_scenario(),
        make_event(0, "x", None, raw={"nested": {"list": [1, {"a": None}]}}, event_type=["start"]),
    ]
    names = [*FIELD_ATTRIBUTES, "raw.nested.list", "raw.nested", "raw.missing", "nothing"]
    names += ["user.name.first", "event.type.0"]
    for event in events:
        shape = event.to_dict()
        for name in names:
            assert event_getter(name)(event.__dict__) == compile_getter(name)(shape), name
