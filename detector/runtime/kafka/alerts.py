"""Detections of `detector.detections` to the alert sinks and the responder, each once.

Every worker consumes its share of the `detector.detections` partitions. A detection's
key is its id, so one id always lives on one partition, and each partition has its own
outboxes, `<outbox_dir>/partition-<n>/<sink>/`: whichever worker has the partition opens
them (the lock of the one that had it is gone when it died or gave the partition up),
so a detection Kafka delivers again (the worker died before committing) meets the
outbox that already has its id, and is not sent twice. That holds when the outbox
directory is shared by the workers (one machine, or a shared volume).

Beside the outboxes, `partition-<n>/position` holds the offset of the partition after
the last whose detection is in them, saved after each batch: a worker that gets the partition
goes back there when the group's committed offset is past it (see `positions`). Its
lock is the partition's: taken first, it is free once the previous holder's outboxes
are.

The responder is one per worker; its SQLite state (`responders.state`) makes each
(detection, playbook, step) act once when the workers share it, the same way.

The event behind a single-event detection travels with it, in the record header
`detector-event` (the raw stage has it); a correlation's is not available, so its
templates see an empty `event`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

from faust.types import TP
from prometheus_client import CollectorRegistry

from detector.events import Event
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.factory import build_dispatcher
from detector.sinks.settings import SinksSettings

from .positions import PositionFile, PositionHeld, Positions

log = logging.getLogger("detector.kafka")

EVENT_HEADER = "detector-event"
#: how long a worker waits for the outboxes of a partition another worker still holds (s)
OUTBOX_WAIT = 60.0


def event_headers(event: Event) -> list[tuple[str, bytes]]:
    return [(EVENT_HEADER, event.to_json())]


def event_of(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Event | None:
    """The event a detection record carries, None without one (or one that does not parse)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name == EVENT_HEADER:
            try:
                return Event.model_validate_json(value)
            except ValueError:
                log.warning("a detection's event header does not parse; its event is left out")
                return None
    return None


class PartitionDispatchers:
    """The alert stage's state of each `detector.detections` partition this worker has:
    a sink dispatcher, and the stage's position (the offset after the last whose
    detection is in the outboxes: on disk, `PositionFile`, and in `positions`)."""

    def __init__(self, settings: SinksSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.positions = Positions()
        self._dispatchers: dict[int, tuple[PositionFile, Dispatcher]] = {}
        self._opening = asyncio.Lock()

    def directory(self, partition: int) -> SinksSettings:
        outbox = self.settings.outbox_dir / f"partition-{partition}"
        return self.settings.model_copy(update={"outbox_dir": outbox})

    async def of(self, partition: int) -> Dispatcher:
        """The partition's dispatcher, started, and its position read; waits while a
        worker that had the partition still holds them."""
        held = self._dispatchers.get(partition)
        if held is not None:
            return held[1]
        async with self._opening:
            held = self._dispatchers.get(partition)
            if held is not None:
                return held[1]
            position, dispatcher = await self._open(partition)
        self._dispatchers[partition] = (position, dispatcher)
        self.positions.start(TP(self.topic, partition), position.saved)
        return dispatcher

    def begin(self, tp: TP, offset: int) -> None:
        """Start an open partition without a saved position at `offset`, saved now."""
        self.positions.start(tp, offset)
        self._dispatchers[tp.partition][0].save(offset)

    def save_positions(self) -> None:
        """Every partition's position on disk (after its detections are in the outboxes)."""
        for partition, (position, _) in self._dispatchers.items():
            expected = self.positions.expected(TP(self.topic, partition))
            if expected is not None:
                position.save(expected)

    async def close(self, partitions: Iterable[int] | None = None) -> None:
        """Stop the dispatchers of `partitions` (all without): their outboxes are free."""
        chosen = list(self._dispatchers) if partitions is None else list(partitions)
        stopping = [self._dispatchers.pop(p) for p in chosen if p in self._dispatchers]
        await asyncio.gather(*(dispatcher.stop() for _, dispatcher in stopping))
        for position, _ in stopping:
            position.close()
        for partition in chosen:
            self.positions.start(TP(self.topic, partition), None)

    async def _open(self, partition: int) -> tuple[PositionFile, Dispatcher]:
        settings = self.directory(partition)
        deadline = time.monotonic() + OUTBOX_WAIT
        while True:
            try:
                position = PositionFile(settings.outbox_dir)
                break
            except PositionHeld:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            dispatcher = build_dispatcher(settings, CollectorRegistry())
        except BaseException:
            position.close()
            raise
        dispatcher.start()
        log.info("alerts of detections partition %d: next offset %s", partition, position.saved)
        return position, dispatcher
