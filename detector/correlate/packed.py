"""Evidence kept as bytes while a group waits for its detection.

A live group holds the evidence of every event in its window, and most of it is never
emitted. As tuples each event cost ~400 bytes (a tuple per piece of evidence and one
around them, an int per time, a string per field) and added containers for the cyclic
garbage collector to scan. Packed (as JSON), the same evidence is ~100 bytes in a bytes or
bytearray object, which the collector skips; it is unpacked only when a detection is
made or a checkpoint written. The bytes never leave the process (checkpoints keep plain
data), so their layout is free to change.

Two shapes: a *stamp* is one `pack(time, evs)` bytes object (a value of a dict keyed by
distinct value or chain); a *log* is a bytearray of (time, tag, evidence) records in
time order, cut from the front as the window moves (`append`, `drop_before`,
`entries`).
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson

#: one piece of evidence: event id, time (µs), source, action, actor, and the values of
#: the fields the correlation carries for the correlations that reference it
Ev = tuple[str, int, str, str | None, str | None, tuple[str | None, ...]]
Evs = tuple[Ev, ...]

_TIME: Final = struct.Struct("<q")
#: a log record's header: time, then the sizes of the marshalled tag and of the evidence
_RECORD: Final = struct.Struct("<qHI")
_MARSHAL_VERSION: Final = 4
_JSON_ARRAY: Final = b"["[0]
_NO_TAG: Final = marshal.dumps(None, _MARSHAL_VERSION)


def pack(time: int, evs: Evs) -> bytes:
    """`evs` stamped with `time` (µs)."""
    return _TIME.pack(time) + _encode(evs)


def time_of(stamp: bytes) -> int:
    return int(_TIME.unpack_from(stamp)[0])


def evs_of(stamp: bytes) -> Evs:
    return _decode(stamp[_TIME.size :])


def append(log: bytearray, time: int, tag: Any, evs: Evs) -> None:
    """Add a record at the end of `log` (times must not decrease); `tag` is a small value
    read without unpacking the evidence (a weight)."""
    head = _NO_TAG if tag is None else marshal.dumps(tag, _MARSHAL_VERSION)
    data = _encode(evs)
    log += _RECORD.pack(time, len(head), len(data)) + head + data


def drop_before(log: bytearray, oldest: int) -> list[Any]:
    """Cut the records stamped before `oldest` off the front of `log`; their tags, oldest
    first."""
    if not log or _TIME.unpack_from(log)[0] >= oldest:
        return []  # the common case: nothing to drop
    offset, end, dropped = 0, len(log), []
    while offset < end:
        time, head, size = _RECORD.unpack_from(log, offset)
        if time >= oldest:
            break
        start = offset + _RECORD.size
        dropped.append(marshal.loads(log[start : start + head]))
        offset = start + head + size
    del log[:offset]
    return dropped


def entries(log: bytes | bytearray) -> Iterator[tuple[int, Any, Evs]]:
    """(time, tag, evidence) of each record, oldest first."""
    offset, end = 0, len(log)
    while offset < end:
        time, head, size = _RECORD.unpack_from(log, offset)
        start = offset + _RECORD.size
        middle = start + head
        offset = middle + size
        yield time, marshal.loads(log[start:middle]), _decode(log[middle:offset])


def load_evs(data: Iterable[Sequence[Any]]) -> Evs:
    """Evidence from JSON (a checkpoint, a Kafka record), where tuples became arrays."""
    return tuple((ev[0], ev[1], ev[2], ev[3], ev[4], tuple(ev[5])) for ev in data)


def _encode(evs: Evs) -> bytes:
    """JSON (orjson is ~4x faster than marshal); marshal for what JSON cannot hold
    exactly (a string with a lone surrogate)."""
    try:
        return orjson.dumps(evs)
    except orjson.JSONEncodeError:
        return marshal.dumps(evs, _MARSHAL_VERSION)


def _decode(data: bytes | bytearray) -> Evs:
    if data[0] == _JSON_ARRAY:  # marshal never starts with "["
        return load_evs(orjson.loads(data))
    result: Evs = marshal.loads(data)
    return result
