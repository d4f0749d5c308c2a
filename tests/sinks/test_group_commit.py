"""Group commit: detections submitted together share one fsync, run off the event loop;
they are sent while it runs, and `committed` returns only once it has."""

from __future__ import annotations

import asyncio
import base64
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from detector.detections import Detection
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.durable import AppendLog
from detector.sinks.outbox import JOURNAL, Outbox
from detector.sinks.webhook import WebhookSink

SECRET = "whsec_" + base64.b64encode(b"detector-test-signing-key-32byte").decode()
DAY = 86_400.0


class HeldFsync:
    """`AppendLog.fsync` held at a gate: counts the calls, and each waits (in its thread)
    until the test opens the gate."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        original = AppendLog.fsync

        def fsync(log: AppendLog) -> None:
            self.calls += 1
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
            original(log)

        monkeypatch.setattr(AppendLog, "fsync", fsync)


def crash_copy(directory: Path, into: Path) -> Outbox:
    """An outbox opened on the journal as it is on disk now, the original still open:
    what a restart after a crash at this moment would find."""
    into.mkdir()
    shutil.copy(directory / JOURNAL, into / JOURNAL)
    return Outbox(into, DAY)


async def test_a_detection_is_sent_while_the_fsync_that_makes_it_durable_runs(
    receiver, worker, detection: Callable[..., Detection], until, monkeypatch, tmp_path: Path
) -> None:
    held = HeldFsync(monkeypatch)
    hook = await receiver()
    deliver = worker(WebhookSink("hooks", hook.url(), SECRET, in_flight=4))
    deliver.start()
    sent = [detection(n) for n in range(1, 4)]
    assert [deliver.submit(one) for one in sent] == [True] * 3
    assert deliver.submit(sent[0]) is False  # the outbox knows the id already
    committed = asyncio.create_task(deliver.committed())
    await until(held.entered.is_set)

    # The fsync runs in a thread: the event loop goes on and sends meanwhile, but what
    # waits for the disk (a checkpoint, a saved position) still waits.
    await hook.wait(lambda: len(hook.accepted()) == 3)
    assert sorted(r.webhook_id or "" for r in hook.requests) == sorted(one.id for one in sent)
    assert not committed.done()
    assert held.calls == 1  # one fsync for the three

    held.gate.set()
    await committed
    # The settled lines are synced by the committer too: a crash now sends nothing again.
    await until(lambda: len(deliver.outbox) == 0 and not deliver.outbox.dirty)
    after = crash_copy(tmp_path / "hooks", tmp_path / "after-crash")
    assert list(after) == []
    assert all(after.knows(one.id) for one in sent)
    after.close()


async def test_committed_detections_survive_a_crash_in_order(
    receiver, worker, detection: Callable[..., Detection], tmp_path: Path
) -> None:
    async def unavailable(_: object) -> web.Response:
        return web.Response(status=503)

    hook = await receiver(respond=unavailable)
    down = worker(WebhookSink("hooks", hook.url(), SECRET, in_flight=4))
    dispatcher = Dispatcher([down])
    dispatcher.start()
    sent = [detection(n) for n in (5, 2, 9, 1)]
    for one in sent:
        dispatcher.submit(one)
    await dispatcher.committed()
    crashed = crash_copy(tmp_path / "hooks", tmp_path / "after-crash")
    assert [pending.detection for pending in crashed] == sent
    crashed.close()


async def test_committed_without_a_running_committer_syncs_at_once(
    worker, detection: Callable[..., Detection], tmp_path: Path
) -> None:
    idle = worker(WebhookSink("hooks", "http://127.0.0.1:9/hook", SECRET))  # never started
    idle.submit(detection(1))
    assert idle.outbox.dirty
    await idle.committed()
    assert not idle.outbox.dirty
    crashed = crash_copy(tmp_path / "hooks", tmp_path / "after-crash")
    assert [pending.detection for pending in crashed] == [detection(1)]
    crashed.close()


def test_put_is_offered_at_once_and_on_disk_once_synced(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    box = Outbox(tmp_path / "box", DAY)
    box.add(detection(1))
    box.put(detection(2))
    box.put(detection(3))
    assert [p.detection for p in box] == [detection(1), detection(2), detection(3)]
    assert box.dirty and len(box) == 3
    box.settle(detection(2).id, "dead_letter")
    assert [p.detection for p in box] == [detection(1), detection(3)]
    before = crash_copy(tmp_path / "box", tmp_path / "crash-before-sync")
    assert [p.detection for p in before] == [detection(1)]  # only the added one
    before.close()
    box.sync()
    assert not box.dirty
    after = crash_copy(tmp_path / "box", tmp_path / "crash-after-sync")
    assert [p.detection for p in after] == [detection(1), detection(3)]
    assert after.knows(detection(2).id)
    after.close()
    box.close()
