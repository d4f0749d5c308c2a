"""The Elasticsearch/OpenSearch sink against real nodes: one document per detection
whatever the redeliveries, and a bad document dead-lettered while the rest are indexed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.detections import Detection, RuleRef
from detector.events import Event
from detector.search.connection import SearchConnection
from detector.single_event import single_event_detection
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.factory import build_sink
from detector.sinks.metrics import SinkMetrics
from detector.sinks.search import SearchSink
from detector.sinks.settings import RetryPolicy, SearchOutput
from tests.search_engines import Engine

pytestmark = pytest.mark.siem

RULE = RuleRef(
    id="5f0e4f55-7f0b-4a4e-9d1e-3c3b7a1d2e01",
    title="Repository destroyed",
    level="high",
    tags=["attack.impact", "attack.t1485"],
)
FAST = RetryPolicy(base=0.01, cap=0.05, deadline=60, timeout=30)
START = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def detection(n: int, when: datetime | None = None) -> Detection:
    event = Event(
        timestamp=when or START + timedelta(minutes=n),
        event_id=f"evt-{n}",
        event_source="github",
        event_action="repo.destroy",
        user_name="mallory",
        repository=f"acme/api-{n}",
        raw={},
    )
    return single_event_detection(RULE, event)


def connection(engine: Engine) -> SearchConnection:
    return SearchConnection(kind=engine.kind, hosts=[engine.url])  # type: ignore[arg-type, list-item]


def documents(engine: Engine, stream: str) -> list[dict[str, Any]]:
    client = connection(engine).client()
    client.indices.refresh(index=stream)
    found = client.search(index=stream, body={"size": 1000, "sort": [{"@timestamp": "asc"}]})
    return [hit["_source"] | {"_id": hit["_id"]} for hit in found["hits"]["hits"]]


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def deliver(sink: SearchSink, directory: Path, batch: list[Detection]) -> DeliveryWorker:
    worker = DeliveryWorker(sink, directory, FAST, SinkMetrics(CollectorRegistry()), 3600)
    worker.start()
    for item in batch:
        worker.enqueue(item)
    await until(lambda: len(worker.outbox) == 0)
    await worker.stop(5)
    return worker


async def test_redelivered_detections_leave_one_document_each(
    engine: Engine, tmp_path: Path
) -> None:
    stream = f"detector-detections-redelivery-{engine.kind}"
    batch = [detection(n) for n in range(5)]
    for attempt in range(3):  # fresh outboxes: the cluster itself must deduplicate
        sink = SearchSink("siem", connection(engine), stream, batch_size=2)
        await deliver(sink, tmp_path / f"outbox-{attempt}", batch)
    stored = documents(engine, stream)
    assert [d["_id"] for d in stored] == [d.id for d in batch]
    assert [d["id"] for d in stored] == [d.id for d in batch]
    assert stored[0]["rule"]["title"] == "Repository destroyed"
    assert stored[0] == orjson.loads(batch[0].to_json()) | {"_id": batch[0].id}


async def test_a_document_the_mapping_refuses_is_dead_lettered_and_the_rest_indexed(
    engine: Engine, tmp_path: Path
) -> None:
    stream = f"detector-detections-partial-{engine.kind}"
    # date_nanos holds 1970..2262: an event dated 1969 cannot be indexed.
    bad = detection(99, when=datetime(1969, 12, 31, tzinfo=UTC))
    batch = [detection(1), bad, detection(2)]
    sink = SearchSink("siem", connection(engine), stream, batch_size=10)
    worker = await deliver(sink, tmp_path / "outbox", batch)
    assert [d["_id"] for d in documents(engine, stream)] == [batch[0].id, batch[2].id]
    letters = [orjson.loads(line) for line in worker.dead_letters.path.read_bytes().splitlines()]
    assert [letter["detection"]["id"] for letter in letters] == [bad.id]
    assert letters[0]["reason"].startswith("HTTP 400 ")
    assert "@timestamp" in letters[0]["reason"]
    assert letters[0]["attempts"] == 1


async def test_a_conflicting_site_template_is_verified_not_replaced(
    engine: Engine, tmp_path: Path
) -> None:
    """install_template off: the site's own template stays, and its mapping decides."""
    stream = f"detector-detections-site-{engine.kind}"
    client = connection(engine).client()
    client.indices.put_index_template(
        name=stream,
        body={
            "index_patterns": [stream],
            "data_stream": {},
            "priority": 300,
            "template": {
                "mappings": {"properties": {"rule": {"properties": {"level": {"type": "long"}}}}}
            },
        },
    )
    output = SearchOutput.model_validate(
        {
            "name": "siem",
            "type": "elasticsearch",
            "kind": engine.kind,
            "hosts": [engine.url],
            "stream": stream,
            "install_template": False,
        }
    )
    sink = build_sink(output)
    assert isinstance(sink, SearchSink)
    worker = await deliver(sink, tmp_path / "outbox", [detection(1)])
    letters = worker.dead_letters.path.read_bytes().splitlines()
    assert len(letters) == 1
    assert "level" in orjson.loads(letters[0])["reason"]
    mapping = client.indices.get_index_template(name=stream)["index_templates"][0]
    assert mapping["index_template"]["priority"] == 300
