"""What each bulk item's answer means, and per-item retries of items the cluster was too
busy for (429), through the official client against a local server on 127.0.0.1 that
answers `_bulk` as the bulk API reference describes (a real node does not answer 429 on
demand)."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiohttp import web
from prometheus_client import CollectorRegistry

from detector.search.bulk import item_outcome
from detector.search.connection import SearchConnection
from detector.sinks.base import DELIVERED, Rejected, Retry
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.metrics import SinkMetrics
from detector.sinks.search import SearchSink
from tests.search.test_sink import FAST, detection


def keep(text: str) -> str:
    return text


def test_created_and_already_existing_items_are_delivered() -> None:
    assert item_outcome({"create": {"_id": "a", "status": 201}}, keep) is DELIVERED
    conflict = {"type": "version_conflict_engine_exception", "reason": "document already exists"}
    assert (
        item_outcome({"create": {"_id": "a", "status": 409, "error": conflict}}, keep) is DELIVERED
    )


def test_a_refused_document_is_rejected_with_the_engines_reason() -> None:
    error = {
        "type": "document_parsing_exception",
        "reason": "failed to parse field [rule.level] of type [long]",
        "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "high"'},
    }
    outcome = item_outcome({"create": {"_id": "a", "status": 400, "error": error}}, keep)
    assert outcome == Rejected(
        "HTTP 400 document_parsing_exception: failed to parse field [rule.level] of type [long]"
        ' (caused by illegal_argument_exception: For input string: "high")'
    )


@pytest.mark.parametrize("status", [429, 500, 503])
def test_busy_and_failing_shards_are_retried(status: int) -> None:
    error = {"type": "es_rejected_execution_exception", "reason": "queue full"}
    outcome = item_outcome({"create": {"_id": "a", "status": status, "error": error}}, keep)
    assert isinstance(outcome, Retry)


class BulkServer:
    """`PUT /_index_template/<name>` and `POST /_bulk`; items whose id is in `busy` are
    answered 429 once."""

    def __init__(self, busy: set[str], refuse_first: bool = False) -> None:
        self.busy = busy
        self.refuse_first = refuse_first
        self.requests: list[list[str]] = []
        self.authorizations: list[str | None] = []
        self.stored: set[str] = set()

    async def template(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["data_stream"] == {} and body["index_patterns"] == ["detector-detections"]
        return self.json({"acknowledged": True})

    async def bulk(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        if self.refuse_first:  # some proxies echo the request's credentials
            self.refuse_first = False
            text = f"unauthorized: {request.headers.get('Authorization')}"
            return web.Response(
                status=401, text=text, headers={"X-Elastic-Product": "Elasticsearch"}
            )
        lines = (await request.read()).decode().splitlines()
        assert len(lines) % 2 == 0, "an action line and a document per item"
        ids, items = [], []
        for action_line, document_line in zip(lines[::2], lines[1::2], strict=True):
            action = orjson.loads(action_line)["create"]
            assert action["_index"] == "detector-detections"
            assert orjson.loads(document_line)["id"] == action["_id"]
            ids.append(action["_id"])
            if action["_id"] in self.busy:
                self.busy.discard(action["_id"])
                error = {"type": "es_rejected_execution_exception", "reason": "queue full"}
                items.append({"create": {"_id": action["_id"], "status": 429, "error": error}})
            else:
                status = 409 if action["_id"] in self.stored else 201
                self.stored.add(action["_id"])
                items.append({"create": {"_id": action["_id"], "status": status}})
        self.requests.append(ids)
        errors = any(item["create"]["status"] >= 300 for item in items)
        return self.json({"took": 1, "errors": errors, "items": items})

    @staticmethod
    def json(body: dict[str, Any]) -> web.Response:
        # The official client checks that it speaks to Elasticsearch.
        return web.json_response(body, headers={"X-Elastic-Product": "Elasticsearch"})


@asynccontextmanager
async def serving(server: BulkServer, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_put("/_index_template/{name}", server.template)
    app.router.add_post("/_bulk", server.bulk)
    app.router.add_put("/_bulk", server.bulk)  # the client uses either
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def bulk_server() -> AsyncIterator[tuple[BulkServer, str]]:
    batch = [detection(n) for n in range(3)]
    server = BulkServer({batch[1].id})
    async with serving(server) as url:
        yield server, url


async def deliver_all(
    sink: SearchSink, directory: Path, registry: CollectorRegistry
) -> DeliveryWorker:
    worker = DeliveryWorker(sink, directory, FAST, SinkMetrics(registry), 3600)
    worker.start()
    for n in range(3):
        worker.enqueue(detection(n))
    deadline = time.monotonic() + 10
    while len(worker.outbox):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await worker.stop(5)
    return worker


async def test_only_the_items_answered_429_are_sent_again(
    bulk_server: tuple[BulkServer, str], tmp_path: Path
) -> None:
    server, url = bulk_server
    batch = [detection(n) for n in range(3)]
    connection = SearchConnection.model_validate({"hosts": [url]})
    registry = CollectorRegistry()
    worker = DeliveryWorker(
        SearchSink("siem", connection, "detector-detections"),
        tmp_path,
        FAST,
        SinkMetrics(registry),
        3600,
    )
    worker.start()
    for item in batch:
        worker.enqueue(item)
    deadline = time.monotonic() + 10
    while len(worker.outbox):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await worker.stop(5)
    assert server.stored == {d.id for d in batch}
    assert server.requests[-1] == [batch[1].id]
    assert sum(len(ids) for ids in server.requests) == 4
    assert registry.get_sample_value("detector_sink_retries_total", {"sink": "siem"}) == 1
    assert not worker.dead_letters.path.exists()


async def test_an_api_key_over_verified_tls_and_never_in_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    key = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    monkeypatch.setenv("TEST_ES_API_KEY", key)
    server = BulkServer(set(), refuse_first=True)
    async with serving(server, tls) as url:
        connection = SearchConnection.model_validate(
            {"hosts": [url], "api_key": {"env": "TEST_ES_API_KEY"}, "ca_file": tmp_path / "ca.pem"}
        )
        registry = CollectorRegistry()
        await deliver_all(SearchSink("siem", connection, "detector-detections"), tmp_path, registry)
    assert set(server.authorizations) == {f"ApiKey {key}"}
    assert len(server.stored) == 3
    assert registry.get_sample_value("detector_sink_retries_total", {"sink": "siem"}) == 3
    assert "401" in caplog.text and key not in caplog.text


async def test_basic_auth_for_opensearch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OS_PASSWORD", "s3cr3t-passw0rd")
    server = BulkServer(set())
    async with serving(server) as url:
        connection = SearchConnection.model_validate(
            {
                "kind": "opensearch",
                "hosts": [url],
                "username": "detector",
                "password": {"env": "TEST_OS_PASSWORD"},
            }
        )
        await deliver_all(
            SearchSink("siem", connection, "detector-detections"), tmp_path, CollectorRegistry()
        )
    expected = "Basic " + base64.b64encode(b"detector:s3cr3t-passw0rd").decode()
    assert set(server.authorizations) == {expected}
    assert len(server.stored) == 3
