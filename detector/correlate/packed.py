"""Evidence kept as bytes while a group waits for its detection.

A live group holds the evidence of every event in its window, and most of it is never
emitted. As tuples each event cost ~400 bytes (a tuple per piece of evidence and one
around them, an int per time, a string per field) and added containers for the cyclic
garbage collector to scan. Marshalled, the same evidence is ~100 bytes in a bytes or
bytearray object, which the collector skips; it is unpacked only when a detection is
made or a checkpoint written. `marshal` is exact for what evidence is made of (str, int,
float, None, tuples) and its bytes never leave the process: checkpoints keep plain data.

Two shapes: a *stamp* is one `pack(time, payload)` bytes object (a value of a dict keyed
by distinct value or chain); a *log* is a bytearray of (time, tag, payload) records in
time order, cut from the front as the window moves (`append`, `drop_before`, `tags`,
`entries`).
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Iterator
from typing import Any

_VERSION = 4
_TIME = struct.Struct("<q")
#: a log record's header: time, then the sizes of the marshalled tag and payload
_RECORD = struct.Struct("<qHI")


def pack(time: int, payload: Any) -> bytes:
    """`payload` stamped with `time` (µs)."""
    return _TIME.pack(time) + marshal.dumps(payload, _VERSION)


def time_of(stamp: bytes) -> int:
    return int(_TIME.unpack_from(stamp)[0])


def payload_of(stamp: bytes) -> Any:
    return marshal.loads(stamp[_TIME.size :])


def append(log: bytearray, time: int, tag: Any, payload: Any) -> None:
    """Add a record at the end of `log` (times must not decrease); `tag` is a small value
    read without unpacking the payload (a weight)."""
    head = marshal.dumps(tag, _VERSION)
    data = marshal.dumps(payload, _VERSION)
    log += _RECORD.pack(time, len(head), len(data))
    log += head
    log += data


def drop_before(log: bytearray, oldest: int) -> bytes:
    """Cut the records stamped before `oldest` off the front of `log` and return them
    (a log of their own)."""
    offset, end = 0, len(log)
    while offset < end:
        time, head, size = _RECORD.unpack_from(log, offset)
        if time >= oldest:
            break
        offset += _RECORD.size + head + size
    if not offset:
        return b""
    gone = bytes(log[:offset])
    del log[:offset]
    return gone


def tags(log: bytes | bytearray) -> Iterator[Any]:
    """The tag of each record, oldest first, without unpacking the payloads."""
    offset, end = 0, len(log)
    while offset < end:
        _, head, size = _RECORD.unpack_from(log, offset)
        start = offset + _RECORD.size
        offset = start + head + size
        yield marshal.loads(log[start : start + head])


def entries(log: bytes | bytearray) -> Iterator[tuple[int, Any, Any]]:
    """(time, tag, payload) of each record, oldest first."""
    offset, end = 0, len(log)
    while offset < end:
        time, head, size = _RECORD.unpack_from(log, offset)
        start = offset + _RECORD.size
        middle = start + head
        offset = middle + size
        yield time, marshal.loads(log[start:middle]), marshal.loads(log[middle:offset])
