"""The unit every source hands to the pipeline: the bytes of one record and where it came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read. `origin` says where (for example `audit.jsonl:17`)."""

    data: bytes
    origin: str
    #: the source name when the transport tells it (an HTTP route, a Kafka topic, --source)
    source: str | None = None
    #: set when the input broke off here (a corrupt gzip stream, a read error)
    error: str | None = None
