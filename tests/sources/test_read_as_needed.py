"""Inputs are read as the replay needs them, never to their end first: a month of logs
must not have to fit in memory, and a stream (stdin, an index read back) may not end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from detector.config import SourcesSettings
from detector.deadletter import DeadLetterFile
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.parallel import file_tasks
from detector.pipeline import RunCounts, normalized_events
from detector.sources.records import RawRecord

STAGE = NormalizeStage(build_registry(SourcesSettings()))


def audit_line(number: int) -> bytes:
    return orjson.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "auditID": f"id-{number}",
            "stage": "ResponseComplete",
            "verb": "get",
            "user": {"username": "system:serviceaccount:kube-system:controller"},
            "objectRef": {"resource": "pods", "namespace": "default"},
            "requestReceivedTimestamp": "2025-03-04T06:26:00.000000Z",
            "stageTimestamp": "2025-03-04T06:26:00.000000Z",
        }
    )


def test_the_first_worker_task_comes_before_the_file_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"\n".join(audit_line(n) for n in range(40_000)) + b"\n")
    size = path.stat().st_size
    assert size > 8 << 20  # eight blocks of a worker's task
    read: list[int] = []
    tasks = file_tasks(str(path), STAGE, read.append)
    next(tasks)
    assert sum(read) < size / 2


def test_an_unending_stream_of_records_gives_its_first_event_at_once(tmp_path: Path) -> None:
    pulled = 0

    def records() -> Iterator[RawRecord]:
        nonlocal pulled
        for number in range(100_000):
            pulled += 1
            yield RawRecord(audit_line(number), f"stdin:{number + 1}")

    with DeadLetterFile(tmp_path / "dead.jsonl") as letters:
        events = normalized_events([], STAGE, letters, RunCounts(), records=records())
        first = next(events)
    assert first.event_id == "id-0:ResponseComplete"
    assert pulled < 100
