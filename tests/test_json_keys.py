"""Field names as orjson's key objects: equal to the name always, and the very object
records carry while orjson's key cache holds it."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from detector.json_keys import parsed_key


@given(st.text())
def test_a_parsed_key_equals_its_name(name: str) -> None:
    key = parsed_key(name)
    assert key == name
    assert type(key) is str


def test_a_parsed_key_is_the_object_records_carry() -> None:
    key = parsed_key("objectRef")
    record = orjson.loads(b'{"kind": "Event", "objectRef": {"resource": "pods"}}')
    (carried,) = (name for name in record if name == "objectRef")
    assert carried is key
