"""Group keys and aggregated values, read from the record a referenced rule matched (a
normalized event's fields by `event_getter`).

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
from collections.abc import Mapping
from sys import intern
from typing import TYPE_CHECKING, Any, Final

import orjson

from detector.events import FIELD_ATTRIBUTES, record_of_values
from detector.rules.fields import MISSING, Getter, as_number, compile_getter, text_of
from detector.timestamps import format_timestamp

if TYPE_CHECKING:  # windows reads the correlation model, which reads this module
    from .windows import Key, Value

_JSON: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def event_getter(name: str) -> Getter:
    """Reads field `name` of a normalized event from its attribute values (`event.__dict__`)
    as `compile_getter(name)` reads the event's JSON shape (`Event.to_dict`): MISSING
    where the event has no value. Correlations read fields of every event they use,
    without making its record for that."""
    attribute = FIELD_ATTRIBUTES.get(name)
    if attribute == "timestamp":

        def get_time(values: Mapping[str, Any]) -> Any:
            return format_timestamp(values["timestamp"])

        return get_time
    if attribute is not None:
        field_name: str = attribute

        def get_attribute(values: Mapping[str, Any]) -> Any:
            value = values[field_name]
            return MISSING if value is None else value

        return get_attribute
    # a path into a field's value (`raw.actor`), or no field at all: read in the record
    getter = compile_getter(name)

    def get_in_record(values: Mapping[str, Any]) -> Any:
        return getter(record_of_values(values if isinstance(values, dict) else dict(values)))

    return get_in_record


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


def group_key(getters: tuple[Getter, ...], record: Mapping[str, Any]) -> Key | None:
    """The group of `record`, or None if a group-by field has no value. (`getters` is a
    slot's tuple: compiled, read without the generic sequence protocol.)"""
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


def distinct_value(getters: tuple[Getter, ...], record: Mapping[str, Any]) -> str | None:
    """The value counted as distinct (several fields: their texts together), or None."""
    key = group_key(getters, record)
    if key is None:
        return None
    return key[0] if len(key) == 1 else intern(orjson.dumps(list(key)).decode())


def number(getters: tuple[Getter, ...], record: Mapping[str, Any]) -> Value:
    """The finite number in the (single) value field, or None."""
    found = as_number(getters[0](record))
    return found if found is not None and math.isfinite(found) else None
