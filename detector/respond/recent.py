"""The last events seen, by id, so a playbook can read the event behind a detection.

A detection carries only a summary of its evidence; a correlation is often decided on
a later event than its last evidence (when the event-time watermark passes). Templates
see the full normalized event of the detection's last evidence when it is among the
last `capacity` events; otherwise `event` is empty and a template that needs it fails
(the action is recorded `failed`, with the reason, and nothing runs).
"""

from __future__ import annotations

from collections import OrderedDict

from detector.detections import Detection
from detector.events import Event

#: events kept; memory grows with it (a normalized event keeps its raw record)
CAPACITY = 4096


class RecentEvents:
    """A bounded map (source, event id) → event, oldest dropped first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._events: OrderedDict[tuple[str, str], Event] = OrderedDict()

    def seen(self, event: Event) -> None:
        key = (event.event_source, event.event_id)
        self._events[key] = event
        self._events.move_to_end(key)
        if len(self._events) > self.capacity:
            self._events.popitem(last=False)

    def behind(self, detection: Detection) -> Event | None:
        """The event of the detection's last evidence, if it is still kept."""
        if not detection.evidence:
            return None
        last = detection.evidence[-1]
        return self._events.get((last.source, last.id))
