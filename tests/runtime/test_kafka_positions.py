"""A stage's own positions: whatever a consumer skips or hands over again, the stage
takes every record of the partition once, in order; a gap the partition really has
costs one read; the alerts' position survives the process and is held by one."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from aiokafka import ConsumerRecord
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.runtime.kafka.positions import (
    Admission,
    FetchedMessage,
    PositionFile,
    PositionHeld,
    Positions,
    admit,
    admitted,
)

PARTITION = TP("t.audit.raw.github", 0)


@dataclass(frozen=True)
class Delivered:
    """A record as the consumer hands it over."""

    message: FetchedMessage
    value: bytes = b"{}"


class Partition:
    """A partition's offsets (some absent: transaction markers, compaction), as the
    broker holds them: what the probe reads."""

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.reads = 0

    async def between(self, tp: TP, start: int, end: int) -> AsyncIterator[ConsumerRecord]:
        self.reads += 1
        for offset in self.offsets[bisect.bisect_left(self.offsets, start) :]:
            if offset >= end:
                return
            yield ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"{}", None, 0, 2, [])


def delivered(offset: int) -> Delivered:
    return Delivered(FetchedMessage(PARTITION.topic, PARTITION.partition, offset, []))


faults = st.lists(
    st.one_of(
        st.none(),
        st.tuples(st.just("skip"), st.integers(1, 40)),
        st.tuples(st.just("back"), st.integers(1, 40)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    present=st.lists(st.booleans(), min_size=1, max_size=300),
    faults=faults,
    batch=st.integers(1, 50),
)
def test_every_record_is_taken_once_in_order_whatever_the_consumer_skips(
    present: list[bool], faults: list[tuple[str, int] | None], batch: int
) -> None:
    """A consumer that skips records and hands others over again; the stage takes
    every record the partition holds once, in order (a record at or before the last
    it took is a redelivery it knows)."""
    offsets = [offset for offset, there in enumerate(present) if there]
    partition = Partition(offsets)
    positions = Positions()
    positions.start(PARTITION, 0)  # a saved position
    first_time: list[int] = []

    async def expected(tp: TP) -> int:
        return cast(int, positions.expected(tp))

    async def run() -> None:
        at, pending = 0, iter(faults)
        while at < len(offsets):
            fault = next(pending, None)
            if fault is not None and fault[0] == "skip":
                # never handed over; the last record comes, as later ones would (a skip
                # at the very end shows with the next record, or the stalled watch)
                at = min(at + fault[1], len(offsets) - 1)
            elif fault is not None and fault[0] == "back":
                at = max(0, at - fault[1])
            chunk = [delivered(offset) for offset in offsets[at : at + batch]]
            at += len(chunk)
            async for event in admitted(chunk, expected, positions.took, partition, "test"):  # type: ignore[arg-type]
                offset = event.message.offset
                if not first_time or offset > first_time[-1]:
                    first_time.append(offset)

    asyncio.run(run())
    assert first_time == offsets


def test_a_gap_the_partition_has_costs_one_read_and_takes_nothing_more() -> None:
    partition = Partition([0, 1, 2, 4, 5])  # 3: a transaction marker
    positions = Positions()
    positions.start(PARTITION, 3)

    async def expected(tp: TP) -> int:
        return cast(int, positions.expected(tp))

    async def run() -> list[int]:
        got = admitted([delivered(4)], expected, positions.took, partition, "test")  # type: ignore[arg-type]
        return [event.message.offset async for event in got]

    assert asyncio.run(run()) == [4]
    assert partition.reads == 1
    assert positions.expected(PARTITION) == 5


def test_admission() -> None:
    assert admit(17, 17) is Admission.TAKE
    assert admit(17, 3) is Admission.TAKEN
    assert admit(17, 18) is Admission.SKIPPED


def test_only_partitions_kept_through_a_rebalance_keep_their_positions() -> None:
    positions = Positions()
    other = TP("t.audit.raw.github", 1)
    positions.took(PARTITION, 9)
    positions.took(other, 4)
    positions.keep_only({PARTITION})
    assert positions.expected(PARTITION) == 10
    assert positions.expected(other) is None


def test_a_partition_is_stalled_once_per_period_without_records() -> None:
    now = [100.0]
    positions = Positions(clock=lambda: now[0])
    other = TP("t.audit.raw.github", 1)
    positions.took(PARTITION, 9)
    positions.start(other, 3)
    now[0] += 5
    positions.took(other, 3)
    now[0] += 5
    assert positions.stalled(10) == [(PARTITION, 10)]
    assert positions.stalled(10) == []
    now[0] += 5
    assert positions.stalled(10) == [(other, 4)]
    positions.start(other, None)
    now[0] += 10
    assert positions.stalled(10) == [(PARTITION, 10)]
    now[0] += 10
    positions.took(PARTITION, 3)  # handed over again: not stalled, and never back
    assert positions.stalled(10) == []
    assert positions.expected(PARTITION) == 10


def test_the_position_file_survives_and_is_held_by_one(tmp_path: Path) -> None:
    position = PositionFile(tmp_path / "partition-0")
    assert position.saved is None
    positions = Positions()
    positions.start(PARTITION, 0)  # a start at offset 0, before any record
    position.save(cast(int, positions.expected(PARTITION)))
    assert (tmp_path / "partition-0" / "position").read_bytes() == b'{"next":0}\n'
    positions.took(PARTITION, 41)
    positions.took(PARTITION, 7)  # never back: a record handed over again does not move it
    position.save(cast(int, positions.expected(PARTITION)))
    with pytest.raises(PositionHeld):
        PositionFile(tmp_path / "partition-0")
    position.close()
    again = PositionFile(tmp_path / "partition-0")
    assert again.saved == 42
    again.close()


def test_a_damaged_position_file_is_a_clear_error_and_frees_its_lock(tmp_path: Path) -> None:
    directory = tmp_path / "partition-0"
    directory.mkdir()
    (directory / "position").write_bytes(b"{not json")
    with pytest.raises(ValueError, match="not a position"):
        PositionFile(directory)
    (directory / "position").write_bytes(b'{"next": 5}')
    reopened = PositionFile(directory)
    assert reopened.saved == 5
    reopened.close()
