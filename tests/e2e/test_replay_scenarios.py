"""Every incident scenario under replay/ gives exactly its expected detections, also when
each log's records arrive out of order within the allowed lateness."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.files import read_paths
from detector.sources.records import RawRecord

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(path for path in (ROOT / "replay").glob("[0-9][0-9]-*") if path.is_dir())
#: records closer than this in event time may swap places; well inside --allowed-lateness 10m
SWAP_WITHIN = timedelta(minutes=2)

Key = tuple[str, str | None, tuple[str, ...]]


def key(detection: dict[str, object]) -> Key:
    """What a detection must reproduce: rule, group and evidence, independent of order."""
    rule = detection["rule"]
    rule_id = rule["id"] if isinstance(rule, dict) else rule
    group = detection.get("group")
    evidence = detection["evidence"]
    assert isinstance(evidence, list)
    ids = sorted(item["id"] if isinstance(item, dict) else item for item in evidence)
    group_text = (
        None if group is None else orjson.dumps(group, option=orjson.OPT_SORT_KEYS).decode()
    )
    return (str(rule_id), group_text, tuple(ids))


def replay(scenario: Path, logs: Path, tmp_path: Path, *extra: str) -> set[Key]:
    command = scenario / "command"
    arguments = shlex.split(command.read_text()) if command.exists() else []
    result = subprocess.run(
        [sys.executable, "-m", "detector", "replay", str(logs), "--rules", "rules",
         "--dead-letter", str(tmp_path / "dead.jsonl"), *arguments, *extra],
        cwd=ROOT, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return {key(orjson.loads(line)) for line in result.stdout.splitlines()}


def expected(scenario: Path) -> set[Key]:
    lines = (scenario / "expected.jsonl").read_bytes().splitlines()
    return {key(orjson.loads(line)) for line in lines if line.strip()}


def compare(produced: set[Key], wanted: set[Key]) -> None:
    missing, unexpected = sorted(wanted - produced, key=str), sorted(produced - wanted, key=str)
    assert not missing and not unexpected, f"missing: {missing}\nunexpected: {unexpected}"


def event_time(stage: NormalizeStage, record: RawRecord) -> datetime | None:
    """The earliest event time of a record (an envelope holds several), if it normalizes."""
    times = [item.timestamp for item in stage.process(record) if isinstance(item, Event)]
    return min(times) if times else None


def shuffled_stream(logs: Path, target: Path) -> int:
    """All records of the logs as one stream in event-time order, then neighbours less than
    SWAP_WITHIN apart swapped pair by pair: the arrival order of a live feed whose sources
    deliver a little late. Replaying the per-source files one after another with a bounded
    lateness would instead make the earlier part of every later file late. The stream is
    written as numbered files read in name order, a new one wherever it moves between JSON
    and text records (Jenkins lines), since one file holds one layout."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    timed: list[tuple[datetime, int, bytes]] = []
    for position, record in enumerate(stage.join_continuation_lines(read_paths([str(logs)]))):
        when = event_time(stage, record)
        assert when is not None, record.origin
        timed.append((when, position, record.data.strip(b"\n")))
    timed.sort()
    swaps, index = 0, 0
    while index + 1 < len(timed):
        if timed[index + 1][0] - timed[index][0] < SWAP_WITHIN:
            timed[index], timed[index + 1] = timed[index + 1], timed[index]
            swaps += 1
            index += 2
        else:
            index += 1
    target.mkdir()
    chunks: list[tuple[bool, list[bytes]]] = []
    for _, _, data in timed:
        is_json = data.lstrip().startswith(b"{")
        if not chunks or chunks[-1][0] != is_json:
            chunks.append((is_json, []))
        chunks[-1][1].append(data.strip() if is_json else data)
    for number, (is_json, records) in enumerate(chunks):
        name = f"{number:05d}.{'jsonl' if is_json else 'log'}"
        (target / name).write_bytes(b"".join(record + b"\n" for record in records))
    return swaps


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_scenario_gives_exactly_the_expected_detections(scenario: Path, tmp_path: Path) -> None:
    compare(replay(scenario, scenario / "logs", tmp_path), expected(scenario))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_scenario_records_out_of_order_within_lateness_give_the_same_detections(
    scenario: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    assert shuffled_stream(scenario / "logs", logs) > 0
    produced = replay(scenario, logs, tmp_path, "--allowed-lateness", "10m")
    compare(produced, expected(scenario))


def test_every_scenario_is_present() -> None:
    assert [path.name[:2] for path in SCENARIOS][:4] == ["01", "02", "03", "04"]
