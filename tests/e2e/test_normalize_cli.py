"""`detector normalize` end to end, through the installed command, on the shipped samples."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SOURCES = {
    "github",
    "gitlab",
    "kubernetes",
    "github_actions",
    "jenkins",
    "registry",
    "cloudtrail",
}


def detector(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=120,
    )


def summary_counts(stderr: bytes) -> dict[str, int]:
    text = stderr.decode()
    found = re.search(r"read (\d+) · normalized (\d+) · dead-lettered (\d+)", text)
    assert found, text
    read, normalized, dead = map(int, found.groups())
    return {"read": read, "normalized": normalized, "dead": dead}


def test_mixed_directory_of_all_sources(tmp_path: Path) -> None:
    letters = tmp_path / "dead.jsonl"
    result = detector("normalize", str(SAMPLES), "--dead-letter", str(letters))
    assert result.returncode == 0, result.stderr.decode()
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    dead = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    counts = summary_counts(result.stderr)
    assert counts == {"read": len(events) + len(dead), "normalized": len(events), "dead": len(dead)}

    by_source = Counter(e["event.source"] for e in events)
    assert set(by_source) == SOURCES, by_source
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["@timestamp"])
        assert event["event.id"] and "raw" in event
    # Only the deliberately broken records are dead-lettered, each with its reason.
    reasons = sorted((Path(d["origin"]).name, d["reason"].split(":")[0]) for d in dead)
    assert reasons == [
        ("truncated.jsonl.gz:3", "not JSON"),
        ("unknown.jsonl:1", "unknown source"),
        ("unknown.jsonl:2", "not JSON"),
        ("unknown.jsonl:3", "record is a JSON array, not an object"),
    ]
    truncated = next(d for d in dead if d["origin"].endswith("truncated.jsonl.gz:3"))
    assert truncated["original"].startswith('{"@timestamp"')


def test_stdin_with_a_forced_source() -> None:
    line = (SAMPLES / "kubernetes" / "audit.jsonl").read_bytes().splitlines()[0]
    result = detector("normalize", "-", "--source", "kubernetes", stdin=line + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    [event] = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert event["event.source"] == "kubernetes"


def test_unknown_path_and_unknown_source_are_usage_errors(tmp_path: Path) -> None:
    missing = detector("normalize", str(tmp_path / "absent"))
    assert missing.returncode == 2 and b"no such file or directory" in missing.stderr
    records = tmp_path / "bb.jsonl"
    records.write_bytes(b'{"date": 1736000000, "x": 1}\n')
    declared = detector("normalize", str(records), "--source", "bitbucket", "--time-field", "date")
    assert declared.returncode == 0, declared.stderr.decode()
    [event] = [orjson.loads(x) for x in declared.stdout.splitlines()]
    assert event["event.source"] == "bitbucket"
    assert event["@timestamp"] == "2025-01-04T14:13:20.000000Z"
