"""Dead letters of a sink: detections it could not deliver, with the reason.

One JSON line each, on disk before the outbox forgets the detection:

    {"reason":"HTTP 400: invalid_payload","sink":"oncall","attempts":1,
     "enqueued_at":"…Z","dead_lettered_at":"…Z","detection":{…}}

The detection is kept whole, so it can be sent again once the cause is fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from detector.sinks.durable import AppendLog
from detector.sinks.outbox import Pending
from detector.timestamps import format_timestamp


def _time(seconds: float) -> str:
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


class SinkDeadLetters:
    """The dead-letter file of one sink (JSON lines, appended durably), created on the first
    dead letter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log: AppendLog | None = None

    def write(self, sink: str, pending: Pending, reason: str, now: float) -> None:
        if self._log is None:
            self._log = AppendLog(self.path)
        self._log.append(
            orjson.dumps(
                {
                    "reason": reason,
                    "sink": sink,
                    "attempts": pending.attempts,
                    "enqueued_at": _time(pending.enqueued_at),
                    "dead_lettered_at": _time(now),
                    "detection": orjson.Fragment(pending.detection.to_json()),
                }
            )
        )

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
