"""Event time: parsing shared by the normalizers (every result is an aware UTC datetime),
and the one text form the engine writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Final

from detector.memo import remember

# Epoch values above this are milliseconds, not seconds (year 5138 in seconds).
_EPOCH_MS_THRESHOLD: Final = 100_000_000_000
#: The Unix epoch, in UTC.
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: UTC and the ISO parser as Final names: compiled, they are C statics, where the imported
#: names would be looked up in the module's dict on every call
_UTC: Final = UTC
_FROM_ISO: Final = datetime.fromisoformat
_EPOCH_ORDINAL: Final = EPOCH.toordinal()
_MS_PER_DAY: Final = 86_400_000
#: (year, month, day) of days since the epoch: a stream's events fall on a few days
_DATES: Final[dict[int, tuple[int, int, int]]] = {}
_DATES_LIMIT: Final = 4096


class TimestampError(ValueError):
    """A value that cannot be read as a point in time."""


def from_epoch(value: Any, unit: str = "auto") -> datetime:
    """Epoch seconds or milliseconds (`unit` = "s", "ms" or "auto" by magnitude) to UTC."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TimestampError(f"expected an epoch number, got {type(value).__name__}")
    if unit == "auto":
        unit = "ms" if abs(value) >= _EPOCH_MS_THRESHOLD else "s"
    if unit == "ms":
        if isinstance(value, int):
            return _from_epoch_ms(value)
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TimestampError(f"epoch value out of range: {value}") from exc


def _from_epoch_ms(value: int) -> datetime:
    """Integer milliseconds, exact (floats would round). Every GitHub event has one: the
    day's date is remembered and the time of day is integer arithmetic. Compiled, a
    `timedelta` added to the epoch cost half again as much (its constructor computes in
    Python integers), `fromtimestamp` with a zone fifteen times as much."""
    days = value // _MS_PER_DAY
    of_day = value % _MS_PER_DAY
    ymd = _DATES.get(days)
    if ymd is None:
        try:
            day = date.fromordinal(_EPOCH_ORDINAL + days)
        except (OverflowError, ValueError) as exc:
            raise TimestampError(f"epoch milliseconds out of range: {value}") from exc
        ymd = remember(_DATES, days, (day.year, day.month, day.day), _DATES_LIMIT)
    seconds = of_day // 1000
    return datetime(
        ymd[0],
        ymd[1],
        ymd[2],
        seconds // 3600,
        seconds // 60 % 60,
        seconds % 60,
        of_day % 1000 * 1000,
        _UTC,
    )


def from_iso(value: Any, default_tz: tzinfo | None = None) -> datetime:
    """ISO 8601 / RFC 3339 text to UTC. Digits past microseconds are truncated.

    A string without an offset is read in `default_tz`; without one it is an error,
    because guessing a zone would silently shift event time.
    """
    if not isinstance(value, str):
        raise TimestampError(f"expected an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    try:
        parsed = _FROM_ISO(text)
    except ValueError as exc:
        raise TimestampError(f"not an ISO 8601 time: {value!r}") from exc
    zone = parsed.tzinfo
    if zone is _UTC:  # the common case; `astimezone` would return it, at a cost
        return parsed
    if zone is None:
        if default_tz is None:
            raise TimestampError(f"time has no zone: {value!r}")
        parsed = parsed.replace(tzinfo=default_tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise TimestampError(f"time out of range in UTC: {value!r}") from exc


def from_any(value: Any, default_tz: tzinfo | None = None) -> datetime:
    """Epoch number (s or ms by magnitude), ISO text, numeric text, or a Java `Instant`
    object `{"epochSecond": s, "nano": n}` (as Bitbucket's audit log writes it)."""
    if isinstance(value, dict) and "epochSecond" in value:
        seconds, nanos = value.get("epochSecond"), value.get("nano", 0)
        if not (isinstance(seconds, int) and isinstance(nanos, int)) or isinstance(seconds, bool):
            raise TimestampError(f"bad epochSecond/nano object: {value!r}")
        return from_epoch(seconds, "s") + timedelta(microseconds=nanos // 1000)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isascii() and stripped.lstrip("-").replace(".", "", 1).isdigit():
            number = float(stripped) if "." in stripped else int(stripped)
            return from_epoch(number)
        return from_iso(stripped, default_tz)
    return from_epoch(value)


#: the time formatted last and its text: a single-event detection's time is its
#: evidence's, the same object, so writing the detection formats it once
_last_formatted: tuple[datetime | None, str] = (None, "")


def format_timestamp(value: datetime) -> str:
    """UTC, always six fractional digits, `Z` suffix: sortable as a string."""
    global _last_formatted
    last = _last_formatted
    if value is last[0]:
        return last[1]
    utc = value if value.tzinfo is _UTC else value.astimezone(_UTC)
    if utc.year < 1000:  # `isoformat` pads the year to four digits, `%Y` does not
        text = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        # `isoformat` is a third of `strftime`'s cost (its arguments by position, a
        # sixth less than by keyword); "+00:00" becomes "Z"
        text = utc.isoformat("T", "microseconds")[:-6] + "Z"
    _last_formatted = (value, text)
    return text
