"""`detector replay` for responders: plain progress lines, --speed and --sink."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import yaml

from detector.pipeline import ProgressLine, RunCounts
from tests.e2e.service_helpers import SERVICE_ENVIRON, Receiver, webhook_output
from tests.e2e.test_replay_scenarios import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "sources" / "github" / "audit.jsonl"
SCENARIO_LOGS = next((ROOT / "replay").glob("01-*")) / "logs"
#: one detection per generated record
RULE = """
title: Repository created
id: 7d0c2b9e-0000-4000-8000-000000000002
logsource: {product: github, service: audit}
detection: {selection: {action: repo.create}, condition: selection}
"""
LINE = re.compile(
    r"progress: (\d+)/(\d+) \((\d+\.\d)%\) · (\d+) events · (\d+) events/s · ETA (\d+)s"
)


def github_records(path: Path, count: int, step_ms: int) -> None:
    """`count` GitHub audit records (the fixture's first), `step_ms` apart in event time."""
    record = orjson.loads(FIXTURE.read_bytes().splitlines()[0])
    start = record["@timestamp"]
    with path.open("wb") as out:
        for n in range(count):
            moment = start + n * step_ms
            copy = {**record, "_document_id": f"doc-{n}", "@timestamp": moment}
            out.write(orjson.dumps({**copy, "created_at": moment}) + b"\n")


def detector(
    tmp_path: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "repo-create.yml").write_text(RULE)
    command = [sys.executable, "-m", "detector", "replay", "--rules", rules]
    command += ["--dead-letter", tmp_path / "dead.jsonl", *args]
    result = subprocess.run(
        list(map(str, command)), cwd=ROOT, capture_output=True, check=False, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr.decode()
    return result


def test_progress_lines_on_a_non_terminal_stderr(tmp_path: Path) -> None:
    logs = tmp_path / "audit.jsonl"
    github_records(logs, 20_000, 1000)
    result = detector(tmp_path, logs, "--progress-every", "0.01")
    lines = [line for line in result.stderr.decode().splitlines() if line.startswith("progress:")]
    assert lines
    previous = (0, 0)
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, line
        read, total, percent, events = (match[1], match[2], match[3], match[4])
        assert int(total) == logs.stat().st_size
        assert int(read) <= int(total)
        assert float(percent) == round(100 * int(read) / int(total), 1)
        assert (int(read), int(events)) >= previous
        previous = (int(read), int(events))
    assert len(result.stdout.splitlines()) == 20_000


def test_no_progress_lines_with_progress_every_zero(tmp_path: Path) -> None:
    logs = tmp_path / "audit.jsonl"
    github_records(logs, 2_000, 1000)
    result = detector(tmp_path, logs, "--progress-every", "0")
    assert "progress:" not in result.stderr.decode()


def test_progress_line_for_stdin_has_no_total_nor_eta() -> None:
    counts = RunCounts(read=50)
    now = [0.0]
    written: list[str] = []
    line = ProgressLine(2.0, None, counts, written.append, clock=lambda: now[0])
    line.advance(100)
    now[0] = 2.5
    line.advance(400)
    now[0] = 3.0
    line.advance(1)  # within the interval: nothing
    assert written == ["progress: 500 · 50 events · 20 events/s"]


def test_progress_line_with_a_total_has_percent_and_eta() -> None:
    counts = RunCounts(read=300)
    now = [0.0]
    written: list[str] = []
    line = ProgressLine(1.0, 1000, counts, written.append, clock=lambda: now[0])
    now[0] = 3.0
    line.advance(250)
    assert written == ["progress: 250/1000 (25.0%) · 300 events · 100 events/s · ETA 9s"]


def test_a_huge_speed_gives_the_same_output_as_max(tmp_path: Path) -> None:
    fast = detector(tmp_path, SCENARIO_LOGS, "--rules", "rules", "--speed", "max")
    paced = detector(tmp_path, SCENARIO_LOGS, "--rules", "rules", "--speed", "1e6")
    assert fast.stdout
    assert paced.stdout == fast.stdout


def test_speed_paces_by_event_time(tmp_path: Path) -> None:
    logs = tmp_path / "audit.jsonl"
    github_records(logs, 5, 500)  # 2 s of event time
    started = time.monotonic()
    result = detector(tmp_path, logs, "--speed", "4")
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5
    assert len(result.stdout.splitlines()) == 5


def test_sink_delivers_every_detection_once(tmp_path: Path) -> None:
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(receiver.start())
    config = tmp_path / "detector.yml"
    output = webhook_output("hooks", receiver.url("/alerts"))
    sinks = {"outbox_dir": str(tmp_path / "outbox"), "outputs": [output]}
    config.write_text(yaml.safe_dump({"sinks": sinks}))
    try:
        process = loop.run_until_complete(
            asyncio.create_subprocess_exec(
                sys.executable, "-m", "detector", "replay", str(SCENARIO_LOGS),
                "--rules", "rules", "--dead-letter", str(tmp_path / "dead.jsonl"),
                "--config", str(config), "--sink", "hooks",
                cwd=ROOT, env=SERVICE_ENVIRON,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        )  # fmt: skip
        stdout, stderr = loop.run_until_complete(asyncio.wait_for(process.communicate(), 120))
    finally:
        loop.run_until_complete(receiver.stop())
        loop.close()
    assert process.returncode == 0, stderr.decode()
    printed = [orjson.loads(line) for line in stdout.splitlines()]
    delivered = receiver.delivered("/alerts")
    assert printed
    assert receiver.forged == 0
    assert sorted(d["id"] for d in delivered) == sorted(d["id"] for d in printed)
    assert len({d["id"] for d in delivered}) == len(delivered)
    count = len(printed)
    assert (
        f"sink hooks: {count} enqueued (0 it had already) · delivered {count} · "
        "dead-lettered 0 · undelivered 0" in " ".join(stderr.decode().split())
    )
