"""`detector replay --workers N`: the output of the single-process replay, byte for byte,
with the same dead letters and counts, whatever the inputs and options."""

from __future__ import annotations

import gzip
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import FrameType

import orjson
import pytest

from detector.config import SourcesSettings
from detector.correlate import CorrelationEngine, CorrelationSet
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.parallel import Results, Workers, WorkerState
from detector.rules.routing import RuleRouter
from tests.e2e.test_replay_options import _github, _logs, at, detector
from tests.e2e.test_replay_scenarios import ROOT, SCENARIOS

#: A correlation over every event of a source, so that late events and hits cross over.
RULES = """
title: Any event
id: 7d0c2b9e-0000-4000-8000-000000000001
logsource: {product: cicd}
detection: {selection: {event.id|exists: true}, condition: selection}
---
title: Two events
id: 7d0c2b9e-0000-4000-8000-000000000002
correlation: {type: event_count, rules: [7d0c2b9e-0000-4000-8000-000000000001],
              group-by: [event.source], timespan: 1h, condition: {gte: 2}, generate: true}
---
title: Two events per repository
id: 7d0c2b9e-0000-4000-8000-000000000003
correlation: {type: event_count, rules: [7d0c2b9e-0000-4000-8000-000000000001],
              group-by: [repository], timespan: 1h, condition: {gte: 2}}
"""


def both(
    tmp_path: Path, inputs: Sequence[str | Path], *options: str | Path
) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Replay with one process and with three workers: the same stdout, dead letters and
    summary (stderr); returns the single-process run and its dead letters."""
    runs = []
    for workers in ("1", "3"):
        dead = tmp_path / f"dead-{workers}.jsonl"
        result = detector("replay", *inputs, *options, "--dead-letter", dead, "--workers", workers)
        assert result.returncode == 0, result.stderr.decode()
        runs.append((result, dead.read_bytes() if dead.exists() else b""))
    (single, single_dead), (pooled, pooled_dead) = runs
    assert pooled.stdout == single.stdout
    assert pooled_dead == single_dead
    assert _counts(pooled.stderr) == _counts(single.stderr)
    return single, single_dead


def _counts(summary: bytes) -> str:
    """The summary without the time it took and the dead letters' path (rich wraps the
    lines where they fall)."""
    text = " ".join(summary.decode().split())
    return re.sub(r" \(to [^)]*\)| [0-9.]+s · [0-9,]+ events/s", "", text)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[path.name for path in SCENARIOS])
def test_a_scenario_gives_the_same_output(scenario: Path, tmp_path: Path) -> None:
    single, _ = both(tmp_path, [scenario / "logs"], "--allowed-lateness", "10m")
    assert single.stdout


def test_every_scenario_in_one_file_gives_the_same_output(tmp_path: Path) -> None:
    """Thousands of records (many chunks per worker), out of order across the scenarios
    (late events), with bad records in the middle and at the end, and a run of records
    longer than a batch that hold no event (empty Kubernetes EventLists)."""
    mix = tmp_path / "mix.jsonl"
    empty = b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}\n'
    with mix.open("wb") as out:
        for number, log in enumerate(sorted(ROOT.glob("replay/*/logs/*.jsonl.gz"))):
            out.write(gzip.decompress(log.read_bytes()))
            if number == 3:
                out.write(b"{not json\n[1, 2]\n" + empty * 100)
        out.write(b'{"x": 1}\n')
    rules = ("--rules", ROOT / "rules", "--rules", ROOT / "tests" / "fixtures" / "rules")
    single, dead = both(tmp_path, [mix], *rules, "--allowed-lateness", "1m")
    assert len(single.stdout.splitlines()) > 100
    reasons = [orjson.loads(line)["reason"] for line in dead.splitlines()]
    assert any(reason.startswith("not JSON") for reason in reasons)
    assert any(reason.startswith("late: ") for reason in reasons)


def test_late_events_filtered_events_and_merged_files_give_the_same_output(
    tmp_path: Path,
) -> None:
    logs = _logs(tmp_path / "logs")
    newest_first = [_github(at(minute), f"late-{minute}") for minute in (30, 1)]
    (logs / "late.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in newest_first))
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    common = ("--rules", rules, "--allowed-lateness", "5m")
    _, dead = both(tmp_path, [logs], *common)
    assert b"late: event time" in dead
    both(tmp_path, [logs], *common, "--since", "2025-03-11T10:05Z", "--only-source", "github")


def test_a_run_resumed_from_its_checkpoint_gives_the_same_output(tmp_path: Path) -> None:
    records = (_logs(tmp_path / "logs") / "github.jsonl").read_bytes().splitlines(keepends=True)
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    outputs = []
    for workers in ("1", "2"):
        log = tmp_path / f"github-{workers}.jsonl"
        log.write_bytes(b"".join(records[:2]))
        state = tmp_path / f"{workers}.checkpoint"
        common = ("--rules", rules, "--checkpoint", state, "--workers", workers)
        first = detector("replay", log, *common, "--dead-letter", tmp_path / "d")
        assert first.returncode == 0, first.stderr.decode()
        log.write_bytes(b"".join(records))  # more input since
        resumed = detector(
            "replay", log, *common, "--from-checkpoint", "--dead-letter", tmp_path / "d"
        )
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert "resumed after 2 records" in " ".join(resumed.stderr.decode().split())
        outputs.append((first.stdout, resumed.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0][1]


@pytest.mark.parametrize(
    "option", [("--report", "r.html"), ("--speed", "2"), ("--playbooks", "playbooks")]
)
def test_options_that_need_whole_events_are_refused(option: tuple[str, str]) -> None:
    scenario = SCENARIOS[0] / "logs"
    result = detector("replay", scenario, "--workers", "2", *option)
    assert result.returncode == 2
    assert f"--workers 2: not with {option[0]}" in result.stderr.decode()


def test_a_worker_that_dies_fails_the_replay_with_a_clear_error(tmp_path: Path) -> None:
    """A killed worker (out of memory, say) must not leave the replay waiting forever."""
    scenario = gzip.decompress((SCENARIOS[0] / "logs" / "kubernetes-audit.jsonl.gz").read_bytes())
    big = tmp_path / "big.jsonl"
    big.write_bytes(scenario * 200)
    command = [sys.executable, "-m", "detector", "replay", str(big), "--workers", "2"]
    command += ["--output", str(tmp_path / "out.jsonl"), "--dead-letter", str(tmp_path / "d")]
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE) as replay:
        children = Path(f"/proc/{replay.pid}/task/{replay.pid}/children")
        deadline = time.monotonic() + 60
        while not children.read_text().split():
            assert replay.poll() is None and time.monotonic() < deadline, "no worker started"
            time.sleep(0.05)
        os.kill(int(children.read_text().split()[0]), signal.SIGKILL)
        _, stderr = replay.communicate(timeout=120)
    assert replay.returncode == 1
    assert "a worker process ended abruptly" in " ".join(stderr.decode().split())


def _die_halfway_through_sending_a_result() -> Results:
    """A worker's task that ends as a worker killed while it sends a large result: the
    results pipe's lock held, the length and the first bytes of the result written."""
    frame: FrameType | None = sys._getframe()
    while frame is not None and "result_queue" not in frame.f_locals:
        frame = frame.f_back  # up to the pool's worker loop, which holds the queue
    assert frame is not None
    results = frame.f_locals["result_queue"]
    results._wlock.acquire()
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20) + b"\x80" * 1024)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("not killed")


def test_a_worker_that_dies_while_sending_a_result_breaks_the_pool() -> None:
    """The pool's thread waits for the rest of that result and the other workers for the
    lock: the death must break the pool all the same, and the pool must end."""
    registry = build_registry(SourcesSettings())
    state = WorkerState(
        NormalizeStage(registry),
        RuleRouter([], registry.routes()),
        CorrelationEngine(CorrelationSet()),
        None,
    )
    with Workers(2, state) as pool:
        tasks = [(_die_halfway_through_sending_a_result, ())]
        tasks += [(list, ())] * 5  # the other worker's results wait for the lock
        with pytest.raises(BrokenProcessPool):
            list(pool.outcomes(tasks, 6))
