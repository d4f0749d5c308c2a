"""Every detection to every sink: the one object a runtime talks to."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from detector.detections import Detection
from detector.sinks.delivery import DeliveryWorker


class Dispatcher:
    """Fans detections out to independent delivery workers, one per sink."""

    def __init__(self, workers: Sequence[DeliveryWorker], stop_timeout: float = 10.0) -> None:
        self.workers = list(workers)
        self.stop_timeout = stop_timeout

    def enqueue(self, detection: Detection) -> None:
        """Put `detection` in every sink's outbox: durable when this returns, and fast (no
        network). A sink that has the detection already keeps its one copy."""
        for worker in self.workers:
            worker.enqueue(detection)

    def submit(self, detection: Detection) -> None:
        """Put `detection` in every sink's outbox without waiting for the disk: each sink
        makes it durable with its next group commit, and sends it only then."""
        for worker in self.workers:
            worker.submit(detection)

    async def committed(self) -> None:
        """Return once every detection handed over so far is on disk in every outbox."""
        await asyncio.gather(*(worker.committed() for worker in self.workers))

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    async def stop(self) -> None:
        """Stop every sink at once, each waiting up to `stop_timeout` for its attempt in
        flight; what is not delivered stays in the outboxes for the next start."""
        await asyncio.gather(*(worker.stop(self.stop_timeout) for worker in self.workers))

    async def __aenter__(self) -> Dispatcher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
