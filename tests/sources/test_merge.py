"""Inputs merged in event-time order: the k-way merge, and the replay pipeline's use of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from detector.config import SourcesSettings
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import EventSelection, RunCounts, normalized_events
from detector.sources.merge import merge_by_event_time

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


def at(minute: int, second: int = 0, millisecond: int = 0) -> datetime:
    return datetime(2025, 3, 4, 6, minute, second, millisecond * 1000, tzinfo=UTC)


def event(when: datetime, source: str, event_id: str) -> Event:
    return Event(
        timestamp=when,
        event_id=event_id,
        event_source=source,
        event_action="test",
        raw={},
    )


def letter(origin: str) -> DeadLetter:
    return DeadLetter("not JSON", origin, b"garbage")


def labels(results: list[Event | DeadLetter]) -> list[str]:
    return [r.event_id if isinstance(r, Event) else r.origin for r in results]


def test_inputs_are_interleaved_by_time_then_source_then_id() -> None:
    github = [event(at(1), "github", "g1"), event(at(3), "github", "g3")]
    gitlab = [event(at(2), "gitlab", "l2"), event(at(3), "gitlab", "l3")]
    kubernetes = [event(at(3), "kubernetes", "k3b"), event(at(4), "kubernetes", "k4")]
    also_github = [event(at(3), "github", "g3a")]
    merged = list(merge_by_event_time([kubernetes, gitlab, github, also_github]))
    assert labels(merged) == ["g1", "l2", "g3", "g3a", "l3", "k3b", "k4"]


def test_a_record_out_of_order_within_its_input_is_not_sorted() -> None:
    # the merge compares heads only: 06:01 comes out where its input reaches it, and the
    # correlation engine's reorder buffer deals with it
    late_in_file = [event(at(5), "github", "a"), event(at(1), "github", "b")]
    other = [event(at(2), "gitlab", "c"), event(at(6), "gitlab", "d")]
    assert labels(list(merge_by_event_time([late_in_file, other]))) == ["c", "a", "b", "d"]


def test_dead_letters_flow_beside_the_record_before_them_in_read_order() -> None:
    first: list[Event | DeadLetter] = [
        letter("a.log:1"),
        event(at(2), "github", "g2"),
        letter("a.log:3"),
        letter("a.log:4"),
        event(at(5), "github", "g5"),
    ]
    second: list[Event | DeadLetter] = [event(at(1), "gitlab", "l1"), event(at(3), "gitlab", "l3")]
    merged = list(merge_by_event_time([second, first]))
    assert labels(merged) == ["a.log:1", "l1", "g2", "a.log:3", "a.log:4", "l3", "g5"]


def test_inputs_are_read_lazily_one_result_ahead() -> None:
    pulled: list[str] = []

    def stream(source: str, minutes: list[int]) -> Iterator[Event]:
        for minute in minutes:
            pulled.append(f"{source}{minute}")
            yield event(at(minute), source, f"{source}{minute}")

    merged = merge_by_event_time([stream("a", [1, 4, 5]), stream("b", [2, 3, 6])])
    assert labels([next(merged), next(merged)]) == ["a1", "b2"]
    assert pulled == ["a1", "b2", "a4"]


def _github_line(when: datetime, document_id: str) -> bytes:
    record: dict[str, Any] = orjson.loads(
        (FIXTURES / "github" / "audit.jsonl").read_bytes().splitlines()[0]
    )
    epoch_ms = int(when.timestamp() * 1000)
    record.update({"@timestamp": epoch_ms, "created_at": epoch_ms, "_document_id": document_id})
    return orjson.dumps(record) + b"\n"


def _inputs(directory: Path) -> list[str]:
    """A Jenkins audit trail whose script-console entry spans three lines (06:26:00, then
    06:27:13) and a GitHub log (06:26:30, a broken line, 06:28:00)."""
    directory.mkdir()
    jenkins_lines = (FIXTURES / "jenkins" / "audit.log").read_bytes().splitlines(keepends=True)
    jenkins = directory / "jenkins.log"
    jenkins.write_bytes(b"".join(jenkins_lines[4:8]))
    github = directory / "github.jsonl"
    github.write_bytes(
        _github_line(at(26, 30), "gh-1") + b"{broken\n" + _github_line(at(28), "gh-2")
    )
    return [str(github), str(jenkins)]


def test_each_file_is_joined_on_its_own_then_merged(tmp_path: Path) -> None:
    files = _inputs(tmp_path / "logs")
    stage = NormalizeStage(build_registry(SourcesSettings()))
    counts = RunCounts()
    with DeadLetterFile(tmp_path / "dead.jsonl") as letters:
        events = list(normalized_events(files, stage, letters, counts, merged=True))
    assert [(e.timestamp, e.event_source) for e in events] == [
        (at(26), "jenkins"),
        (at(26, 30), "github"),
        (at(27, 13, 402), "jenkins"),
        (at(28), "github"),
    ]
    assert events[0].raw["message"].endswith('The executed script: \nprintln "id".execute().text')
    assert (counts.read, counts.normalized, counts.dead_lettered) == (5, 4, 1)
    [dead] = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert dead["origin"] == f"{files[0]}:2"


def test_skipping_counts_merged_results_and_the_selection_filters(tmp_path: Path) -> None:
    files = _inputs(tmp_path / "logs")
    stage = NormalizeStage(build_registry(SourcesSettings()))
    counts = RunCounts()
    selection = EventSelection(since=at(26, 30), until=at(28), sources=frozenset({"jenkins"}))
    with DeadLetterFile(tmp_path / "dead.jsonl") as letters:
        events = list(
            normalized_events(
                files, stage, letters, counts, skip=2, merged=True, selection=selection
            )
        )
    # skipped: the 06:26 script and the 06:26:30 GitHub record; then the broken line,
    # 06:27:13 (kept) and 06:28:00 (GitHub, and at --until: filtered)
    assert [(e.timestamp, e.event_source) for e in events] == [(at(27, 13, 402), "jenkins")]
    assert (counts.skipped, counts.read, counts.dead_lettered, counts.filtered) == (2, 3, 1, 1)
