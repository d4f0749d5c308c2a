"""An incident scenario of `replay/` as a drill sends it: every raw record with its source
and event time, in event-time order, and the detections it must produce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from detector.events import Event
from detector.normalize import NormalizeStage
from detector.pipeline import file_records
from detector.sources.files import expand_paths


class ScenarioError(ValueError):
    """The directory is not a scenario (no logs/ or no expected.jsonl), or a record of it
    cannot be read."""


@dataclass(frozen=True)
class TimedRecord:
    """One raw record of the scenario: the bytes as the vendor wrote them."""

    time: datetime
    source: str
    data: bytes


@dataclass(frozen=True)
class Expected:
    """A detection the scenario must produce, matched by rule and group: its id depends on
    event time, which a drill moves."""

    rule: str
    title: str
    group: str | None

    @classmethod
    def of(cls, line: dict[str, Any]) -> Expected:
        """A line of `expected.jsonl`: `rule` (id), `title`, `group`."""
        return cls(str(line["rule"]), str(line.get("title", line["rule"])), group_key(line))

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.rule, self.group)


def group_key(detection: dict[str, Any]) -> str | None:
    """A detection's group as comparable text (None: not a correlation's)."""
    group = detection.get("group")
    return None if group is None else orjson.dumps(group, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class Scenario:
    records: list[TimedRecord]
    expected: list[Expected]

    @property
    def end(self) -> datetime:
        return self.records[-1].time


def load_scenario(directory: Path, stage: NormalizeStage) -> Scenario:
    """The records of `directory/logs` in event-time order and `expected.jsonl`; each
    record's time and source are what `stage` reads from it (the earliest event of an
    envelope)."""
    logs, wanted = directory / "logs", directory / "expected.jsonl"
    if not logs.is_dir() or not wanted.is_file():
        raise ScenarioError(f"{directory}: a scenario has logs/ and expected.jsonl")
    records = []
    for name in expand_paths([str(logs)]):
        for raw in file_records(name, stage):
            events = [item for item in stage.process(raw) if isinstance(item, Event)]
            if not events:
                raise ScenarioError(f"{raw.origin}: the record does not normalize")
            first = min(events, key=lambda event: event.timestamp)
            records.append(TimedRecord(first.timestamp, first.event_source, raw.data))
    if not records:
        raise ScenarioError(f"{logs}: no records")
    records.sort(key=lambda record: record.time)
    lines = wanted.read_bytes().splitlines()
    return Scenario(records, [Expected.of(orjson.loads(line)) for line in lines if line.strip()])
