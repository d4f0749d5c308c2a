"""The Kafka runtime's two stages as plain objects: no Faust, no I/O.

`RawStage`: one raw record → its events (for `audit.events`), dead letters, single-event
detections and correlation hits keyed for `detector.hits`: the embedded runtime's
`NormalizeStage`, `RuleRouter`, `SingleEventMatcher` and `CorrelationEngine.hits`.

`PartitionCorrelator`: one `detector.hits` partition: a `CorrelationEngine` fed the hits
of the groups that live there, its watermark from the upstream clock, and the position of
every upstream it has taken, so that a record delivered again (a worker died after
sending it, before committing) is not counted twice. Its whole state is one value of the
workers' changelog-backed table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.correlate import CorrelationEngine
from detector.correlate.checkpoint import gc_paused
from detector.correlate.engine import (
    Hit,
    evidence_of,
    late_letter,
    microseconds,
)
from detector.correlate.windows import load_evs
from detector.deadletter import DeadLetter
from detector.detections import Detection
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.pipeline import DetectionStage
from detector.sources.records import RawRecord

from .control import END, IDLE, NOOP, START, TICK, UpstreamClock
from .partitioning import HitPartitioner

STATE_FORMAT = 1


@dataclass
class RawOutput:
    """What one raw record gave."""

    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    #: (partition, value) for `detector.hits`
    hits: list[tuple[int, bytes]] = field(default_factory=list)
    #: the newest event time among `events` (µs), None without events
    newest: int | None = None


class RawStage:
    """Normalize and match one raw record of one upstream partition."""

    def __init__(
        self, normalize: NormalizeStage, detection: DetectionStage, partitions: int
    ) -> None:
        self.normalize = normalize
        self.detection = detection
        self.partitioner = HitPartitioner(detection.engine.rules, partitions)

    def process(self, raw: RawRecord, upstream: str, offset: int) -> RawOutput:
        out = RawOutput()
        for index, result in enumerate(self.normalize.process(raw)):
            if isinstance(result, DeadLetter):
                out.dead_letters.append(result)
                continue
            event = result
            out.events.append(event)
            time = microseconds(event.timestamp)
            if out.newest is None or time > out.newest:
                out.newest = time
            matched = self.detection.router.match(event)
            out.detections.extend(self.detection.matcher.detections_for(event, matched))
            hits = self.detection.engine.hits(event, matched)
            if not hits:
                continue
            evidence = evidence_of(event, time)
            for partition, part in self.partitioner.split(hits).items():
                body = {"u": upstream, "p": [offset, index], "t": time, "e": evidence, "h": part}
                out.hits.append((partition, orjson.dumps(body)))
        return out


@dataclass
class Decided:
    """What one hits record made the correlator decide."""

    detections: list[Detection] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: the replay run whose input is now completely decided here
    finished_run: str | None = None


class PartitionCorrelator:
    """The correlations of one `detector.hits` partition."""

    def __init__(
        self,
        new_engine: Callable[[], CorrelationEngine],
        expected_upstreams: int,
    ) -> None:
        self.new_engine = new_engine
        self.engine = new_engine()
        self.clock = UpstreamClock(expected_upstreams)
        #: per upstream, the newest [raw offset, index in the record] taken
        self.positions: dict[str, list[int]] = {}
        #: the offset of the last hits record taken, -1 before the first
        self.offset = -1
        self.redelivered = 0

    def take(self, offset: int, kind: str | None, value: bytes) -> Decided:
        """One record of the partition at `offset`: a hit (kind None) or a control."""
        decided = Decided()
        if offset <= self.offset:
            self.redelivered += 1
            return decided
        self.offset = offset
        if kind == NOOP:
            return decided
        body = orjson.loads(value)
        upstream = body["u"]
        if kind is None:
            self._hit(upstream, body, value, decided)
        elif kind == TICK:
            self.clock.saw(upstream, body["t"])
        elif kind == IDLE:
            self.clock.went_idle(upstream)
        elif kind == START:
            self.clock.start(upstream, body["run"])
        elif kind == END:
            self.clock.end(upstream, body["run"])
        self._decide(decided)
        return decided

    def _hit(self, upstream: str, body: Mapping[str, Any], value: bytes, decided: Decided) -> None:
        position = body["p"]
        taken = self.positions.get(upstream)
        if taken is not None and position <= taken:
            self.redelivered += 1
            return
        self.positions[upstream] = position
        time = body["t"]
        (evidence,) = load_evs([body["e"]])
        hits: tuple[Hit, ...] = tuple(
            (i, tuple(k), tuple(s), v, tuple(c)) for i, k, s, v, c in body["h"]
        )
        if not self.engine.offer(time, evidence, hits):
            mark = self.engine.watermark
            assert mark is not None
            letter = late_letter(time, evidence[2], evidence[0], value, microseconds(mark))
            decided.dead_letters.append(letter)
        self.clock.saw(upstream, time)

    def _decide(self, decided: Decided) -> None:
        if self.clock.finished:
            decided.detections.extend(_detections(self.engine.flush()))
            decided.finished_run = self.clock.complete()
            self.engine = self.new_engine()
            return
        mark = self.clock.watermark()
        if mark is not None:
            decided.detections.extend(_detections(self.engine.advance(mark)))

    @gc_paused()
    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "format": STATE_FORMAT,
                "offset": self.offset,
                "positions": self.positions,
                "clock": self.clock.snapshot(),
                "engine": self.engine.snapshot(),
            }
        )

    @gc_paused()
    def restore(self, data: bytes) -> None:
        """Continue from a `snapshot` (the engine refuses another rule set's state)."""
        state = orjson.loads(data)
        self.engine.restore(state["engine"])
        self.offset = state["offset"]
        self.positions = {u: list(p) for u, p in state["positions"].items()}
        self.clock = UpstreamClock.restore(self.clock.expected, state["clock"])


def _detections(items: Sequence[Detection | DeadLetter]) -> Iterator[Detection]:
    return (item for item in items if isinstance(item, Detection))
