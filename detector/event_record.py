"""The flat record of a normalized event that rule matching reads, made in compiled code.

`Event.to_record` makes one for every event a normalized-event rule may match; as a
Python loop over the event's fields it cost more than the rules it was made for.
"""

from __future__ import annotations

from typing import Any


def event_record(
    values: dict[str, Any], attributes: list[tuple[str, str]], timestamp: str | None
) -> dict[str, Any]:
    """The non-null `values` (an event's fields by attribute) under their JSON keys, in
    the order of `attributes` ((JSON key, attribute) pairs), after `@timestamp` when
    `timestamp` is given. Nested values are not copied."""
    record: dict[str, Any] = {} if timestamp is None else {"@timestamp": timestamp}
    for key, name in attributes:
        value = values[name]
        if value is not None:
            record[key] = value
    return record
