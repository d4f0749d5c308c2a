"""`detector replay --kafka`: files through running workers, detections back.

Publishing: a `start` control record (with a run id) to every partition of every raw
topic, then each record, in the event-time order of the embedded replay, to its source's
raw topic, then an `end` control record to every raw partition. Records that cannot be
normalized here have no source topic: they go to the local dead-letter file, as in the
embedded replay.

Done, robustly: the workers pass `end` on. Every raw partition's stage sends an end
marker to every `detector.detections` partition after its last single-event detection,
and every hits partition's correlator sends one after it has decided the whole run. A
partition of `detector.detections` is complete when it has the end markers of all raw
partitions and all hits partitions of the run; the replay is done when every partition
is complete. Per-partition order makes that exact: nothing of the run can follow its end
markers. A deadline bounds the wait (workers down, wrong topics). Detections delivered
twice (a worker died) are read once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detector.events import Event

from .control import END, START, control_headers, control_kind, encode
from .topics import TopicNames


class ReplayTimeoutError(RuntimeError):
    """The workers did not finish the run before the deadline."""


@dataclass
class KafkaReplay:
    """One run: where to publish, how many partitions every topic has, how long to wait."""

    bootstrap: str
    names: TopicNames
    sources: list[str]
    partitions: int
    deadline_seconds: float = 600.0
    #: publish at most this many events per second (None: as fast as possible)
    rate: float | None = None
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: when each event was handed to the producer, and each detection first arrived
    #: (monotonic seconds): what the latency benchmark reads
    sent: dict[str, float] = field(default_factory=dict)
    arrived: dict[bytes, float] = field(default_factory=dict)

    async def __call__(self, events: Iterable[Event]) -> list[bytes]:
        """Publish `events`' raw records; the run's detections (JSON), each once, in
        event-time order."""
        detections_tps = [TopicPartition(self.names.detections, p) for p in range(self.partitions)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, max_poll_records=2000
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, acks="all")
        await consumer.start()
        await producer.start()
        try:
            consumer.assign(detections_tps)
            # only what the workers write after this point belongs to the run
            for tp, offset in (await consumer.end_offsets(detections_tps)).items():
                consumer.seek(tp, offset)
            # collected while publishing, so arrival times are true ones
            collecting = asyncio.create_task(self._collect(consumer))
            try:
                await self._publish(producer, events)
            except BaseException:
                collecting.cancel()
                raise
            return await collecting
        finally:
            await producer.stop()
            await consumer.stop()

    async def _publish(self, producer: AIOKafkaProducer, events: Iterable[Event]) -> None:
        marker = encode({"run": self.run})
        raw_topics = self.names.raws(self.sources)
        await self._to_every_partition(producer, raw_topics, START, marker)
        started = time.monotonic()
        for count, event in enumerate(events):
            if self.rate is not None:
                due = started + count / self.rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            await producer.send(self.names.raw(event.event_source), orjson.dumps(event.raw))
            self.sent[event.event_id] = time.monotonic()
        await self._to_every_partition(producer, raw_topics, END, marker)
        await producer.flush()

    async def _to_every_partition(
        self, producer: AIOKafkaProducer, topics: list[str], kind: str, value: bytes
    ) -> None:
        for topic in topics:
            for partition in range(self.partitions):
                await producer.send(
                    topic, value, partition=partition, headers=control_headers(kind)
                )

    async def _collect(self, consumer: AIOKafkaConsumer) -> list[bytes]:
        senders = len(self.sources) * self.partitions + self.partitions
        ended: dict[int, set[str]] = {p: set() for p in range(self.partitions)}
        found: dict[bytes, tuple[str, str]] = {}
        deadline = time.monotonic() + self.deadline_seconds
        while any(len(marks) < senders for marks in ended.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                seen = set().union(*ended.values())
                incomplete = sorted(p for p, marks in ended.items() if len(marks) < senders)
                raise ReplayTimeoutError(
                    f"the workers did not finish within {self.deadline_seconds:.0f}s: "
                    f"detections partitions {incomplete} lack end markers; ended so far: "
                    f"{', '.join(sorted(seen)) or 'none'}; are workers running on these topics?"
                )
            batch = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
            for tp, records in batch.items():
                for record in records:
                    kind = control_kind(record.headers)
                    if kind == END:
                        body = orjson.loads(record.value or b"{}")
                        if body.get("run") == self.run:
                            ended[tp.partition].add(str(body["u"]))
                    elif kind is None and record.value is not None:
                        detection = orjson.loads(record.value)
                        found[record.value] = (detection["@timestamp"], detection["id"])
                        self.arrived.setdefault(record.value, time.monotonic())
        return sorted(found, key=found.__getitem__)


def replay_through_kafka(replay: KafkaReplay, events: Iterable[Event]) -> list[bytes]:
    return asyncio.run(replay(events))
