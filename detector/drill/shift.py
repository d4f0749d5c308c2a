"""Moving a recorded incident in time: every field a normalizer reads the event time from
is shifted by the same amount, written back in the format it had (epoch milliseconds stay
milliseconds, ISO text keeps its separator, fraction digits and zone, Jenkins dates stay
`MMM d, yyyy h:mm:ss,SSS aa`), so the service reads the shifted record exactly as it
would read the vendor's own.

`TIME_KEYS` follows the normalizers (`detector/normalize/<source>.py`: `first_time` and
the `_timestamp`/`_event_time` helpers); the keys are shifted at any depth, which covers
envelopes (`items`, `events`, `Records`) and the nested `workflow_job`/`workflow_run`.
tests/drill/test_shift.py checks on every shipped scenario that each normalized event
moves by exactly the shift.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import orjson

from detector.timestamps import from_iso

#: the keys each source's normalizer reads the event time from
TIME_KEYS: dict[str, frozenset[str]] = {
    "github": frozenset({"@timestamp", "created_at"}),
    "gitlab": frozenset({"created_at", "time"}),
    "kubernetes": frozenset({"stageTimestamp", "requestReceivedTimestamp"}),
    "github_actions": frozenset({"created_at", "started_at", "completed_at", "updated_at"}),
    "jenkins": frozenset({"@timestamp", "date"}),
    "registry": frozenset({"timestamp", "occur_at"}),
    "cloudtrail": frozenset({"eventTime"}),
}

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?P<sep>[T ])(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:?\d{2})?"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Jenkins' `MMM d, yyyy h:mm:ss,SSS aa` (the audit trail's log-file lines and `date`)
_JENKINS_DATE = re.compile(
    rf"(?P<month>{'|'.join(_MONTHS)}) (?P<day>\d{{1,2}}), (?P<year>\d{{4}}) "
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2}),(?P<millis>\d{3}) (?P<half>AM|PM)"
)
#: epoch values above this are milliseconds (year 5138 in seconds, 1973 in milliseconds)
_MILLIS_FROM = 100_000_000_000


class RecordShifter:
    """Shifts the records of one source by `delta` (whole seconds); `local` is the
    zone of times written without one (Jenkins' configured zone)."""

    def __init__(self, source: str, delta: timedelta, local: tzinfo = UTC) -> None:
        self.keys = TIME_KEYS.get(source, frozenset())
        self.delta = delta
        self.local = local

    def shift(self, data: bytes) -> bytes:
        """The record `data` (JSON, or a Jenkins text line) with its times shifted."""
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            match = _JENKINS_DATE.match(data.decode("utf-8", "surrogateescape"))
            if match is None:
                return data
            date = match.group()
            shifted = _jenkins_date(_read_jenkins(match, self.local) + self.delta, self.local)
            return shifted.encode() + data[len(date.encode()) :]
        result: bytes = orjson.dumps(self._walk(record))
        return result

    def _walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: self.value(item) if key in self.keys else self._walk(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        return value

    def value(self, value: Any) -> Any:
        """One time value, shifted in its own format; anything else unchanged."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return value
        if isinstance(value, int | float):
            if abs(value) >= _MILLIS_FROM:
                return value + type(value)(self.delta // timedelta(milliseconds=1))
            return value + type(value)(self.delta.total_seconds())
        date = _JENKINS_DATE.fullmatch(value)
        if date is not None:
            return _jenkins_date(_read_jenkins(date, self.local) + self.delta, self.local)
        match = _ISO.fullmatch(value)
        if match is None:
            return value
        return _iso(from_iso(value, self.local) + self.delta, match, self.local)


def _iso(when: datetime, written: re.Match[str], local: tzinfo) -> str:
    """`when` written the way `written` was."""
    zone = written["zone"]
    if zone is None:
        moved, suffix = when.astimezone(local), ""
    elif zone == "Z":
        moved, suffix = when.astimezone(UTC), "Z"
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moved, suffix = when.astimezone(timezone(sign * offset)), zone
    text = moved.strftime(f"%Y-%m-%d{written['sep']}%H:%M:%S")
    fraction = written["fraction"]
    if fraction:
        text += "." + f"{moved.microsecond:06d}"[: len(fraction)].ljust(len(fraction), "0")
    return text + suffix


def _read_jenkins(date: re.Match[str], local: tzinfo) -> datetime:
    hour = int(date["hour"]) % 12 + (12 if date["half"] == "PM" else 0)
    moment = datetime(
        int(date["year"]),
        _MONTHS.index(date["month"]) + 1,
        int(date["day"]),
        hour,
        int(date["minute"]),
        int(date["second"]),
        int(date["millis"]) * 1000,
        tzinfo=local,
    )
    return moment.astimezone(UTC)


def _jenkins_date(when: datetime, local: tzinfo) -> str:
    moment = when.astimezone(local)
    hour = moment.hour % 12 or 12
    half = "PM" if moment.hour >= 12 else "AM"
    return (
        f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year} {hour}:{moment.minute:02d}:"
        f"{moment.second:02d},{moment.microsecond // 1000:03d} {half}"
    )
