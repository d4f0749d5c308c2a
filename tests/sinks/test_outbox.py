"""The outbox keeps every handed-over detection across crashes and knows each id once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from detector.detections import Detection
from detector.sinks import outbox as outbox_module
from detector.sinks.outbox import JOURNAL, Outbox, OutboxError

DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def journal(directory: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (directory / JOURNAL).read_bytes().splitlines()]


def enqueue_record(detection: Detection, at: float) -> dict[str, object]:
    return {"op": "enqueue", "id": detection.id, "at": at, "detection": detection.to_dict()}


def test_a_detection_is_in_the_journal_when_add_returns(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    first = detection(1)
    box = Outbox(tmp_path, DAY, Clock(1_000.5))
    assert box.add(first) is True
    # Read while the outbox is still open: nothing waits in a buffer.
    assert journal(tmp_path) == [enqueue_record(first, 1_000.5)]
    box.close()


def test_pending_detections_come_back_in_order_after_a_restart(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    clock = Clock()
    box = Outbox(tmp_path, DAY, clock)
    for n in (3, 1, 2):
        clock.now += 1
        box.add(detection(n))
    box.settle(detection(1).id, "delivered")
    box.to_back(detection(3).id)  # in memory only
    assert [p.detection for p in box] == [detection(2), detection(3)]
    # Deadlines go by arrival, whatever the order of delivery.
    assert [p.detection for p in box.enqueued_before(1_003.5)] == [detection(3), detection(2)]
    assert [p.detection for p in box.enqueued_before(1_003.0)] == [detection(3)]
    box.close()

    again = Outbox(tmp_path, DAY, clock)
    assert [(p.detection, p.enqueued_at) for p in again] == [
        (detection(3), 1_001.0),
        (detection(2), 1_003.0),
    ]
    assert len(again) == 2
    again.close()


def test_an_id_is_taken_once_pending_settled_and_after_a_restart(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    box = Outbox(tmp_path, DAY, Clock())
    assert box.add(detection(1)) is True
    assert box.add(detection(1)) is False
    box.settle(detection(1).id, "dead_letter")
    assert box.add(detection(1)) is False
    box.close()
    again = Outbox(tmp_path, DAY, Clock())
    assert again.add(detection(1)) is False
    assert len(again) == 0
    again.close()


def test_opening_compacts_and_forgets_ids_settled_longer_ago_than_remember(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    clock = Clock(1_000.0)
    box = Outbox(tmp_path, 100.0, clock)
    for n in (1, 2, 3):
        box.add(detection(n))
    box.settle(detection(1).id, "delivered")
    clock.now = 1_050.0
    box.settle(detection(2).id, "dead_letter")
    box.close()

    clock.now = 1_120.0  # detection 1 settled 120 s ago, detection 2 70 s ago
    again = Outbox(tmp_path, 100.0, clock)
    assert journal(tmp_path) == [
        {"op": "done", "id": detection(2).id, "at": 1_050.0, "outcome": "dead_letter"},
        enqueue_record(detection(3), 1_000.0),
    ]
    assert again.add(detection(1)) is True
    assert again.add(detection(2)) is False
    again.close()


def test_the_journal_is_compacted_while_running(
    tmp_path: Path, detection: Callable[..., Detection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "COMPACT_EVERY", 3)
    box = Outbox(tmp_path, DAY, Clock())
    box.add(detection(1))
    box.add(detection(2))
    box.settle(detection(1).id, "delivered")  # third append
    assert journal(tmp_path) == [
        {"op": "done", "id": detection(1).id, "at": 1_000.0, "outcome": "delivered"},
        enqueue_record(detection(2), 1_000.0),
    ]
    box.add(detection(3))  # appends go on after the rewrite
    box.close()
    again = Outbox(tmp_path, DAY, Clock())
    assert [p.detection for p in again] == [detection(2), detection(3)]
    again.close()


def _state_of(prefix: bytes) -> list[str]:
    """Pending ids after replaying the whole records of a journal's first bytes (the last
    one may lack only its newline)."""
    pending: dict[str, None] = {}
    for line in prefix.split(b"\n"):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if record["op"] == "enqueue":
            pending[record["id"]] = None
        else:
            pending.pop(record["id"], None)
    return list(pending)


def test_a_crash_at_any_byte_loses_only_the_record_it_cut(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    origin = tmp_path / "origin"
    box = Outbox(origin, DAY, Clock())
    for n in (1, 2, 3):
        box.add(detection(n))
    box.settle(detection(2).id, "delivered")
    box.close()
    data = (origin / JOURNAL).read_bytes()
    boundaries = [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    cuts = sorted({*range(0, len(data), 23), *boundaries, *(b - 1 for b in boundaries)})

    for cut in cuts:
        directory = tmp_path / f"cut-{cut}"
        directory.mkdir()
        (directory / JOURNAL).write_bytes(data[:cut])
        crashed = Outbox(directory, DAY, Clock())
        assert [p.id for p in crashed] == _state_of(data[:cut]), cut
        crashed.add(detection(4))  # the next append starts on a line of its own
        crashed.close()
        reopened = Outbox(directory, DAY, Clock())
        assert [p.id for p in reopened] == [*_state_of(data[:cut]), detection(4).id], cut
        reopened.close()


def test_a_damaged_record_before_good_ones_stops_the_outbox_from_opening(
    tmp_path: Path, detection: Callable[..., Detection]
) -> None:
    box = Outbox(tmp_path, DAY, Clock())
    box.add(detection(1))
    box.add(detection(2))
    box.close()
    lines = (tmp_path / JOURNAL).read_bytes().splitlines()
    (tmp_path / JOURNAL).write_bytes(b"\n".join([lines[0][:40], lines[1], b""]))
    with pytest.raises(OutboxError, match=r"journal\.jsonl:1: unreadable record"):
        Outbox(tmp_path, DAY, Clock())


def test_one_process_at_a_time(tmp_path: Path) -> None:
    box = Outbox(tmp_path, DAY, Clock())
    with pytest.raises(OutboxError, match="in use by another process"):
        Outbox(tmp_path, DAY, Clock())
    box.close()
    Outbox(tmp_path, DAY, Clock()).close()
