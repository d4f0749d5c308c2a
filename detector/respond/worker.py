"""The responder in the live service: detections queue up and are handled one at a time,
off the pipeline's path, so a slow API never holds back detection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from detector.detections import Detection
from detector.events import Event
from detector.respond.recent import RecentEvents
from detector.respond.responder import Responder

log = logging.getLogger("detector.respond")

#: pending approvals are checked for expiry at least this often (seconds)
EXPIRY_SWEEP = 30.0


class ResponderWorker:
    """Feeds detections to a responder from an asyncio queue."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self._queue: asyncio.Queue[tuple[Detection, Event | None] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._recent = RecentEvents()

    def seen(self, event: Event) -> None:
        """An event about to be matched: kept, for the detections it may be evidence of."""
        self._recent.seen(event)

    def submit(self, detection: Detection, event: Event | None = None) -> None:
        """Queue `detection` with the event behind it: `event` when the caller has it,
        else the one kept by `seen`, if still kept."""
        self._queue.put_nowait((detection, event or self._recent.behind(detection)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Handle what is queued, then stop."""
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task
        self.responder.close()

    async def _run(self) -> None:
        while True:
            item = None
            with contextlib.suppress(TimeoutError):
                item = await asyncio.wait_for(self._queue.get(), EXPIRY_SWEEP)
                if item is None:
                    return
            try:
                if item is None:
                    self.responder.expire()
                else:
                    await self.responder.handle(*item)
            except Exception:  # the next detections must not pay for this one
                log.exception("responder failed on a detection")
