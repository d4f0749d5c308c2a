"""Event-time parsing shared by the normalizers."""

from __future__ import annotations

import pytest

from detector.events import format_timestamp
from detector.timestamps import TimestampError, from_any


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1741611463961, "2025-03-10T12:57:43.961000Z"),
        (1741611463, "2025-03-10T12:57:43.000000Z"),
        ("1741611463961", "2025-03-10T12:57:43.961000Z"),
        ("2016-03-09T14:44:26.402973972-08:00", "2016-03-09T22:44:26.402973Z"),
        ({"epochSecond": 1638035612, "nano": 654321999}, "2021-11-27T17:53:32.654321Z"),
    ],
)
def test_every_form_comes_out_utc_to_the_microsecond(value: object, expected: str) -> None:
    assert format_timestamp(from_any(value)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2025-01-01T00:00:00",
        "²",
        {"epochSecond": "1"},
        True,
        [1],
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_unreadable_times_are_timestamp_errors(value: object) -> None:
    with pytest.raises(TimestampError):
        from_any(value)
