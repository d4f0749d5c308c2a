"""The Kafka runtime's stages, without a broker: the shipped scenarios split over
partitions give the embedded replay's detections, also when every record is delivered
twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from detector.config import Settings
from detector.deadletter import DeadLetterFile
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import RunCounts, normalized_events, replay_detections
from detector.runtime.kafka.control import END, START, TICK
from detector.runtime.kafka.stages import PartitionCorrelator, RawStage
from detector.runtime.ruleset import build_rule_set
from detector.sources.files import expand_paths
from detector.sources.records import RawRecord

ROOT = Path(__file__).resolve().parents[2]
LOGS = [str(path) for path in sorted((ROOT / "replay").glob("[0-9][0-9]-*/logs"))]
RUN = orjson.dumps({"u": "raw:0", "run": "r1"})


def embedded(tmp_path: Path) -> set[bytes]:
    settings = Settings()
    registry = build_registry(settings.sources)
    stage = build_rule_set(settings, registry).stage
    with DeadLetterFile(tmp_path / "embedded.dead") as letters:
        detections = replay_detections(
            expand_paths(LOGS), NormalizeStage(registry), stage, letters, RunCounts()
        )
        return {detection.to_json() for detection in detections}


class Partitions:
    """`detector.hits` as lists, fed to one correlator per partition."""

    def __init__(self, count: int, twice: bool) -> None:
        settings = Settings()
        self.registry = build_registry(settings.sources)
        rule_set = build_rule_set(settings, self.registry)
        self.raw = RawStage(NormalizeStage(self.registry), rule_set.stage, count)
        self.correlators = [PartitionCorrelator(rule_set.new_engine, 1) for _ in range(count)]
        self.offsets = [0] * count
        self.twice = twice
        self.out: list[bytes] = []

    def send(self, partition: int, kind: str | None, value: bytes) -> None:
        for _ in range(2 if self.twice else 1):  # a redelivery has a new offset
            decided = self.correlators[partition].take(self.offsets[partition], kind, value)
            self.offsets[partition] += 1
            assert not decided.dead_letters
            self.out.extend(detection.to_json() for detection in decided.detections)

    def broadcast(self, kind: str, value: bytes) -> None:
        for partition in range(len(self.correlators)):
            self.send(partition, kind, value)

    def run(self, records: Iterator[RawRecord]) -> list[bytes]:
        self.broadcast(START, RUN)
        for offset, raw in enumerate(records):
            out = self.raw.process(raw, "raw:0", offset)
            self.out.extend(detection.to_json() for detection in out.detections)
            for partition, value in out.hits:
                self.send(partition, None, value)
            if out.newest is not None:
                self.broadcast(TICK, orjson.dumps({"u": "raw:0", "t": out.newest}))
        self.broadcast(END, RUN)
        return self.out


def raw_records(registry_stage: NormalizeStage, tmp_path: Path) -> Iterator[RawRecord]:
    with DeadLetterFile(tmp_path / "publish.dead") as letters:
        events = normalized_events(
            expand_paths(LOGS), registry_stage, letters, RunCounts(), merged=True
        )
        for event in events:
            yield RawRecord(orjson.dumps(event.raw), "test", event.event_source)


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> set[bytes]:
    detections = embedded(tmp_path_factory.mktemp("embedded"))
    assert len(detections) > 1000
    return detections


@pytest.mark.parametrize(("partitions", "twice"), [(1, False), (4, True)])
def test_partitioned_correlation_gives_the_embedded_detections(
    partitions: int, twice: bool, expected: set[bytes], tmp_path: Path
) -> None:
    hits = Partitions(partitions, twice)
    got = hits.run(raw_records(NormalizeStage(hits.registry), tmp_path))
    assert set(got) == expected
    if twice:
        # single-event detections repeat (same id, same content); correlations do not
        assert sum(c.redelivered for c in hits.correlators) > 0
    else:
        assert len(got) == len(expected)  # each decided once


class Crashing(Partitions):
    """Each correlator's state is saved every `every` records; every `crash_after`
    records a worker dies, and the next restores the saved state and gets every record
    since it again (at least once)."""

    def __init__(self, count: int, every: int, crash_after: int) -> None:
        super().__init__(count, twice=False)
        self.every, self.crash_after = every, crash_after
        self.saved = [c.snapshot() for c in self.correlators]
        self.since_saved: list[list[tuple[str | None, bytes]]] = [[] for _ in range(count)]
        self.crashes = 0

    def send(self, partition: int, kind: str | None, value: bytes) -> None:
        super().send(partition, kind, value)
        log = self.since_saved[partition]
        log.append((kind, value))
        if self.offsets[partition] % self.crash_after == 0:
            self.crashes += 1
            fresh = PartitionCorrelator(self.correlators[partition].new_engine, 1)
            fresh.restore(self.saved[partition])
            self.correlators[partition] = fresh
            for again in list(log):
                super().send(partition, *again)
        if len(log) >= self.every:
            self.saved[partition] = self.correlators[partition].snapshot()
            log.clear()


def test_a_worker_that_dies_and_is_replaced_changes_no_detection(
    expected: set[bytes], tmp_path: Path
) -> None:
    hits = Crashing(2, every=300, crash_after=1009)
    got = hits.run(raw_records(NormalizeStage(hits.registry), tmp_path))
    assert hits.crashes > 3
    assert set(got) == expected
