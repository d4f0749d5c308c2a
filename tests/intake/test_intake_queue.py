"""The record queue: bounded by memory, batches whole or not at all, closing drains."""

from __future__ import annotations

import asyncio
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.intake.queue import QueueClosedError, RecordQueue, footprint
from detector.sources.records import RawRecord


def record(n: int, size: int = 100) -> RawRecord:
    return RawRecord(b"x" * size, f"http:gitlab:r{n:04d}", "gitlab")


COST = footprint(record(0))


def test_footprint_counts_the_object_its_bytes_and_its_origin() -> None:
    one = record(1)
    assert footprint(one) == (
        sys.getsizeof(one) + sys.getsizeof(one.data) + sys.getsizeof(one.origin)
    )
    assert footprint(record(1, size=1100)) == footprint(one) + 1000


async def test_batches_are_queued_whole_or_not_at_all() -> None:
    queue = RecordQueue(3 * COST)
    assert queue.offer([record(1), record(2)])
    assert not queue.offer([record(3), record(4)])
    assert (len(queue), queue.used) == (2, 2 * COST)
    assert queue.offer([record(3)])
    assert not queue.offer([record(4)])
    assert [(await queue.get()).origin for _ in range(3)] == [
        "http:gitlab:r0001",
        "http:gitlab:r0002",
        "http:gitlab:r0003",
    ]
    assert (len(queue), queue.used) == (0, 0)


async def blocked_in_get(queue: RecordQueue) -> asyncio.Task[list[str]]:
    """A consumer of `queue`, returned once it waits inside `get` of the empty queue."""
    started = asyncio.Event()

    async def consume() -> list[str]:
        started.set()  # no await between this and the wait inside `get`
        return [r.origin async for r in queue]

    consumer = asyncio.create_task(consume())
    await started.wait()
    return consumer


async def test_a_waiting_consumer_gets_records_as_they_come() -> None:
    queue = RecordQueue(10 * COST)
    consumer = await blocked_in_get(queue)
    assert not consumer.done()
    queue.offer([record(7)])
    queue.offer([record(8)])
    queue.close()
    assert await consumer == ["http:gitlab:r0007", "http:gitlab:r0008"]


async def test_closing_refuses_new_records_and_drains_the_queued_ones() -> None:
    queue = RecordQueue(10 * COST)
    queue.offer([record(1), record(2)])
    consumer = asyncio.create_task(_collect(queue))
    queue.close()
    with pytest.raises(QueueClosedError):
        queue.offer([record(3)])
    assert await consumer == ["http:gitlab:r0001", "http:gitlab:r0002"]
    with pytest.raises(QueueClosedError):
        await queue.get()


async def test_closing_wakes_a_waiting_consumer() -> None:
    queue = RecordQueue(COST)
    consumer = await blocked_in_get(queue)
    queue.close()
    assert await consumer == []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RecordQueue(0)


async def _collect(queue: RecordQueue) -> list[str]:
    return [r.origin async for r in queue]


@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
    limit=st.integers(1, 50),
    budget=st.integers(0, 20_000),
)
def test_take_keeps_the_order_and_holds_at_most_its_budget_or_one_record(
    sizes: list[int], limit: int, budget: int
) -> None:
    async def drain() -> list[list[RawRecord]]:
        queue = RecordQueue(sum(footprint(record(0, size)) for size in sizes) + 1)
        assert queue.offer([record(n, size) for n, size in enumerate(sizes)])
        queue.close()
        batches = []
        while True:
            used = queue.used
            try:
                batch = await queue.take(limit, budget)
            except QueueClosedError:
                return batches
            assert used - queue.used == sum(map(footprint, batch))  # no longer counted
            batches.append(batch)

    batches = asyncio.run(drain())
    taken = [one for batch in batches for one in batch]
    assert [one.origin for one in taken] == [record(n).origin for n in range(len(sizes))]
    for number, batch in enumerate(batches):
        assert 1 <= len(batch) <= limit
        assert len(batch) == 1 or sum(map(footprint, batch)) <= budget
        if number + 1 < len(batches) and len(batch) < limit:
            # stopped at the budget: the next record would have gone past it
            assert sum(map(footprint, batch)) + footprint(batches[number + 1][0]) > budget
