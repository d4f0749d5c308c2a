"""The contract every source normalizer implements.

A normalizer is a plain object without I/O. Given one decoded record (a dict for JSON
sources, the line for text sources) it says whether the record is of its source and
turns it into an `Event`. Envelopes that carry several records (a Kubernetes
`EventList`, a registry `{"events": [...]}`, CloudTrail `{"Records": [...]}`) are
split by `unwrap` before detection.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from mypy_extensions import mypyc_attr

from detector.construct import unvalidated
from detector.events import Event, Outcome, UserType
from detector.timestamps import TimestampError, from_iso


@dataclass(frozen=True, slots=True)
class SourceRoute:
    """The Sigma logsource (product, service) of a source's raw records."""

    product: str
    service: str | None


class NormalizationError(ValueError):
    """The record is of this source but cannot be normalized; the message is the reason."""


# Compiled with the hot path; declared sources subclass it in interpreted code.
@mypyc_attr(allow_interpreted_subclasses=True)
class Normalizer:
    """Base class: override `matches` and `normalize`; `unwrap`/`parse_text` where needed."""

    #: the `event.source` value written on every event
    name: ClassVar[str]
    #: Sigma logsource (product, service) whose rules see this source's raw records
    product: ClassVar[str]
    service: ClassVar[str | None] = "audit"

    def unwrap(self, document: dict[str, Any]) -> Sequence[Any] | None:
        """The records inside `document` if it is an envelope of this source, else None."""
        return None

    def parse_text(self, line: str) -> dict[str, Any] | None:
        """A record decoded from a non-JSON line of this source, else None."""
        return None

    def matches(self, record: dict[str, Any]) -> bool:
        """True if `record` is of this source (checked in registry order)."""
        raise NotImplementedError

    def normalize(self, record: dict[str, Any]) -> Event:
        """The normalized event; raise `NormalizationError` with a reason if impossible."""
        raise NotImplementedError


def trusted_event(
    *,
    timestamp: datetime,
    event_id: str,
    event_source: str,
    raw: Any,
    event_action: str | None = None,
    event_category: list[str] | None = None,
    event_type: list[str] | None = None,
    event_outcome: Outcome | None = None,
    user_name: str | None = None,
    user_id: str | None = None,
    user_type: UserType | None = None,
    user_identity: str | None = None,
    source_ip: str | None = None,
    user_agent: str | None = None,
    repository: str | None = None,
    organization: str | None = None,
    namespace: str | None = None,
    resource_kind: str | None = None,
    resource_name: str | None = None,
    branch: str | None = None,
    image_name: str | None = None,
    image_digest: str | None = None,
    token_id: str | None = None,
) -> Event:
    """An `Event` from values a built-in normalizer made, without pydantic's validation
    (which took a fifth of a replay's instructions, more than parsing the record).

    Their values have the fields' types by construction (`text()`, fixed literals, parsed
    timestamps), and mypy holds them to the annotations here; `tests/normalize`
    re-validates every event they make. What their code cannot promise is still
    checked: a zoned timestamp (put in UTC), a non-empty id and source. Events of
    configuration-declared sources are validated as usual.
    """
    zone = timestamp.tzinfo
    if zone is None:
        raise ValueError("timestamp must carry a time zone")
    if not event_id or not event_source:
        raise ValueError("event.id and event.source must not be empty")
    if zone is not UTC:
        timestamp = timestamp.astimezone(UTC)
    values = {  # every field, in the model's order, as validation would give them
        "timestamp": timestamp,
        "event_id": event_id,
        "event_source": event_source,
        "event_action": event_action,
        "event_category": event_category,
        "event_type": event_type,
        "event_outcome": event_outcome,
        "user_name": user_name,
        "user_id": user_id,
        "user_type": user_type,
        "user_identity": user_identity,
        "source_ip": source_ip,
        "user_agent": user_agent,
        "repository": repository,
        "organization": organization,
        "namespace": namespace,
        "resource_kind": resource_kind,
        "resource_name": resource_name,
        "branch": branch,
        "image_name": image_name,
        "image_digest": image_digest,
        "token_id": token_id,
        "raw": raw,
    }
    return unvalidated(Event, values, set(_EVENT_FIELDS))


#: every field of `Event`: `trusted_event` gives each one
_EVENT_FIELDS = frozenset(Event.model_fields)


def first_time(
    record: dict[str, Any],
    fields: Sequence[str],
    parse: Callable[[Any], datetime] = from_iso,
) -> datetime:
    """The event time from the first of `fields` present in `record`.

    A present but unreadable value is an error, not a reason to fall back to the next
    field: falling back would silently move the event in time.
    """
    for field in fields:
        value = record.get(field)
        if value is None:
            continue
        try:
            return parse(value)
        except TimestampError as exc:
            raise NormalizationError(f"bad {field}: {exc}") from exc
    raise NormalizationError(f"no {' or '.join(fields)}")


def content_id(record: Any) -> str:
    """A stable event id for records without one: SHA-256 of the canonical JSON."""
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def text(value: Any) -> str | None:
    """A non-empty string form of a scalar (ints become text), else None."""
    if type(value) is str:  # most values: no conversion to make
        return value or None
    if value is None or isinstance(value, bool | dict | list):
        return None
    result = str(value)
    return result if result else None


def ip(value: Any) -> str | None:
    """The text of an IPv4 or IPv6 address, else None: `source.ip` is never a host name."""
    address = text(value)
    if address is None:
        return None
    if _IPV4.fullmatch(address) is None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
    return address


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: Plain dotted-quad IPv4, which `ipaddress` accepts too: the common case, checked
#: without its much slower parser (which still decides everything else).
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def dig(record: Any, *path: str) -> Any:
    """record[path[0]][path[1]]... or None where a step is missing or not a dict."""
    current = record
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current
