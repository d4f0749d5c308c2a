"""A stage's own positions: whatever a consumer skips, repeats or hands over late, the
stage takes every record of the partition once, in order; a gap the partition really
has is not waited on; the alerts' position survives the process and is held by one."""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from pathlib import Path

import pytest
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.runtime.kafka.positions import (
    Admission,
    PositionFile,
    PositionHeld,
    Positions,
    Rewinds,
    admit,
)

PARTITION = TP("t.audit.raw.github", 0)


class Partition:
    """A partition's offsets (some absent: transaction markers, compaction) and a
    consumer of it that can skip records, go back, and deliver what it fetched before
    a seek after it."""

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.fetch_at = 0  # index in `offsets`
        self.fetched: deque[int] = deque()
        self.probes = 0

    async def at_or_after(self, tp: TP, offset: int) -> int | None:
        self.probes += 1
        index = bisect.bisect_left(self.offsets, offset)
        return self.offsets[index] if index < len(self.offsets) else None

    async def seek(self, tp: TP, offset: int) -> None:
        self.fetch_at = bisect.bisect_left(self.offsets, offset)  # `fetched` stays: stale

    def fetch(self, count: int) -> None:
        chunk = self.offsets[self.fetch_at : self.fetch_at + count]
        self.fetch_at += len(chunk)
        self.fetched.extend(chunk)


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
def test_every_record_is_taken_once_in_order_whatever_the_consumer_does(
    present: list[bool], faults: list[tuple[str, int] | None], batch: int
) -> None:
    offsets = [offset for offset, there in enumerate(present) if there]
    partition = Partition(offsets)
    positions = Positions()
    taken: list[int] = []

    async def run() -> None:
        pending = iter(faults)
        for _ in range(10_000):
            fault = next(pending, None)
            if fault is not None and fault[0] == "skip":
                # never delivered; the last record comes, as later ones would (a skip at
                # the very end shows with the next record)
                partition.fetch_at = min(partition.fetch_at + fault[1], len(offsets) - 1)
            elif fault is not None and fault[0] == "back":
                partition.fetch_at = max(0, partition.fetch_at - fault[1])
            partition.fetch(batch)
            if not partition.fetched and positions.expected(PARTITION) == _end(offsets):
                return
            if not partition.fetched:
                continue
            rewinds = Rewinds("test", partition)  # type: ignore[arg-type]
            for _ in range(min(batch, len(partition.fetched))):
                offset = partition.fetched.popleft()
                expected = positions.expected(PARTITION)
                if await rewinds.admit(PARTITION, expected, offset) is Admission.TAKE:
                    positions.took(PARTITION, offset)
                    taken.append(offset)
            await rewinds.seek(partition)  # type: ignore[arg-type]
        raise AssertionError(f"not at the end after 10,000 batches: took {taken}")

    positions.took(PARTITION, -1)  # the stage starts at 0 (a saved position)
    asyncio.run(run())
    assert taken == offsets


def _end(offsets: list[int]) -> int:
    return offsets[-1] + 1 if offsets else 0


def test_admission() -> None:
    assert admit(None, 17) is Admission.TAKE
    assert admit(17, 17) is Admission.TAKE
    assert admit(17, 3) is Admission.TAKEN
    assert admit(17, 18) is Admission.SKIPPED


def test_a_gap_the_partition_has_costs_one_question_and_no_seek() -> None:
    partition = Partition([0, 1, 2, 4, 5])  # 3: a transaction marker
    rewinds = Rewinds("test", partition)  # type: ignore[arg-type]

    async def run() -> Admission:
        admission = await rewinds.admit(PARTITION, 3, 4)
        await rewinds.seek(partition)  # type: ignore[arg-type]
        return admission

    partition.fetch_at = 4
    assert asyncio.run(run()) is Admission.TAKE
    assert partition.probes == 1
    assert partition.fetch_at == 4


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


def test_the_position_file_survives_and_is_held_by_one(tmp_path: Path) -> None:
    position = PositionFile(tmp_path / "partition-0")
    assert position.next is None
    position.took(-1)  # a start at offset 0, before any record
    position.save()
    assert (tmp_path / "partition-0" / "position").read_bytes() == b'{"next":0}\n'
    position.took(41)
    position.took(7)  # never back: a record handed over again does not move it
    position.save()
    with pytest.raises(PositionHeld):
        PositionFile(tmp_path / "partition-0")
    position.close()
    again = PositionFile(tmp_path / "partition-0")
    assert again.next == 42
    again.close()


def test_a_damaged_position_file_is_a_clear_error_and_frees_its_lock(tmp_path: Path) -> None:
    directory = tmp_path / "partition-0"
    directory.mkdir()
    (directory / "position").write_bytes(b"{not json")
    with pytest.raises(ValueError, match="not a position"):
        PositionFile(directory)
    (directory / "position").write_bytes(b'{"next": 5}')
    reopened = PositionFile(directory)
    assert reopened.next == 5
    reopened.close()
