"""Event-time parsing shared by the normalizers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.timestamps import EPOCH, TimestampError, format_timestamp, from_any, from_epoch

#: the epoch milliseconds of the first and the last millisecond a datetime holds
FIRST_MS = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // timedelta(
    milliseconds=1
)


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


@given(st.integers(FIRST_MS, LAST_MS))
def test_epoch_milliseconds_are_the_instant_that_many_after_the_epoch(millis: int) -> None:
    got = from_epoch(millis, "ms")
    assert got == EPOCH + timedelta(milliseconds=millis)
    assert got.tzinfo is UTC


@pytest.mark.parametrize("millis", [FIRST_MS - 1, LAST_MS + 1, 10**30, -(10**30)])
def test_epoch_milliseconds_past_what_a_datetime_holds_are_timestamp_errors(millis: int) -> None:
    with pytest.raises(TimestampError, match="epoch milliseconds out of range"):
        from_epoch(millis, "ms")
