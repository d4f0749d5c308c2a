"""Where each stage is in each partition it reads, kept by the stage, not by the consumer.

Faust commits a partition's offset once every record before it is acknowledged, and it
counts a jump between two offsets it reads in turn as acknowledged (meant for compacted
and transactional topics). Around a rebalance it has handed a stage records 20 or more
past the last one the stage took: the records between were never delivered, their
offsets were committed, and a worker that trusts the commit loses them.

So each stage keeps the next offset it expects from each partition:

- a record at that offset is taken, and the position moves on;
- a record before it is a redelivery, handled as before positions: the raw stage
  processes it again (downstream stages deduplicate), the correlator skips it by its
  own offset, the alerts hand it to outboxes that know it. Nothing is dropped on a
  saved position's word: one that outlived its topic must not drop what a new topic
  holds;
- a record past it is taken when the partition holds nothing between (a gap of its
  own: transaction markers, compaction, retention; `PartitionProbe` asks the broker);
  otherwise the consumer skipped records: the record is dropped, and the stage seeks
  the partition back to the offset it expects, again on each such batch until that
  offset comes (records fetched before the seek may still be in the buffers);
- a partition whose stage has been given nothing for a while though the partition
  holds records from the offset it expects is read again from there (`stalled`): the
  consumer went past its last records, and no later record would show it.

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

import enum
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, ConsumerT

from detector.sinks.durable import lock_exclusively, write_atomically

log = logging.getLogger("detector.kafka")

POSITION = "position"
POSITION_LOCK = "position.lock"
#: how long the broker may take to say where a partition's next record is (s)
PROBE_TIMEOUT = 10.0


class PositionHeld(RuntimeError):
    """Another process holds the partition's position (it has the partition still)."""


class Admission(enum.Enum):
    TAKE = "take"
    TAKEN = "taken already"
    SKIPPED = "past records never delivered"


def admit(expected: int | None, offset: int) -> Admission:
    """What a stage expecting `expected` next (None: anything) does with `offset`."""
    if expected is None or offset == expected:
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
        self._next[tp] = (offset + 1, self.clock())

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
    joins the workers' group: where the group starts in it, and which records it holds
    (a gap it really has, from transaction markers, compaction or retention, is not
    records the stage was not given)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self._consumer: AIOKafkaConsumer | None = None
        #: partitions found to hold no record from an offset to their end: (from, end)
        self._quiet: dict[TP, tuple[int, int]] = {}

    async def at_or_after(self, tp: TP, offset: int) -> int | None:
        """The first offset at or after `offset` that `tp` holds; None when the broker
        sends nothing within `PROBE_TIMEOUT`."""
        consumer = await self._started()
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, offset)
        batch = await consumer.getmany(
            partition, timeout_ms=int(PROBE_TIMEOUT * 1000), max_records=1
        )
        records = batch.get(partition, [])
        return records[0].offset if records else None

    async def start_of(self, tp: TP) -> int:
        """Where the group starts reading `tp`: its committed offset, else (none yet)
        the partition's first offset, as the consumer's `earliest` reset does."""
        consumer = await self._started()
        partition = TopicPartition(tp.topic, tp.partition)
        committed = await consumer.committed(partition)
        if committed is not None:
            log.info("%s partition %d: the group's committed offset %d", *tp, committed)
            return int(committed)
        first = int((await consumer.beginning_offsets([partition]))[partition])
        log.info("%s partition %d: nothing committed; its first offset %d", *tp, first)
        return first

    async def held_from(self, tp: TP, offset: int) -> int | None:
        """The first record `tp` holds at or after `offset`, None when it holds none to
        its end (an answer kept while the end stays where it is)."""
        consumer = await self._started()
        partition = TopicPartition(tp.topic, tp.partition)
        end = (await consumer.end_offsets([partition]))[partition]
        if end <= offset or self._quiet.get(tp) == (offset, end):
            return None
        first = await self.at_or_after(tp, offset)
        if first is None or first >= end:
            self._quiet[tp] = (offset, end)
            return None
        return first

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

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


class Rewinds:
    """Partitions to seek back, each to the offset its stage expects: noted while a
    batch is admitted, or by the watch over stalled partitions."""

    def __init__(self, stage: str, probe: PartitionProbe) -> None:
        self.stage = stage
        self.probe = probe
        self._to: dict[TP, tuple[int, str]] = {}

    async def admit(self, tp: TP, expected: int | None, offset: int) -> Admission:
        """`admit`; a record past `expected` is taken when the partition holds nothing
        between, else the partition is noted to seek back."""
        admission = admit(expected, offset)
        if admission is not Admission.SKIPPED:
            return admission
        assert expected is not None
        if tp in self._to:
            return admission
        first = await self.probe.at_or_after(tp, expected)
        if first is not None and first >= offset:
            return Admission.TAKE  # nothing between: a gap of the partition itself
        self._to[tp] = (expected, f"given offset {offset} while offset {expected} was next")
        return admission

    async def stalled(self, tp: TP, expected: int, after: float) -> None:
        """The stage has not been given `expected` for `after` seconds: note the
        partition when it holds a record there or later (the consumer went past it)."""
        first = await self.probe.held_from(tp, expected)
        if first is not None:
            self._to[tp] = (expected, f"offset {first} not given for {after:g} s")

    async def seek(self, consumer: ConsumerT) -> None:
        """Seek every partition noted back, and start afresh."""
        for tp, (expected, why) in self._to.items():
            log.warning(
                "%s: %s partition %d: %s; reading again from %d",
                self.stage,
                tp.topic,
                tp.partition,
                why,
                expected,
            )
            await consumer.seek(tp, expected)
        self._to.clear()


class PositionFile:
    """The next offset of a partition a stage expects, in `directory/position`, durable
    and atomic; a lock keeps a second process from writing it (held until `close`)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / POSITION
        lock = lock_exclusively(directory / POSITION_LOCK)
        if lock is None:
            raise PositionHeld(f"{directory}: the position is held by another process")
        self._lock: IO[bytes] = lock
        try:
            self.next: int | None = self._read()
        except BaseException:
            lock.close()
            raise
        self._saved = self.next

    def took(self, offset: int) -> None:
        """Never back: a record handed over again does not move it."""
        self.next = offset + 1 if self.next is None else max(self.next, offset + 1)

    def save(self) -> None:
        """Make `next` durable (after the output of the records before it is)."""
        if self.next != self._saved and self.next is not None:
            write_atomically(self.path, [orjson.dumps({"next": self.next})])
            self._saved = self.next

    def close(self) -> None:
        self._lock.close()

    def _read(self) -> int | None:
        try:
            return int(orjson.loads(self.path.read_bytes())["next"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.path}: not a position ({error})") from None
