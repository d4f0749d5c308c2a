"""Detections as JSON lines, on standard output or appended to a file (a SIEM forwarder
tails it).

A line counts as delivered once it is written and flushed, and for a file fsynced too
(`AppendLog`), since the outbox forgets it next. Writes run in a thread so a reader
that stops reading standard output stalls this sink only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from detector.detections import Detection
from detector.sinks.base import DELIVERED, Outcome, Retry, Sink
from detector.sinks.durable import AppendLog


class JsonLinesSink(Sink):
    """Writes `detection.to_json()` lines to `path`, or to standard output when it is None."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        super().__init__(name)
        self.path = path
        self._log: AppendLog | None = None

    async def send(self, detection: Detection) -> Outcome:
        try:
            await asyncio.to_thread(self._write, detection.to_json())
        except OSError as exc:
            return Retry(f"{type(exc).__name__}: {exc}")
        return DELIVERED

    def _write(self, line: bytes) -> None:
        if self.path is None:
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.buffer.flush()
            return
        if self._log is None:
            self._log = AppendLog(self.path)
        self._log.append(line)

    async def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
