"""Group keys and aggregated values, read from the record a referenced rule matched.

A group key is the text of each group-by field. Strings compare case-insensitively (as
Sigma matches values, and as pySigma's SQL backends group), numbers by their text,
anything else by its canonical JSON. A field that is missing, null, an empty string or
an empty list gives no key: such an event joins no group of that correlation, because a
shared "unknown" group would merge unrelated events (every failed login without a user
name would count towards one brute force). Key texts and distinct values are interned:
one string per user name or repository, however many groups and windows hold it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from sys import intern
from typing import Any, Final

import orjson

from detector.events import FIELD_ATTRIBUTES, Event, format_timestamp
from detector.rules.fields import MISSING, Getter, as_number, text_of

from .windows import Key, Value

_JSON: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class EventRecord(Mapping[str, Any]):
    """`event.to_dict()` as a read-only view (dotted keys, absent values left out),
    without serializing the event: the record `product: cicd` rules see, read on every
    event a correlation uses. It reads the model's dict: an attribute read of a pydantic
    model goes through its `__getattr__` hook."""

    __slots__ = ("_values",)

    def __init__(self, event: Event) -> None:
        self._values: dict[str, Any] = event.__dict__

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        for key in FIELD_ATTRIBUTES:
            if key in self:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        name = FIELD_ATTRIBUTES.get(key) if isinstance(key, str) else None
        return name is not None and self._values[name] is not None

    def _value(self, key: str) -> Any:
        """The field's value as `to_dict` writes it; None where it has none."""
        name = FIELD_ATTRIBUTES.get(key)
        if name is None:
            return None
        value = self._values[name]
        if value is not None and name == "timestamp":
            return format_timestamp(value)
        return value


def key_text(value: Any) -> str | None:
    """The comparable text of a value, or None when the value says nothing."""
    if type(value) is str:  # most values
        string: str = value
        return string.lower() if string else None
    if value is MISSING or value is None or (isinstance(value, list) and not value):
        return None
    text = text_of(value)
    if text is not None:
        return text
    return orjson.dumps(value, option=_JSON, default=str).decode().lower()


def group_key(getters: Sequence[Getter], record: Mapping[str, Any]) -> Key | None:
    """The group of `record`, or None if a group-by field has no value."""
    if len(getters) == 1:
        text = key_text(getters[0](record))
        return None if text is None else (intern(text),)
    parts = []
    for getter in getters:
        text = key_text(getter(record))
        if text is None:
            return None
        parts.append(intern(text))
    return tuple(parts)


def distinct_value(getters: Sequence[Getter], record: Mapping[str, Any]) -> str | None:
    """The value counted as distinct (several fields: their texts together), or None."""
    key = group_key(getters, record)
    if key is None:
        return None
    return key[0] if len(key) == 1 else intern(orjson.dumps(list(key)).decode())


def number(getters: Sequence[Getter], record: Mapping[str, Any]) -> Value:
    """The finite number in the (single) value field, or None."""
    found = as_number(getters[0](record))
    return found if found is not None and math.isfinite(found) else None
