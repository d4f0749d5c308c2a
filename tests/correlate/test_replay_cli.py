"""`detector replay` with correlation rules, end to end, and resuming from checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector import pipeline
from detector.config import Settings
from detector.correlate import (
    CheckpointError,
    CorrelationEngine,
    EngineSettings,
    checkpoint,
    compile_correlations,
)
from detector.deadletter import DeadLetterFile
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import Checkpointer, DetectionStage, RunCounts, replay_detections
from detector.rules import load_rules
from detector.rules.routing import RuleRouter

from .test_cross_source import (
    RULES,
    _actions_job,
    _github,
    _kubernetes_patch,
    _registry_push,
)

RULE_ID = "3c1e9f00-5555-4555-8555-000000000005"


def detector(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *map(str, args)],
        capture_output=True,
        check=False,
        timeout=300,
    )


def _inputs(directory: Path) -> Path:
    """The scenario as the vendors write it, one file per source."""
    directory.mkdir()
    (directory / "1-github-audit.jsonl").write_bytes(orjson.dumps(_github(1741687200000, "alice")))
    (directory / "2-workflow_job.json").write_bytes(
        orjson.dumps(_actions_job("2025-03-11T10:06:00Z", "alice"), option=orjson.OPT_INDENT_2)
    )
    (directory / "3-registry.json").write_bytes(
        orjson.dumps(_registry_push("2025-03-11T10:07:30Z", "alice"))
    )
    (directory / "4-kubernetes-audit.jsonl").write_bytes(
        orjson.dumps(_kubernetes_patch("2025-03-11T10:09:00.000000Z", "alice")) + b"\n"
    )
    return directory


@pytest.fixture()
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "mr_unprotected_change_shipped.yml"
    path.write_text(RULES)
    return path


def test_replay_writes_the_correlation_detection(tmp_path: Path, rules: Path):
    logs = _inputs(tmp_path / "logs")
    result = detector("replay", logs, "--rules", rules, "--dead-letter", tmp_path / "dead")
    assert result.returncode == 0, result.stderr.decode()
    [detection] = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert detection["rule"]["id"] == RULE_ID
    assert detection["group"] == {"user.name": "alice"}
    assert detection["window"] == {
        "start": "2025-03-11T09:39:00.000000Z",
        "end": "2025-03-11T10:09:00.000000Z",
    }
    assert [e["source"] for e in detection["evidence"]] == [
        "github",
        "github_actions",
        "registry",
        "kubernetes",
    ]
    stderr = result.stderr.decode()
    assert "4 loaded, 4 routed to a source, 1 correlations · detections 1" in " ".join(
        stderr.split()
    )
    assert not (tmp_path / "dead").exists()


def test_bad_lateness_is_a_usage_error(tmp_path: Path, rules: Path):
    result = detector(
        "replay", _inputs(tmp_path / "logs"), "--rules", rules, "--allowed-lateness", "soon"
    )
    assert result.returncode == 2
    assert b"'soon': use unbounded, 0, or a timespan such as 10m" in result.stderr


def test_resuming_from_the_final_checkpoint_continues_the_stream(tmp_path: Path, rules: Path):
    logs = _inputs(tmp_path / "logs")
    state = tmp_path / "state" / "replay.checkpoint"
    common = ("--rules", rules, "--dead-letter", tmp_path / "dead", "--checkpoint", state)
    first = detector("replay", logs, *common, "--checkpoint-every", "1")
    assert first.returncode == 0, first.stderr.decode()
    saved = checkpoint.load(state)
    assert saved.records == 4
    assert saved.inputs == sorted(str(path) for path in logs.iterdir())
    assert list(state.parent.iterdir()) == [state]  # no temporary file left behind
    # the checkpoint is taken before the end-of-input flush: resuming with no new input
    # decides the same windows again, with the same ids
    again = detector("replay", logs, *common, "--from-checkpoint")
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout == first.stdout
    assert "resumed after 4 records" in " ".join(again.stderr.decode().split())


def test_resuming_needs_the_same_input_and_a_checkpoint(tmp_path: Path, rules: Path):
    logs = _inputs(tmp_path / "logs")
    state = tmp_path / "replay.checkpoint"
    assert detector("replay", logs, "--rules", rules, "--checkpoint", state).returncode == 0
    other = detector(
        "replay",
        logs / "1-github-audit.jsonl",
        "--rules",
        rules,
        "--checkpoint",
        state,
        "--from-checkpoint",
    )
    assert other.returncode == 2
    assert b"it was written for other input" in other.stderr
    missing = detector("replay", logs, "--rules", rules, "--from-checkpoint")
    assert missing.returncode == 2
    assert b"--from-checkpoint needs --checkpoint FILE" in missing.stderr


class _Crash(Exception):
    pass


def _replay(
    logs: Path, rules: Path, state: Path, crash_at_save: int | None, resume: bool
) -> tuple[list[bytes], list[int]]:
    """Run the replay pipeline; (detections written, output length at each checkpoint)."""
    loaded = load_rules([rules])
    correlations = compile_correlations(loaded)
    stage = NormalizeStage(build_registry(Settings().sources))
    engine = CorrelationEngine(correlations, EngineSettings(allowed_lateness=None))
    files = sorted(str(path) for path in logs.iterdir())
    skip = 0
    if resume:
        saved = checkpoint.load(state)
        engine.restore(saved.engine)
        skip = saved.records
    written: list[bytes] = []
    saved_at: list[int] = []

    def before_save() -> None:
        if crash_at_save is not None and len(saved_at) == crash_at_save:
            raise _Crash
        saved_at.append(len(written))

    counts = RunCounts()
    saver = Checkpointer(state, 1, files, engine, counts, before_save)
    detector_stage = DetectionStage(RuleRouter(loaded.rules, stage.registry.routes()), engine)
    with DeadLetterFile(state.parent / "dead") as letters:
        try:
            for detection in replay_detections(
                files, stage, detector_stage, letters, counts, None, skip, saver
            ):
                written.append(detection.to_json())
        except _Crash:
            pass
    return written, saved_at


@pytest.mark.parametrize("crash", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 3])  # checkpoints come between batches of events
def test_a_crash_and_a_resume_give_the_uninterrupted_output(
    tmp_path: Path, rules: Path, crash: int, batch: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pipeline, "BATCH_EVENTS", batch)
    logs = _inputs(tmp_path / "logs")
    # a single-event rule beside the correlation so that output appears along the way
    rules.write_text(
        RULES
        + "---\n"
        + RULES.split("---\n")[0]
        .replace("3c1e9f00-5555-4555-8555-000000000001", "3c1e9f00-5555-4555-8555-0000000000ff")
        .replace("branch_protection_removed", "protection_removed_alert")
    )
    state = tmp_path / "replay.checkpoint"
    expected, _ = _replay(logs, rules, tmp_path / "full.checkpoint", None, resume=False)
    assert len(expected) == 2
    before, saved_at = _replay(logs, rules, state, crash, resume=False)
    after, _ = _replay(logs, rules, state, None, resume=crash > 0)
    resumed_from = saved_at[-1] if crash else 0
    assert before[:resumed_from] + after == expected


def test_a_checkpoint_of_other_rules_or_garbage_is_refused(tmp_path: Path, rules: Path):
    loaded = load_rules([rules])
    engine = CorrelationEngine(compile_correlations(loaded))
    state = engine.snapshot()
    changed = tmp_path / "changed.yml"
    changed.write_text(RULES.replace("timespan: 30m", "timespan: 31m"))
    other = load_rules([changed])
    with pytest.raises(CheckpointError, match="written with other correlation rules"):
        CorrelationEngine(compile_correlations(other)).restore(state)
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        engine.restore({**state, "buffer": [[1]]})
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"{not json")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        checkpoint.load(garbage)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        checkpoint.load(tmp_path / "missing")
