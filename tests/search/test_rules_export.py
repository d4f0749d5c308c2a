"""`detector rules export`: the shipped rules convert through the pySigma backends, and on
a real Elasticsearch the Lucene queries find exactly the events the engine fired on."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from detector.events import Event
from detector.search.connection import SearchConnection
from tests.search.test_replay_index import SCENARIO, index_events
from tests.search_engines import Engine


def export(target: str) -> tuple[list[dict[str, object]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "detector", "rules", "export", "--target", target],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(line) for line in done.stdout.splitlines()], done.stderr.decode()


@pytest.mark.parametrize("target", ["esql", "lucene", "eql", "opensearch"])
def test_the_shipped_rules_export(target: str) -> None:
    exported, summary = export(target)
    assert len(exported) >= 230
    assert all(line["queries"] for line in exported)
    assert f"{target}: {len(exported)} exported" in summary
    if target == "esql":  # ES|QL expresses correlations too, over the events stream
        assert any("stats" in str(line["queries"]).lower() for line in exported)
        assert all(str(q).startswith("from detector-events ") for q in exported[0]["queries"])


@pytest.mark.siem
def test_lucene_queries_find_the_events_the_engine_fires_on(
    elasticsearch: Engine, tmp_path: Path
) -> None:
    stream = "detector-events-export"
    normalized = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "normalize",
            str(SCENARIO),
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    index_events(elasticsearch, stream, [Event.model_validate_json(line) for line in normalized])
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "replay",
            str(SCENARIO),
            "--dead-letter",
            str(tmp_path / "dead2.jsonl"),
        ],
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout.splitlines()
    fired: dict[str, set[str]] = defaultdict(set)
    for line in replayed:
        detection = orjson.loads(line)
        if "group" not in detection and "window" not in detection:
            fired[detection["rule"]["id"]].add(detection["evidence"][0]["id"])
    queries = {line["id"]: line["queries"][0] for line in export("lucene")[0]}
    # A flattened field (`raw`) answers no regular expression (README).
    compared = sorted(rule for rule in fired if rule in queries and ":/" not in queries[rule])
    assert len(compared) >= 3
    client = SearchConnection.model_validate({"hosts": [elasticsearch.url]}).client()
    for rule in compared:
        found = client.search(
            index=stream,
            body={
                "size": 1000,
                "_source": ["event.id"],
                "query": {"query_string": {"query": queries[rule]}},
            },
        )
        ids = {hit["_source"]["event.id"] for hit in found["hits"]["hits"]}
        assert ids == fired[rule], (rule, queries[rule])
