"""Control records between the stages, and the event-time watermark they carry.

A stage that reads several upstream partitions (the correlators read what every raw
partition's normalizer sent) may only decide a window once no upstream can still send an
event inside it. Each upstream (a raw topic partition, named `topic:partition`) tells
every downstream partition how far its event time has come (`tick`), that it has had no
records for a while (`idle`: do not wait for it), and, for a replay, that a run starts
(`start`) or that its input is complete (`end`). Control records travel in the same
partitions as the data, after it, so a downstream partition that has an upstream's tick
has everything that upstream sent before it.

The watermark of a downstream partition is the oldest newest-time over its upstreams;
the correlation engine subtracts the allowed lateness from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

#: the Kafka header that marks a control record; its value is the kind
HEADER = "detector-control"
START, TICK, IDLE, END = "start", "tick", "idle", "end"
#: the first record of every partition a new topic gets (see `admin.ensure_topics`)
NOOP = "noop"
KINDS = frozenset({START, TICK, IDLE, END, NOOP})


def control_kind(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> str | None:
    """The kind of a control record, None for data."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name == HEADER:
            kind = value.decode("ascii", "replace")
            return kind if kind in KINDS else None
    return None


def control_headers(kind: str) -> list[tuple[str, bytes]]:
    return [(HEADER, kind.encode("ascii"))]


def encode(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


@dataclass
class UpstreamClock:
    """The watermark of one downstream partition over `expected` upstream partitions.

    Live, every upstream must have been heard (a tick or an idle) before there is a
    watermark. A replay (`start` of a run) holds it until every upstream has started, and
    `finished` once every upstream has ended; ended upstreams no longer hold it.
    """

    expected: int
    newest: dict[str, int | None] = field(default_factory=dict)
    idle: set[str] = field(default_factory=set)
    run: str | None = None
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    finished_runs: list[str] = field(default_factory=list)

    def saw(self, upstream: str, time: int) -> None:
        """`upstream` has sent everything up to event time `time`."""
        known = self.newest.get(upstream)
        if known is None or time > known:
            self.newest[upstream] = time
        self.idle.discard(upstream)

    def went_idle(self, upstream: str) -> None:
        self.newest.setdefault(upstream, None)
        self.idle.add(upstream)

    def start(self, upstream: str, run: str) -> None:
        if run in self.finished_runs:
            return  # redelivered after the run was complete
        if run != self.run:
            self.run, self.started, self.ended = run, set(), set()
        self.started.add(upstream)
        self.newest[upstream] = None  # what it sent before the run says nothing of it
        self.idle.discard(upstream)

    def end(self, upstream: str, run: str) -> None:
        if run == self.run and upstream in self.started:
            self.ended.add(upstream)

    @property
    def finished(self) -> bool:
        """Every upstream has ended the run: decide everything."""
        return self.run is not None and len(self.ended) >= self.expected

    def complete(self) -> str:
        """The run is decided: forget it (its late duplicates are ignored) and go live."""
        assert self.run is not None
        run = self.run
        self.finished_runs = [*self.finished_runs[-15:], run]
        self.run, self.started, self.ended = None, set(), set()
        self.newest, self.idle = {}, set()
        return run

    def watermark(self) -> int | None:
        """The event time every upstream has passed; None while one is still unheard."""
        if self.run is not None and len(self.started) < self.expected:
            return None
        if self.run is None and len(self.newest) < self.expected:
            return None
        live = [
            time
            for upstream, time in self.newest.items()
            if upstream not in self.idle and upstream not in self.ended
        ]
        if not live or any(time is None for time in live):
            return None
        return min(time for time in live if time is not None)

    def snapshot(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "idle": sorted(self.idle),
            "run": self.run,
            "started": sorted(self.started),
            "ended": sorted(self.ended),
            "finished_runs": self.finished_runs,
        }

    @classmethod
    def restore(cls, expected: int, data: Mapping[str, Any]) -> UpstreamClock:
        return cls(
            expected,
            dict(data["newest"]),
            set(data["idle"]),
            data["run"],
            set(data["started"]),
            set(data["ended"]),
            list(data["finished_runs"]),
        )
