"""The bounded queue between the HTTP intake and the pipeline.

Capacity is counted in bytes of memory, not in records: a Kubernetes webhook batch is
one record of up to 400 events and megabytes, a generic JSON-lines body can be
thousands of tiny records, and only memory says what either costs. A record costs its
`footprint` (the object, its bytes and its origin), so many small records cannot
exceed the bound through per-object overhead either. Batches enter whole or not at
all. The queue belongs to one event loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence

from detector.sources.records import RawRecord


class QueueClosedError(Exception):
    """The queue takes no more records (and, from `get`, has none left)."""


def footprint(record: RawRecord) -> int:
    """Approximate bytes of memory a queued record holds."""
    return sys.getsizeof(record) + sys.getsizeof(record.data) + sys.getsizeof(record.origin)


class RecordQueue:
    """FIFO of raw records, bounded by `capacity` bytes of footprint."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._items: deque[RawRecord] = deque()
        self._used = 0
        self._closed = False
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def used(self) -> int:
        """Bytes of footprint held now."""
        return self._used

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, records: Sequence[RawRecord]) -> bool:
        """Queue every record of `records`, or none when they do not all fit (False)."""
        if self._closed:
            raise QueueClosedError("the queue is closed")
        cost = sum(map(footprint, records))
        if self._used + cost > self.capacity:
            return False
        self._items.extend(records)
        self._used += cost
        self._ready.set()
        return True

    async def get(self) -> RawRecord:
        """The oldest record, waiting for one; `QueueClosedError` once closed and empty."""
        [record] = await self.take(1, 0)
        return record

    async def take(self, limit: int, budget: int) -> list[RawRecord]:
        """The oldest records, waiting for one at least: up to `limit` of them and
        `budget` bytes of footprint in all (the first whatever its size), which is what
        the consumer then holds outside the bound of the queue; `QueueClosedError` once
        closed and empty. A consumer takes what has come in one step, not one await per
        record."""
        while not self._items:
            if self._closed:
                raise QueueClosedError("the queue is closed and empty")
            self._ready.clear()
            await self._ready.wait()
        items = self._items
        first = items.popleft()
        batch, taken = [first], footprint(first)
        while items and len(batch) < limit:
            cost = footprint(items[0])
            if taken + cost > budget:
                break
            batch.append(items.popleft())
            taken += cost
        self._used -= taken
        return batch

    def close(self) -> None:
        """Refuse new records; consumers still receive the queued ones, then stop."""
        self._closed = True
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[RawRecord]:
        """Every record until the queue is closed and drained."""
        while True:
            try:
                yield await self.get()
            except QueueClosedError:
                return
