"""`detector replay` end to end: inputs merged in event time, --since/--until,
--only-source and --output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.files import read_paths
from tests.e2e.test_replay_scenarios import (
    ROOT,
    SCENARIOS,
    compare,
    expected,
    replay,
)

FIXTURES = ROOT / "tests" / "fixtures" / "sources"

EVERY_EVENT = """
title: Any event
id: 7d0c2b9e-0000-4000-8000-000000000001
logsource: {product: cicd}
detection: {selection: {event.id|exists: true}, condition: selection}
"""


def detector(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=120,
    )


def summary(result: subprocess.CompletedProcess[bytes]) -> str:
    return " ".join(result.stderr.decode().split())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_one_file_per_source_with_bounded_lateness_gives_the_expected_detections(
    scenario: Path, tmp_path: Path
) -> None:
    produced = replay(scenario, scenario / "logs", tmp_path, "--allowed-lateness", "10m")
    compare(produced, expected(scenario))
    assert not (tmp_path / "dead.jsonl").exists()


def test_three_interleaved_sources_give_the_detections_of_the_sorted_file(
    tmp_path: Path,
) -> None:
    scenario = ROOT / "replay" / "01-stolen-github-token"
    stage = NormalizeStage(build_registry(SourcesSettings()))
    timed = []
    for record in read_paths([str(scenario / "logs")]):
        [item] = list(stage.process(record))
        assert isinstance(item, Event), record.origin
        key = (item.timestamp, item.event_source, item.event_id)
        timed.append((key, item.event_source, record.data))
    timed.sort()
    sorted_file = tmp_path / "sorted" / "all.jsonl"
    sorted_file.parent.mkdir()
    sorted_file.write_bytes(b"".join(data + b"\n" for _, _, data in timed))
    sources = sorted({source for _, source, _ in timed})
    assert len(sources) >= 3
    split = tmp_path / "split"
    split.mkdir()
    for part in range(3):
        chosen = sources[part::3]
        (split / f"part-{part}.jsonl").write_bytes(
            b"".join(data + b"\n" for _, source, data in timed if source in chosen)
        )
    options = ("--rules", "rules", "--allowed-lateness", "0")
    whole = detector("replay", sorted_file, *options, "--dead-letter", tmp_path / "a.dead")
    merged = detector("replay", split, *options, "--dead-letter", tmp_path / "b.dead")
    assert whole.returncode == 0 and merged.returncode == 0, merged.stderr.decode()
    assert len(whole.stdout.splitlines()) >= len(expected(scenario))
    assert merged.stdout == whole.stdout
    assert "late 0 (dead-lettered)" in summary(merged)
    assert not (tmp_path / "b.dead").exists()


def _github(when: datetime, document_id: str) -> dict[str, Any]:
    line = (FIXTURES / "github" / "audit.jsonl").read_bytes().splitlines()[0]
    record: dict[str, Any] = orjson.loads(line)
    epoch_ms = int(when.timestamp() * 1000)
    record.update({"@timestamp": epoch_ms, "created_at": epoch_ms, "_document_id": document_id})
    return record


def _gitlab(when: datetime, event_id: str) -> dict[str, Any]:
    line = (FIXTURES / "gitlab" / "stream.jsonl").read_bytes().splitlines()[0]
    record: dict[str, Any] = orjson.loads(line)
    record.update({"id": event_id, "created_at": when.isoformat().replace("+00:00", "Z")})
    return record


def at(minute: int) -> datetime:
    return datetime(2025, 3, 11, 10, minute, tzinfo=UTC)


def _logs(directory: Path) -> Path:
    """GitHub at 10:00, 10:05 and 10:10; GitLab at 10:05."""
    directory.mkdir()
    github = [_github(at(minute), f"gh-{minute}") for minute in (0, 5, 10)]
    (directory / "github.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in github))
    (directory / "gitlab.jsonl").write_bytes(orjson.dumps(_gitlab(at(5), "gl-5")) + b"\n")
    return directory


def _replay(tmp_path: Path, *options: str | Path) -> tuple[list[str], str]:
    rules = tmp_path / "every.yml"
    rules.write_text(EVERY_EVENT)
    logs = tmp_path / "logs"
    if not logs.exists():
        _logs(logs)
    dead = tmp_path / "dead.jsonl"
    result = detector("replay", logs, "--rules", rules, "--dead-letter", dead, *options)
    assert result.returncode == 0, result.stderr.decode()
    assert not dead.exists()
    ids = [orjson.loads(line)["evidence"][0]["id"] for line in result.stdout.splitlines()]
    return ids, summary(result)


def test_since_is_inclusive_and_until_exclusive(tmp_path: Path) -> None:
    ids, text = _replay(
        tmp_path, "--since", "2025-03-11T10:05:00Z", "--until", "2025-03-11T11:10:00+01:00"
    )
    assert ids == ["gh-5", "gl-5"]
    assert "read 4 · normalized 4 · dead-lettered 0" in text
    assert "filtered 2 events (outside --since/--until/--only-source)" in text


def test_only_source_keeps_the_named_sources(tmp_path: Path) -> None:
    ids, text = _replay(tmp_path, "--only-source", "gitlab", "--since", "2025-03-11T10:01Z")
    assert ids == ["gl-5"]
    assert "filtered 3 events" in text
    ids, _ = _replay(tmp_path, "--only-source", "gitlab", "--only-source", "github")
    assert ids == ["gh-0", "gh-5", "gl-5", "gh-10"]


def test_filtered_events_are_not_late(tmp_path: Path) -> None:
    # the GitHub file alone, newest first: with lateness 0 the older events would be late
    # for the correlations, but --until keeps them from the engine altogether
    logs = tmp_path / "logs"
    logs.mkdir()
    newest_first = [_github(at(minute), f"gh-{minute}") for minute in (10, 5, 0)]
    (logs / "github.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in newest_first))
    ids, text = _replay(tmp_path, "--allowed-lateness", "0", "--since", "2025-03-11T10:06Z")
    assert ids == ["gh-10"]
    assert "filtered 2 events" in text
    assert "late 0 (dead-lettered)" in text


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--since", "2025-03-11T10:00", "time has no zone: '2025-03-11T10:00'"),
        ("--until", "yesterday", "not an ISO 8601 time: 'yesterday'"),
        ("--only-source", "bitbucket", "--only-source bitbucket: unknown"),
    ],
)
def test_bad_selection_is_a_usage_error(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = detector("replay", _logs(tmp_path / "logs"), option, value)
    assert result.returncode == 2
    assert message in summary(result)


def test_since_after_until_is_a_usage_error(tmp_path: Path) -> None:
    result = detector(
        "replay",
        _logs(tmp_path / "logs"),
        "--since",
        "2025-03-11T11:00Z",
        "--until",
        "2025-03-11T10:00Z",
    )
    assert result.returncode == 2
    assert "--since must be before --until" in summary(result)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_output_appends_detections_to_a_file(tmp_path: Path) -> None:
    rules = tmp_path / "every.yml"
    rules.write_text(EVERY_EVENT)
    logs = _logs(tmp_path / "logs")
    common: Sequence[str | Path] = ("--rules", rules, "--dead-letter", tmp_path / "dead")
    on_stdout = detector("replay", logs, *common)
    output = tmp_path / "out" / "detections.jsonl"
    to_file = detector("replay", logs, *common, "--output", output)
    assert to_file.returncode == 0, to_file.stderr.decode()
    assert to_file.stdout == b""
    assert output.read_bytes() == on_stdout.stdout
    assert len(_lines(output)) == 4
    # a second run appends (a replay makes the same ids again: consumers deduplicate by id)
    again = detector("replay", logs, *common, "--output", output, "--since", "2025-03-11T10:10Z")
    assert again.returncode == 0, again.stderr.decode()
    assert _lines(output) == [*on_stdout.stdout.splitlines(), on_stdout.stdout.splitlines()[-1]]


def test_output_with_checkpoints_is_the_uninterrupted_output(tmp_path: Path) -> None:
    rules = tmp_path / "every.yml"
    rules.write_text(EVERY_EVENT)
    logs = _logs(tmp_path / "logs")
    state = tmp_path / "replay.checkpoint"
    common = ("--rules", rules, "--dead-letter", tmp_path / "dead", "--checkpoint", state)
    output = tmp_path / "detections.jsonl"
    first = detector("replay", logs, *common, "--checkpoint-every", "1", "--output", output)
    assert first.returncode == 0, first.stderr.decode()
    written = output.read_bytes()
    resumed = detector("replay", logs, *common, "--from-checkpoint", "--output", output)
    assert resumed.returncode == 0, resumed.stderr.decode()
    # the final checkpoint covers every record: resuming adds nothing to the file
    assert output.read_bytes() == written
    assert "resumed after 4 records" in summary(resumed)


def test_events_out_of_order_within_one_file_beyond_the_lateness_are_late(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    newest_first = [_github(at(minute), f"gh-{minute}") for minute in (10, 0)]
    (logs / "github.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in newest_first))
    rules = tmp_path / "rules.yml"
    rules.write_text(
        EVERY_EVENT
        + """---
title: Two events
id: 7d0c2b9e-0000-4000-8000-000000000002
correlation: {type: event_count, rules: [7d0c2b9e-0000-4000-8000-000000000001],
              group-by: [event.source], timespan: 1h, condition: {gte: 2}, generate: true}
"""
    )
    dead = tmp_path / "dead.jsonl"
    result = detector(
        "replay", logs, "--rules", rules, "--dead-letter", dead, "--allowed-lateness", "5m"
    )
    assert result.returncode == 0, result.stderr.decode()
    [letter] = [orjson.loads(line) for line in _lines(dead)]
    assert letter["reason"] == (
        "late: event time 2025-03-11T10:00:00.000000Z is before the correlation watermark "
        "2025-03-11T10:05:00.000000Z"
    )
    assert letter["origin"] == "github:gh-0"
    assert "late 1 (dead-lettered)" in summary(result)
    # the single-event rule still fires on both; the correlation sees one event only
    rule_ids = [orjson.loads(line)["rule"]["id"] for line in result.stdout.splitlines()]
    assert rule_ids == ["7d0c2b9e-0000-4000-8000-000000000001"] * 2
