"""The unit every source hands to the pipeline: the bytes of one record and where it came from."""

from __future__ import annotations

from typing import NamedTuple


class RawRecord(NamedTuple):
    """One record as read. `origin` says where (for example `audit.jsonl:17`).

    A named tuple: a replay makes one per input line, and a tuple is made (and pickled
    to a worker process) in a fraction of a dataclass's time."""

    data: bytes
    origin: str
    #: the source name when the transport tells it (an HTTP route, a Kafka topic, --source)
    source: str | None = None
    #: set when the input broke off here (a corrupt gzip stream, a read error)
    error: str | None = None
