"""Replaying from an index (`detector replay es://INDEX`) against real nodes: every
document in time order across point-in-time pages, resumable from a sort key, and the
same detections as replaying the files the index was filled from."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detector.events import Event
from detector.search import bulk
from detector.search.connection import SearchConnection
from detector.search.reader import IndexReader
from detector.search.templates import events_template
from tests.e2e.test_replay_scenarios import ROOT
from tests.search_engines import Engine

pytestmark = pytest.mark.siem

SCENARIO = ROOT / "replay" / "01-stolen-github-token" / "logs"
START = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def connection(engine: Engine) -> SearchConnection:
    return SearchConnection.model_validate({"kind": engine.kind, "hosts": [engine.url]})


def index_events(engine: Engine, stream: str, events: list[Event]) -> None:
    """`events` into the events data stream `stream`, as the engine's documents."""
    client = connection(engine).client()
    client.indices.put_index_template(name=stream, body=events_template(engine.kind, stream))
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        body = bulk.operations(stream, [(e.event_id, e.to_json()) for e in chunk])
        answer = client.bulk(body=body, refresh=True)
        assert not answer["errors"], [i for i in answer["items"] if "error" in i["create"]][:3]


def github_event(n: int, minute: int) -> Event:
    raw = {"@timestamp": 0, "_document_id": f"doc-{n:03}", "action": "repo.create", "actor": "a"}
    return Event(
        timestamp=START + timedelta(minutes=minute),
        event_id=f"doc-{n:03}",
        event_source="github",
        event_action="repo.create",
        raw=raw,
    )


def test_every_document_in_time_order_across_pages_and_resumed_from_a_sort_key(
    engine: Engine,
) -> None:
    stream = f"detector-events-order-{engine.kind}"
    # 25 events over 10 minutes: several share a time, and they are indexed shuffled
    events = [github_event(n, n % 10) for n in range(25)]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    index_events(engine, stream, shuffled)
    expected = sorted(events, key=lambda e: (e.timestamp, e.event_source, e.event_id))

    reader = IndexReader(connection(engine), stream, page_size=7)
    records = list(reader)
    assert [r.origin for r in records] == [
        f"{reader.scheme}://{stream}/{e.event_id}" for e in expected
    ]
    assert reader.pages == 4
    assert all(r.source == "github" for r in records)
    assert orjson.loads(records[0].data) == expected[0].raw

    middle = IndexReader(connection(engine), stream, page_size=7)
    first_ten = list(itertools.islice(middle, 10))
    assert len(first_ten) == 10
    resumed = list(
        IndexReader(connection(engine), stream, page_size=7, resume_after=middle.position)
    )
    assert [r.origin for r in first_ten + resumed] == [r.origin for r in records]

    live = IndexReader(connection(engine), stream, page_size=7, point_in_time=False)
    assert [r.origin for r in live] == [r.origin for r in records]
    assert live.pages == 4

    window = IndexReader(
        connection(engine),
        stream,
        since=START + timedelta(minutes=2),
        until=START + timedelta(minutes=4),
        query="event.id:doc-01*",
    )
    assert [r.origin.rsplit("/", 1)[1] for r in window] == ["doc-012", "doc-013"]


def detector(*args: str, config: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args, "--config", str(config)],
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_replay_from_the_index_gives_the_detections_of_the_files(
    engine: Engine, tmp_path: Path
) -> None:
    """The scenario's logs indexed with `normalize --index`, replayed from the index."""
    scheme = "es" if engine.kind == "elasticsearch" else "os"
    stream = f"detector-events-scenario-{engine.kind}"
    config = tmp_path / "detector.yml"
    config.write_text(
        orjson.dumps({"search": {"kind": engine.kind, "hosts": [engine.url]}}).decode()
    )
    loaded = detector(
        "normalize",
        str(SCENARIO),
        "--index",
        f"{scheme}://{stream}",
        "--dead-letter",
        str(tmp_path / "dead.jsonl"),
        config=config,
    )
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert not loaded.stdout
    summary = loaded.stderr.decode()
    normalized = int(summary.split("normalized ")[1].split()[0])
    assert f"{normalized} indexed (new or already there) · 0 refused" in summary

    files = detector(
        "replay", str(SCENARIO), "--dead-letter", str(tmp_path / "a.jsonl"), config=config
    )
    indexed = detector(
        "replay",
        f"{scheme}://{stream}",
        "--page-size",
        "300",
        "--dead-letter",
        str(tmp_path / "b.jsonl"),
        config=config,
    )
    assert indexed.returncode == 0, indexed.stderr.decode()
    assert files.stdout.splitlines()
    assert indexed.stdout == files.stdout
    assert f"{normalized} documents in" in indexed.stderr.decode()

    # --checkpoint: the correlation state and the position in the index, as for files
    state, output = tmp_path / "replay.checkpoint", tmp_path / "detections.jsonl"
    common = (f"{scheme}://{stream}", "--checkpoint", str(state), "--output", str(output))
    first = detector("replay", *common, "--checkpoint-every", "500", config=config)
    assert first.returncode == 0, first.stderr.decode()
    assert output.read_bytes() == files.stdout
    resumed = detector("replay", *common, "--from-checkpoint", config=config)
    assert resumed.returncode == 0, resumed.stderr.decode()
    # The final checkpoint covers every document; it is taken before the end-of-input
    # flush, so what the flush decided comes again, under the same ids, and nothing else.
    again = output.read_bytes()[len(files.stdout) :].splitlines()
    assert set(again) <= set(files.stdout.splitlines())
    assert len(again) < len(files.stdout.splitlines())
    assert f"resumed after {normalized} records" in resumed.stderr.decode()


def test_indexing_again_keeps_one_document_per_event_and_dead_letters_a_refused_one(
    engine: Engine, tmp_path: Path
) -> None:
    scheme = "es" if engine.kind == "elasticsearch" else "os"
    stream = f"detector-events-load-{engine.kind}"
    logs = tmp_path / "github.jsonl"
    records = [
        {"@timestamp": "2025-03-10T12:00:00Z", "_document_id": "one", "action": "repo.create"},
        {"@timestamp": "1969-07-20T20:17:40Z", "_document_id": "moon", "action": "repo.create"},
        {"@timestamp": "2025-03-10T12:01:00Z", "_document_id": "two", "action": "repo.create"},
    ]
    logs.write_bytes(b"".join(orjson.dumps(r | {"actor": "a"}) + b"\n" for r in records))
    config = tmp_path / "detector.yml"
    config.write_text(orjson.dumps({"search": {"hosts": [engine.url]}}).decode())
    letters = tmp_path / "dead.jsonl"
    for _ in range(2):
        done = detector(
            "normalize",
            str(logs),
            "--index",
            f"{scheme}://{stream}",
            "--dead-letter",
            str(letters),
            config=config,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert "2 indexed (new or already there) · 1 refused" in done.stderr.decode()
    client = connection(engine).client()
    client.indices.refresh(index=stream)
    assert client.count(index=stream)["count"] == 2
    dead = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    assert [d["origin"] for d in dead] == ["event moon", "event moon"]
    assert dead[0]["reason"].startswith(f"index {stream}: HTTP 400 ")
    assert orjson.loads(dead[0]["original"])["raw"]["_document_id"] == "moon"
