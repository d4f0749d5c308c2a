"""Where each stage is in each partition it reads, kept by the stage, not by the consumer.

Faust commits a partition's offset once every record before it is acknowledged, and it
counts a jump between two offsets it reads in turn as acknowledged (meant for compacted
and transactional topics). Around a rebalance it has handed a stage records 16 to 105
past the last one the stage took: the records between were never delivered, their
offsets were committed, and a worker that trusts the commit loses them.

So each stage keeps the next offset it expects from each partition:

- a record at that offset is taken, and the position moves on;
- a record before it is a redelivery, which the stage knows: the raw stage processes
  it again (downstream stages deduplicate), the correlator skips it by its own offset,
  the alerts hand it to outboxes that know it. Nothing is dropped on a saved
  position's word: one that outlived its topic must not drop what a new topic holds;
- a record past it means records between were not handed over, or the partition has
  none there (transaction markers, compaction, retention): the stage reads whatever
  the partition holds between from the broker (`PartitionProbe.between`) and takes
  those records first, in order. It does not seek back: Faust would drop the records
  read again as older than those it had fetched before the seek, and commit past them;
- a partition whose stage has been given nothing for a while though the partition
  holds records from the offset it expects is sought back there (`rewind_stalled`): the
  consumer went past its last records, and no later record would show it; nothing of
  it flows, so no record fetched before the seek can come after it.

Positions are saved with the stage's output, so that a worker that takes over a
partition whose offset was committed too far goes back too: the raw stage's and the
correlator's in the table (changelog) after each batch, the alerts' beside the
outboxes (`PositionFile`). A partition without one starts where the group's committed
offset is when the stage first needs it (not at the first record it is handed), and
that start is saved at once: the consumer commits nothing of a partition before its
stage has seen a record of it, so a successor never finds it committed further than a
saved position.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faust.types import TP, ConsumerT, Message

from detector.sinks.durable import lock_exclusively, write_atomically

log = logging.getLogger("detector.kafka")

POSITION = "position"
POSITION_LOCK = "position.lock"
#: how long the broker may take to say where a partition's next record is (s)
PROBE_TIMEOUT = 10.0
#: records read from the broker at a time, filling a stage's gap
PROBE_CHUNK = 500


class PositionHeld(RuntimeError):
    """Another process holds the partition's position (it has the partition still)."""


class Admission(enum.Enum):
    TAKE = "take"
    TAKEN = "taken already"
    SKIPPED = "past records never delivered"


def admit(expected: int, offset: int) -> Admission:
    """What a stage expecting `expected` next does with `offset`."""
    if offset == expected:
        return Admission.TAKE
    return Admission.TAKEN if offset < expected else Admission.SKIPPED


class Positions:
    """The next offset a stage expects from each partition it holds, and when it last
    took one (or was told where to start)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._next: dict[TP, tuple[int, float]] = {}

    def expected(self, tp: TP) -> int | None:
        entry = self._next.get(tp)
        return None if entry is None else entry[0]

    def took(self, tp: TP, offset: int) -> None:
        """A record at `offset` was handed over: the position moves past it, never back
        (one handed over again only says the partition is not stalled)."""
        entry = self._next.get(tp)
        self._next[tp] = (offset + 1 if entry is None else max(entry[0], offset + 1), self.clock())

    def start(self, tp: TP, expected: int | None) -> None:
        """The stage's saved position of a partition it was given (None: none saved)."""
        if expected is None:
            self._next.pop(tp, None)
        else:
            self._next[tp] = (expected, self.clock())

    def stalled(self, after: float) -> list[tuple[TP, int]]:
        """Partitions the stage has taken nothing from for `after` seconds, with the
        offset it expects; each is not stalled again for `after` seconds."""
        now = self.clock()
        found = [(tp, expected) for tp, (expected, at) in self._next.items() if now - at >= after]
        for tp, expected in found:
            self._next[tp] = (expected, now)
        return found

    def keep_only(self, assigned: Iterable[TP]) -> None:
        """Forget the partitions a rebalance gave elsewhere: another worker moves them on,
        and they may come back later, further on."""
        kept = set(assigned)
        for tp in [tp for tp in self._next if tp not in kept]:
            del self._next[tp]


class PartitionProbe:
    """What the broker says of a partition, asked by a consumer of its own, which never
    joins the workers' group: where the group starts in it, and the records it holds
    (a gap it really has, from transaction markers, compaction or retention, is not
    records the stage was not given). One question at a time: the stages and the watch
    share it."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self._consumer: AIOKafkaConsumer | None = None
        self._turn = asyncio.Lock()
        #: partitions found to hold no record from an offset to their end: (from, end)
        self._quiet: dict[TP, tuple[int, int]] = {}

    async def start_of(self, tp: TP) -> int:
        """Where the group starts reading `tp`: its committed offset, else (none yet)
        the partition's first offset, as the consumer's `earliest` reset does."""
        async with self._turn:
            consumer = await self._started()
            partition = TopicPartition(tp.topic, tp.partition)
            committed = await consumer.committed(partition)
            if committed is not None:
                log.info("%s partition %d: the group's committed offset %d", *tp, committed)
                return int(committed)
            first = int((await consumer.beginning_offsets([partition]))[partition])
        log.info("%s partition %d: nothing committed; its first offset %d", *tp, first)
        return first

    async def between(self, tp: TP, start: int, end: int) -> AsyncIterator[ConsumerRecord]:
        """The records `tp` holds from `start` up to `end` (excluded), in order, read in
        chunks of at most `PROBE_CHUNK`. A broker that sends nothing for
        `PROBE_TIMEOUT` while records are due is an error."""
        while start < end:
            chunk = await self._read(tp, start, PROBE_CHUNK)
            if not chunk:
                where = f"{tp.topic} partition {tp.partition}"
                raise KafkaProbeError(f"{where}: the broker sent no record from {start}")
            for record in chunk:
                if record.offset >= end:
                    return
                yield record
            start = chunk[-1].offset + 1

    async def held_from(self, tp: TP, offset: int) -> int | None:
        """The first record `tp` holds at or after `offset`, None when it holds none to
        its end (an answer kept while the end stays where it is)."""
        async with self._turn:
            consumer = await self._started()
            partition = TopicPartition(tp.topic, tp.partition)
            end = (await consumer.end_offsets([partition]))[partition]
        if end <= offset or self._quiet.get(tp) == (offset, end):
            return None
        first = await self._read(tp, offset, 1)
        if not first or first[0].offset >= end:
            self._quiet[tp] = (offset, end)
            return None
        return int(first[0].offset)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _read(self, tp: TP, start: int, count: int) -> list[ConsumerRecord]:
        async with self._turn:
            consumer = await self._started()
            partition = TopicPartition(tp.topic, tp.partition)
            consumer.assign([partition])
            consumer.seek(partition, start)
            batch = await consumer.getmany(
                partition, timeout_ms=int(PROBE_TIMEOUT * 1000), max_records=count
            )
        return list(batch.get(partition, []))

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,  # to read its offsets; assigning, it never joins
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """A record the probe read, with what a stage reads of a Faust message."""

    topic: str
    partition: int
    offset: int
    headers: Sequence[tuple[str, bytes]]

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class FetchedEvent:
    """A record the probe read, shaped like the Faust events a stage takes."""

    message: FetchedMessage
    value: bytes  # empty for a null value, as Faust's raw serializer gives it

    @classmethod
    def of(cls, record: ConsumerRecord) -> FetchedEvent:
        headers = [(str(name), bytes(value)) for name, value in record.headers or ()]
        message = FetchedMessage(record.topic, record.partition, record.offset, headers)
        return cls(message, record.value or b"")


class Taken(Protocol):
    """What a stage reads of a record: a Faust event, or one the probe read."""

    @property
    def message(self) -> FetchedMessage | Message: ...

    @property
    def value(self) -> bytes: ...


async def admitted(
    batch: Iterable[Taken],
    expected: Callable[[TP], Awaitable[int]],
    took: Callable[[TP, int], None],
    probe: PartitionProbe,
    stage: str,
) -> AsyncIterator[Taken]:
    """`batch`'s records, each admitted against the position `expected` gives for its
    partition, which `took` moves on; where records were not handed over, those the
    partition holds between are read from the broker and come first. Records handed
    over again come too: each stage knows what it has taken."""
    for event in batch:
        tp, offset = event.message.tp, event.message.offset
        next_offset = await expected(tp)
        admission = admit(next_offset, offset)
        if admission is Admission.SKIPPED:
            filled = 0
            async for record in probe.between(tp, next_offset, offset):
                took(tp, record.offset)
                filled += 1
                yield FetchedEvent.of(record)
            if filled:
                log.warning(
                    "%s: %s partition %d: given offset %d while offset %d was next; "
                    "took the %d records between from the broker",
                    stage,
                    tp.topic,
                    tp.partition,
                    offset,
                    next_offset,
                    filled,
                )
        took(tp, offset)
        yield event


class KafkaProbeError(RuntimeError):
    """The broker did not send records a partition holds."""


async def rewind_stalled(
    stage: str,
    positions: Positions,
    held: Iterable[TP],
    probe: PartitionProbe,
    consumer: ConsumerT,
    after: float,
) -> None:
    """Seek back each partition of `held` whose stage has been given nothing for `after`
    seconds though it holds records from the offset the stage expects (nothing of it
    flows: no record fetched before the seek can come after it)."""
    held = set(held)
    for tp, expected in positions.stalled(after):
        first = await probe.held_from(tp, expected) if tp in held else None
        if first is None:
            continue
        log.warning(
            "%s: %s partition %d: offset %d not given for %g s; reading again from %d",
            stage,
            tp.topic,
            tp.partition,
            first,
            after,
            expected,
        )
        await consumer.seek(tp, expected)


class PositionFile:
    """A partition's position (the next offset its stage expects) saved in
    `directory/position`, durable and atomic; a lock keeps a second process from writing
    it (held until `close`)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / POSITION
        lock = lock_exclusively(directory / POSITION_LOCK)
        if lock is None:
            raise PositionHeld(f"{directory}: the position is held by another process")
        self._lock: IO[bytes] = lock
        try:
            self.saved: int | None = self._read()
        except BaseException:
            lock.close()
            raise

    def save(self, next_offset: int) -> None:
        """Make `next_offset` durable (after the output of the records before it is)."""
        if next_offset != self.saved:
            write_atomically(self.path, [orjson.dumps({"next": next_offset})])
            self.saved = next_offset

    def close(self) -> None:
        self._lock.close()

    def _read(self) -> int | None:
        try:
            return int(orjson.loads(self.path.read_bytes())["next"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.path}: not a position ({error})") from None
