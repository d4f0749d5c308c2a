"""One sink fed from synchronous code (a replay), on an event loop in its own thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from detector.detections import Detection
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.factory import build_dispatcher
from detector.sinks.settings import OutputSettings, SinksSettings

_T = TypeVar("_T")


class UnknownSinkError(KeyError):
    """A sink name the configuration does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class BackgroundSink:
    """Detections of a synchronous run (a replay) to one sink of the configuration, through
    the live service's own outbox and delivery worker, so each detection id is still
    delivered once per sink. The worker runs on an event loop in a thread of its own; each
    detection handed over is durable in the outbox on return. Leaving the `with` waits
    until the outbox is empty or the sink's deadline has passed, then stops it.

    Raises `UnknownSinkError` for a name the settings do not have, and `SecretError` or
    `OutboxError` when the sink cannot start."""

    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread

    def __init__(self, settings: SinksSettings, name: str) -> None:
        chosen = [output for output in settings.outputs if output.name == name]
        if not chosen:
            known = ", ".join(output.name for output in settings.outputs) or "none"
            raise UnknownSinkError(f"no output {name!r} in `sinks:` (known: {known})")
        self.output: OutputSettings = chosen[0]
        self.settings = settings.model_copy(update={"outputs": [self.output]})
        self.registry = CollectorRegistry()
        self.sent = 0
        self.known = 0
        self.undelivered = 0
        self._dispatcher: Dispatcher | None = None

    def __enter__(self) -> BackgroundSink:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._dispatcher = self._call(self._start())
        except BaseException:
            self._end()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            self.undelivered = self._call(self._stop(drain=exc_type is None))
        finally:
            self._end()

    def enqueue(self, detection: Detection) -> None:
        if self._call(self._enqueue(detection)):
            self.sent += 1
        else:
            self.known += 1

    def summary(self) -> str:
        name = self.output.name
        delivered = self.registry.get_sample_value("detector_sink_deliveries_total", {"sink": name})
        dead = sum(
            self.registry.get_sample_value(
                "detector_sink_dead_letters_total", {"sink": name, "reason": reason}
            )
            or 0.0
            for reason in ("rejected", "deadline")
        )
        return (
            f"sink {name}: {self.sent} enqueued ({self.known} it had already) · delivered "
            f"{delivered or 0:.0f} · dead-lettered {dead:.0f} · undelivered {self.undelivered}"
            + (f" (kept in {self.settings.outbox_dir / name})" if self.undelivered else "")
        )

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _start(self) -> Dispatcher:
        dispatcher = build_dispatcher(self.settings, self.registry)
        dispatcher.start()
        return dispatcher

    async def _enqueue(self, detection: Detection) -> bool:
        assert self._dispatcher is not None
        return self._dispatcher.workers[0].enqueue(detection)

    async def _stop(self, drain: bool) -> int:
        """Wait for the outbox to empty (at most the deadline), stop; what is left in it."""
        assert self._dispatcher is not None
        outbox = self._dispatcher.workers[0].outbox
        end = time.monotonic() + self.output.retry.deadline
        while drain and len(outbox) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        left = len(outbox)
        await self._dispatcher.stop()
        return left

    def _end(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
