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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import orjson
from mypy_extensions import mypyc_attr

from detector.construct import unvalidated
from detector.events import Event, Outcome, UserType
from detector.memo import remember_text
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
    if zone is not _UTC:
        timestamp = timestamp.astimezone(_UTC)
    values = _UNSET.copy()  # every field, in the model's order: copied, not built
    values["timestamp"] = timestamp
    values["event_id"] = event_id
    values["event_source"] = event_source
    if event_action is not None:
        values["event_action"] = event_action
    if event_category is not None:
        values["event_category"] = event_category
    if event_type is not None:
        values["event_type"] = event_type
    if event_outcome is not None:
        values["event_outcome"] = event_outcome
    if user_name is not None:
        values["user_name"] = user_name
    if user_id is not None:
        values["user_id"] = user_id
    if user_type is not None:
        values["user_type"] = user_type
    if user_identity is not None:
        values["user_identity"] = user_identity
    if source_ip is not None:
        values["source_ip"] = source_ip
    if user_agent is not None:
        values["user_agent"] = user_agent
    if repository is not None:
        values["repository"] = repository
    if organization is not None:
        values["organization"] = organization
    if namespace is not None:
        values["namespace"] = namespace
    if resource_kind is not None:
        values["resource_kind"] = resource_kind
    if resource_name is not None:
        values["resource_name"] = resource_name
    if branch is not None:
        values["branch"] = branch
    if image_name is not None:
        values["image_name"] = image_name
    if image_digest is not None:
        values["image_digest"] = image_digest
    if token_id is not None:
        values["token_id"] = token_id
    values["raw"] = raw
    return unvalidated(_EVENT, values, _EVENT_FIELDS)


#: every field of `Event`, None, in the model's order: what `trusted_event` starts from
_UNSET: Final[dict[str, Any]] = dict.fromkeys(Event.model_fields)
#: the fields set of every event `trusted_event` makes: all of them. One set shared by
#: all: pydantic only ever adds to it, and adding a field name it holds changes nothing.
_EVENT_FIELDS: Final = set(Event.model_fields)
#: `Event` and `UTC` as Final names: compiled, C statics instead of a look-up in the
#: module's dict on every event
_EVENT: Final = Event
_UTC: Final = UTC


def first_time(
    record: dict[str, Any],
    fields: tuple[str, ...],
    parse: Callable[[Any], datetime] | None = None,
) -> datetime:
    """The event time from the first of `fields` present in `record`, read by `parse`
    (ISO 8601 text without one: called directly, which compiled is a native call).
    `fields` is a tuple: compiled, it is walked without an iterator object.

    A present but unreadable value is an error, not a reason to fall back to the next
    field: falling back would silently move the event in time.
    """
    for field in fields:
        value = record.get(field)
        if value is None:
            continue
        try:
            return from_iso(value) if parse is None else parse(value)
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
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    result = str(value)
    return result if result else None


def ip(value: Any) -> str | None:
    """The text of an IPv4 or IPv6 address, else None: `source.ip` is never a host name."""
    address = text(value)
    if address is None:
        return None
    valid = _CHECKED.get(address)
    if valid is None:
        valid = remember_text(_CHECKED, address, _is_address(address), _REMEMBERED)
    return address if valid else None


#: texts `_is_address` was asked about, and its answer: a cluster's and an organization's
#: clients are few and repeat (nodes, pods, offices), and checking a text took 1-3 µs
_CHECKED: Final[dict[str, bool]] = {}
_REMEMBERED: Final = 4096


def _is_address(text: str) -> bool:
    if _dotted_quad(text):
        return True
    if ":" not in text:  # not IPv6, and `ipaddress` takes IPv4 only dotted: a name
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _dotted_quad(text: str) -> bool:
    """Plain dotted-quad IPv4, which `ipaddress` accepts too: the common case, checked
    character by character without its much slower parser (which still decides
    everything else). Four ASCII numbers up to 255, no leading zero."""
    if not text.isascii():
        return False
    data = text.encode()  # compiled, indexing bytes gives integers without a str each
    dots = 0
    digits = 0
    value = 0
    for index in range(len(data)):
        code = data[index]
        if code == 46:  # "."
            if digits == 0 or dots == 3:
                return False
            dots += 1
            digits = 0
            value = 0
        elif 48 <= code <= 57:  # "0" to "9"
            if digits == 1 and value == 0:
                return False
            value = value * 10 + code - 48
            digits += 1
            if value > 255:
                return False
        else:
            return False
    return dots == 3 and digits > 0


def dig(record: Any, *path: str) -> Any:
    """record[path[0]][path[1]]... or None where a step is missing or not a dict."""
    current = record
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current
