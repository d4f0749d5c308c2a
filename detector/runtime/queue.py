"""The intake queue as the service uses it: each record with the time it was accepted."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from itertools import repeat

from detector.intake.queue import RecordQueue
from detector.sources.records import RawRecord


class ArrivalQueue(RecordQueue):
    """A `RecordQueue` that also keeps when each record was accepted, so the latency the
    service reports includes the time a record waited in the queue."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._arrivals: deque[float] = deque()  # time.monotonic(), in the records' order

    def offer(self, records: Sequence[RawRecord]) -> bool:
        now = time.monotonic()
        if not super().offer(records):
            return False
        self._arrivals.extend(repeat(now, len(records)))
        return True

    async def take_arrivals(self, limit: int, budget: int) -> list[tuple[RawRecord, float]]:
        """The oldest records (`take`) with their arrival times; `QueueClosedError` once
        closed and empty."""
        records = await self.take(limit, budget)
        arrivals = self._arrivals
        return [(record, arrivals.popleft()) for record in records]
