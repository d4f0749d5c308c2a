"""Following growing files: appends, partial lines, rotation, truncation, late files,
restarts from the saved position, backpressure, Jenkins continuation lines, and a line
appended to a followed Kubernetes audit log becoming a signed alert of `detector run`.

Most tests drive `Follower.poll()` step by step on real files; those that run the
follower as a task wait on conditions with a deadline.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from detector.config import ConfigError, SourcesSettings, load_settings
from detector.intake.queue import RecordQueue, footprint
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.runtime.service import follow_state_path
from detector.sources.follow import FollowedFile, Follower, Position, Positions
from detector.sources.records import RawRecord
from tests.e2e.service_helpers import (
    EVENT_LIST,
    EVENT_LIST_ALERTS,
    DetectorService,
    Receiver,
    alerts,
    service_config,
    wait_for,
    webhook_output,
)
from tests.intake.support import fixture

#: three Kubernetes audit events, one JSON line each (the log backend's layout)
K8S = [orjson.dumps(item) for item in orjson.loads(EVENT_LIST)["items"]]
JENKINS = fixture("jenkins/audit.log").splitlines()
SCRIPT_ENTRY = b"\n".join(JENKINS[4:7])  # a script-console entry over three lines


def follower(
    path: Path,
    queue: RecordQueue,
    positions: Positions | None = None,
    *,
    source: str | None = "kubernetes",
    start_at: str = "beginning",
    join: bool = False,
) -> Follower:
    settings = FollowedFile.model_validate(
        {
            "path": path,
            "source": source,
            "start_at": start_at,
            "poll_interval_seconds": 0.01,
            "continuation_timeout_seconds": 1e-9,  # the next idle poll releases a held entry
        }
    )
    stage = NormalizeStage(build_registry(SourcesSettings()))
    join_lines = stage.join_continuation_lines if join else None
    return Follower(settings, queue, positions or Positions(None), join_lines)


async def taken(queue: RecordQueue) -> list[tuple[bytes, str]]:
    """(data, origin) of every record queued now, in order; the queue is left empty."""
    return [((r := await queue.get()).data, r.origin) for _ in range(len(queue))]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


async def test_appended_lines_are_read_with_their_line_numbers_and_source(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n\n")
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue)
    await follow.poll()
    append(log, K8S[1] + b"\r\n")
    await follow.poll()
    assert await taken(queue) == [(K8S[0], f"{log}:1"), (K8S[1], f"{log}:3")]
    await follow.poll()
    assert len(queue) == 0
    append(log, K8S[2] + b"\n")
    await follow.poll()
    record = await queue.get()
    assert (record.data, record.origin, record.source) == (K8S[2], f"{log}:4", "kubernetes")


async def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n" + K8S[1][:40])
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue)
    await follow.poll()
    assert await taken(queue) == [(K8S[0], f"{log}:1")]
    append(log, K8S[1][40:])
    await follow.poll()
    assert len(queue) == 0
    append(log, b"\n")
    await follow.poll()
    assert await taken(queue) == [(K8S[1], f"{log}:2")]


async def test_start_at_end_skips_history_but_keeps_counting_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n" + K8S[1] + b"\n" + K8S[2][:10])
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue, start_at="end")
    await follow.poll()
    assert len(queue) == 0
    append(log, K8S[2][10:] + b"\n")
    await follow.poll()
    assert await taken(queue) == [(K8S[2], f"{log}:3")]


async def test_rotation_by_rename_finishes_the_old_file_then_reads_the_new_one(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n")
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue)
    await follow.poll()
    append(log, K8S[1])  # written just before the rotation, without its newline
    log.rename(tmp_path / "audit.log.1")
    await follow.poll()  # renamed away, no new file yet
    log.write_bytes(K8S[2] + b"\n")
    await follow.poll()
    assert await taken(queue) == [
        (K8S[0], f"{log}:1"),
        (K8S[1], f"{log}:2"),
        (K8S[2], f"{log}:1"),
    ]


async def test_copytruncate_reads_the_file_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n" + K8S[1] + b"\n")
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue)
    await follow.poll()
    shutil.copyfile(log, tmp_path / "audit.log.1")
    with log.open("r+b") as handle:
        handle.truncate(0)
    await follow.poll()
    append(log, K8S[2] + b"\n")
    await follow.poll()
    assert await taken(queue) == [
        (K8S[0], f"{log}:1"),
        (K8S[1], f"{log}:2"),
        (K8S[2], f"{log}:1"),
    ]


async def test_a_file_created_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    state = tmp_path / "follow.json"
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue, Positions(state), start_at="end")
    await follow.poll()
    assert len(queue) == 0 and not state.exists()
    log.parent.mkdir()
    log.write_bytes(K8S[0] + b"\n")
    await follow.poll()
    assert await taken(queue) == [(K8S[0], f"{log}:1")]


async def test_a_restart_continues_at_the_saved_position(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = tmp_path / "follow.json"
    log.write_bytes(K8S[0] + b"\n" + K8S[1] + b"\n")
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue, Positions(state))
    run = asyncio.create_task(follow.run())
    await wait_for(lambda: _true(len(queue) == 2), 10, "two lines")
    follow.stop()
    await run
    saved = orjson.loads(state.read_bytes())
    inode = log.stat()
    assert saved == {
        "format": "detector.follow/1",
        "files": {
            str(log): {
                "device": inode.st_dev,
                "inode": inode.st_ino,
                "offset": len(K8S[0]) + len(K8S[1]) + 2,
                "line": 2,
            }
        },
    }
    append(log, K8S[2] + b"\n")
    again = RecordQueue(1 << 20)
    follow = follower(log, again, Positions(state), start_at="end")
    await follow.poll()
    assert await taken(again) == [(K8S[2], f"{log}:3")]


async def test_a_restart_finishes_a_file_rotated_while_stopped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = tmp_path / "follow.json"
    log.write_bytes(K8S[0] + b"\n")
    follow = follower(log, RecordQueue(1 << 20), Positions(state))
    await follow.poll()
    append(log, K8S[1] + b"\n")
    log.rename(tmp_path / "audit.log.1")
    log.write_bytes(K8S[2] + b"\n")
    queue = RecordQueue(1 << 20)
    await follower(log, queue, Positions(state)).poll()
    assert await taken(queue) == [(K8S[1], f"{log}:2"), (K8S[2], f"{log}:1")]
    assert Positions(state).get(str(log)) == Position(
        log.stat().st_dev, log.stat().st_ino, len(K8S[2]) + 1, 1
    )


async def test_a_full_queue_holds_the_follower_back_and_nothing_is_lost(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = tmp_path / "follow.json"
    log.write_bytes(b"\n".join(K8S) + b"\n")
    one = max(footprint(RawRecord(k, f"{log}:1", "kubernetes")) for k in K8S)
    queue = RecordQueue(one)  # room for a single record
    follow = follower(log, queue, Positions(state))
    run = asyncio.create_task(follow.run())
    await wait_for(lambda: _true(len(queue) == 1), 10, "the first line")
    first = await queue.get()
    await wait_for(lambda: _true(len(queue) == 1), 10, "the second line")
    follow.stop()  # while the third waits for room
    await run
    assert (first.origin, (await queue.get()).origin) == (f"{log}:1", f"{log}:2")
    position = Positions(state).get(str(log))
    assert position is not None and (position.line, position.offset) == (
        2,
        len(K8S[0]) + len(K8S[1]) + 2,
    )
    again = RecordQueue(1 << 20)
    await follower(log, again, Positions(state)).poll()
    assert await taken(again) == [(K8S[2], f"{log}:3")]


async def test_a_line_larger_than_the_queue_is_reported_not_dropped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"x" * 5000 + b"\n")
    queue = RecordQueue(1000)
    await follower(log, queue).poll()
    record = await queue.get()
    assert (record.data, record.origin, record.error) == (
        b"",
        f"{log}:1",
        "line of 5000 bytes exceeds the queue capacity",
    )


async def test_jenkins_entries_wait_for_their_continuation_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = tmp_path / "follow.json"
    log.write_bytes(b"\n".join(JENKINS[3:5]) + b"\n")
    queue = RecordQueue(1 << 20)
    follow = follower(log, queue, Positions(state), source="jenkins", join=True)
    await follow.poll()  # the script entry may go on: held back
    assert await taken(queue) == [(JENKINS[3], f"{log}:1")]
    position = Positions(state).get(str(log))
    assert position is not None and (position.line, position.offset) == (1, len(JENKINS[3]) + 1)
    append(log, b"\n".join(JENKINS[5:7]) + b"\n")
    await follow.poll()
    assert len(queue) == 0
    append(log, JENKINS[7] + b"\n")
    await follow.poll()
    assert await taken(queue) == [(SCRIPT_ENTRY, f"{log}:2")]
    await follow.poll()  # nothing more came within the continuation timeout
    assert await taken(queue) == [(JENKINS[7], f"{log}:5")]
    position = Positions(state).get(str(log))
    assert position is not None and position.line == 5


async def test_json_lines_are_never_held_back_when_joining(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(K8S[0] + b"\n")
    queue = RecordQueue(1 << 20)
    await follower(log, queue, source=None, join=True).poll()
    assert await taken(queue) == [(K8S[0], f"{log}:1")]


def test_a_damaged_state_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "follow.json"
    state.write_bytes(b'{"format": "something else"}')
    with pytest.raises(ValueError, match="not a follow state file"):
        Positions(state)


def test_configuration_and_the_default_state_path(tmp_path: Path) -> None:
    config = tmp_path / "detector.yml"
    config.write_text(
        "sources:\n"
        "  follow:\n"
        "    - {path: /var/log/kube-apiserver/audit.log, source: kubernetes}\n"
        "correlation: {checkpoint: /var/lib/detector/state.json}\n",
        encoding="utf-8",
    )
    settings = load_settings(config)
    (followed,) = settings.sources.follow
    assert (followed.path, followed.source, followed.start_at) == (
        Path("/var/log/kube-apiserver/audit.log"),
        "kubernetes",
        "end",
    )
    assert follow_state_path(settings) == Path("/var/lib/detector/state.follow.json")
    config.write_text("sources:\n  follow: [{path: /a.log}, {path: /a.log}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"followed more than once: /a\.log"):
        load_settings(config)
    config.write_text("sources:\n  follow: [{path: /a.log, source: nope}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"/a\.log: unknown source 'nope' \(known: cloudtrail,"):
        load_settings(config)


@pytest.mark.timeout(120)
async def test_a_line_appended_to_a_followed_audit_log_is_alerted(tmp_path: Path) -> None:
    audit = tmp_path / "kube-apiserver" / "audit.log"
    audit.parent.mkdir()
    audit.write_bytes(K8S[0] + b"\n")  # history before the start: left to replay
    receiver = Receiver()
    await receiver.start()
    config: dict[str, Any] = service_config(
        tmp_path, [webhook_output("hooks", receiver.url("/hooks"))], {}
    )
    config["sources"]["follow"] = [
        {"path": str(audit), "source": "kubernetes", "poll_interval_seconds": 0.05}
    ]
    service = DetectorService(config, tmp_path)
    cronjob = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f:ResponseComplete"
    expected = {alert for alert in EVENT_LIST_ALERTS if alert[1] == cronjob}
    try:
        async with aiohttp.ClientSession() as client:
            service.start()
            await service.ready(client)
            state = tmp_path / "state.follow.json"
            await wait_for(lambda: _true(state.exists()), 30, "the follower to start")
            append(audit, K8S[2] + b"\n")
            await wait_for(lambda: service.settled(client, 1), 30, "the appended line's alerts")
            assert alerts(receiver.delivered("/hooks")) == dict.fromkeys(expected, 1)
            assert await service.stop() == 0
    finally:
        if service.process is not None and service.process.poll() is None:
            await service.stop()
        await receiver.stop()
    position = Positions(tmp_path / "state.follow.json").get(str(audit))
    assert position is not None and position.line == 2


async def _true(value: bool) -> bool:
    return value
