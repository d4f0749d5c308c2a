"""Fixtures for the sink tests: detections, real HTTP receivers on 127.0.0.1, workers
with tiny backoff, and waiting on conditions with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from detector.detections import Detection, RuleRef
from detector.events import Event
from detector.single_event import single_event_detection
from detector.sinks.base import Sink
from detector.sinks.delivery import DeliveryWorker
from detector.sinks.metrics import SinkMetrics
from detector.sinks.settings import RetryPolicy

RULE = RuleRef(
    id="5f0e4f55-7f0b-4a4e-9d1e-3c3b7a1d2e01",
    title="Repository destroyed",
    level="high",
    tags=["attack.impact", "attack.t1485"],
)
#: Tiny delays: a test retries within milliseconds.
FAST = RetryPolicy(base=0.01, cap=0.05, deadline=60, timeout=5)


def make_detection(n: int = 1, **event: Any) -> Detection:
    """The detection of GitHub event `evt-n` (mallory destroys acme/api-n) by RULE."""
    fields: dict[str, Any] = {
        "timestamp": datetime(2025, 3, 10, 12, 57, 43, 961000, tzinfo=UTC) + timedelta(minutes=n),
        "event_id": f"evt-{n}",
        "event_source": "github",
        "event_action": "repo.destroy",
        "user_name": "mallory",
        "repository": f"acme/api-{n}",
        "raw": {},
        **event,
    }
    rule = fields.pop("rule", RULE)
    return single_event_detection(rule, Event(**fields))


@pytest.fixture
def detection() -> Callable[..., Detection]:
    return make_detection


@dataclass
class Received:
    """One request as the receiver saw it; `status` is what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


Responder = Callable[[Received], Awaitable[web.Response]]


async def accept(_: Received) -> web.Response:
    return web.Response(status=200, text="ok")


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers with `respond`."""

    def __init__(self, port: int = 0, respond: Responder = accept) -> None:
        self.port = port
        self.respond = respond
        self.requests: list[Received] = []
        self.release = asyncio.Event()  # lets a holding responder go
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(
            request.path, dict(request.headers), await request.read(), time.monotonic()
        )
        await self._record(lambda: self.requests.append(received))
        response = await self.respond(received)
        await self._record(lambda: setattr(received, "status", response.status))
        return response

    async def _record(self, change: Callable[[], None]) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until `predicate()` holds after some request; TimeoutError past `timeout`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """receiver(port=0, respond=accept) → a started Receiver, closed after the test."""
    started: list[Receiver] = []

    async def start(port: int = 0, respond: Responder = accept) -> Receiver:
        started.append(await Receiver(port, respond).start())
        return started[-1]

    yield start
    for one in started:
        await one.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def worker(
    tmp_path: Path, registry: CollectorRegistry
) -> AsyncIterator[Callable[..., DeliveryWorker]]:
    """worker(sink, policy=FAST, directory=tmp_path/<sink name>) → a DeliveryWorker;
    all of them share one SinkMetrics and are stopped after the test."""
    metrics = SinkMetrics(registry)
    made: list[DeliveryWorker] = []

    def make(
        sink: Sink, policy: RetryPolicy = FAST, directory: Path | None = None
    ) -> DeliveryWorker:
        made.append(
            DeliveryWorker(sink, directory or tmp_path / sink.name, policy, metrics, 86_400.0)
        )
        return made[-1]

    yield make
    for one in made:
        await one.stop(timeout=0)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `predicate()` holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return eventually


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric's value, 0 when it was never set."""
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metric(registry: CollectorRegistry) -> Callable[..., float]:
    """metric(name, **labels) → value in the test's registry."""
    return lambda name, **labels: sample(registry, name, **labels)
