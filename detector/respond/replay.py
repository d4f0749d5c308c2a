"""Playbooks in a replay: what would have run, recorded, and nothing run.

The responder is dry (it refuses to execute, approve or undo anything, and keeps its
state in memory), so replaying an incident shows which actions its detections would have
planned, with the mode each would have run in, without a single API call.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from detector.detections import Detection
from detector.events import Event
from detector.respond.factory import open_responder
from detector.respond.recent import RecentEvents
from detector.respond.settings import RespondersSettings


class ReplayResponder:
    """Takes the replay's events and detections; writes action records to `output`."""

    def __init__(self, settings: RespondersSettings, playbooks: list[Path], output: Path) -> None:
        self._responder = open_responder(settings, playbooks=playbooks, dry=True, audit=output)
        self._loop = asyncio.new_event_loop()
        self._recent = RecentEvents()
        self.counts: Counter[str] = Counter()

    def seen(self, event: Event) -> None:
        """An event about to be matched: kept, for the detections it may be evidence of."""
        self._recent.seen(event)

    def detected(self, detection: Detection) -> None:
        event = self._recent.behind(detection)
        records = self._loop.run_until_complete(self._responder.handle(detection, event))
        self.counts.update(record.status for record in records)

    def close(self) -> None:
        self._responder.close()
        self._loop.close()

    def summary(self) -> str:
        counted = " · ".join(f"{status} {n}" for status, n in sorted(self.counts.items()))
        return f"responders (dry run, nothing executed): {counted or 'no action planned'}"
