"""The outbox of one sink: what it still has to deliver, durable and deduplicated by id.

One directory per sink holds `journal.jsonl`, a journal of JSON lines:

    {"op":"enqueue","id":"…","at":1741611463.9,"detection":{…}}
    {"op":"done","id":"…","at":1741611464.2,"outcome":"delivered"}

`outcome` is `delivered` or `dead_letter`. A detection is pending from its `enqueue` line
until its `done` line. `add` appends the `enqueue` line and fsyncs before it returns, so
a detection the caller handed over survives any crash after that. `put` is the group
commit: it only writes the line, and the next `commit` (one fsync, in a thread, for
every line written since the last) or `sync` makes it durable. The detection is offered
for delivery (`head`) at once, while that sync runs: a crash before it can make the
outbox forget a detection it has already sent, which costs nothing but a second
delivery, under the same id, if the detection is made again after the restart; waiting
for the sync instead would lose nothing less (a crash before it forgets an unsent
detection either way) and put the disk's sync latency into every alert's. `settle`
writes the `done` line once the endpoint took the detection (or it went to the dead
letters), durable with the next commit. A crash between delivery and that commit sends
the detection again after the restart: delivery is at least once, under the same id,
which endpoints use to deduplicate.

Ids stay known after they are settled, for `remember` seconds, so the same detection
enqueued again (a replay, a restarted pipeline) is not delivered twice. Opening the
outbox rewrites the journal atomically (`done` lines of the remembered ids, then the
pending detections in order), which also drops a line a crash cut short; the journal
is rewritten the same way every `COMPACT_EVERY` appends. A lock file keeps a second
process out of the directory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from detector.detections import Detection
from detector.sinks.durable import AppendLog, fsync_directory, lock_exclusively, write_atomically

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
LOCK = "lock"
COMPACT_EVERY = 10_000
Settled = Literal["delivered", "dead_letter"]


class OutboxError(RuntimeError):
    """An outbox that cannot be opened: in use, or a journal damaged in its middle."""


@dataclass(slots=True)
class Pending:
    """A detection waiting for delivery. `attempts` and `last_error` live in memory only."""

    detection: Detection
    enqueued_at: float
    attempts: int = 0
    last_error: str | None = None

    @property
    def id(self) -> str:
        return self.detection.id


def _enqueue_line(pending: Pending) -> bytes:
    return orjson.dumps(
        {
            "op": "enqueue",
            "id": pending.id,
            "at": pending.enqueued_at,
            "detection": orjson.Fragment(pending.detection.to_json()),
        }
    )


def _done_line(detection_id: str, at: float, outcome: Settled) -> bytes:
    return orjson.dumps({"op": "done", "id": detection_id, "at": at, "outcome": outcome})


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _lock(directory: Path) -> IO[bytes]:
    handle = lock_exclusively(directory / LOCK)
    if handle is None:
        raise OutboxError(f"{directory}: the outbox is in use by another process")
    return handle


class Outbox:
    """Pending detections in delivery order, and the ids already settled."""

    def __init__(
        self, directory: Path, remember: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self._remember = remember
        self._clock = clock
        # Arrival order (the journal's, and the deadlines'), and the order of delivery.
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._queue: OrderedDict[str, Pending] = OrderedDict()
        self._done: dict[str, tuple[float, Settled]] = {}
        # Lines are numbered as written; those up to `_synced` are on disk.
        self._written = self._synced = 0
        self._committing = 0  # fsyncs running in a thread: the journal must stay open
        if not directory.exists():
            directory.mkdir(parents=True)
            fsync_directory(directory.parent)
        self._lock = _lock(directory)
        try:
            self._load(directory / JOURNAL)
            self._log = self._compact()
        except BaseException:
            self._lock.close()
            raise
        self._appended = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[Pending]:
        """The pending detections, next to deliver first."""
        return iter(list(self._queue.values()))

    def first(self) -> Pending | None:
        return next(iter(self._queue.values()), None)

    def head(self, count: int) -> list[Pending]:
        """The next `count` (at most) to deliver, in order."""
        return list(itertools.islice(self._queue.values(), count))

    def enqueued_before(self, moment: float) -> list[Pending]:
        """The pending detections enqueued before `moment`, oldest first; looks no further
        than the first younger one."""
        found = []
        for pending in self._pending.values():
            if pending.enqueued_at >= moment:
                break
            found.append(pending)
        return found

    def knows(self, detection_id: str) -> bool:
        return detection_id in self._pending or detection_id in self._done

    @property
    def dirty(self) -> bool:
        """Lines written that are not on disk yet."""
        return self._synced < self._written

    @property
    def written(self) -> int:
        """The number of the last line written."""
        return self._written

    @property
    def synced(self) -> int:
        """The number of the last line on disk."""
        return self._synced

    def put(self, detection: Detection) -> bool:
        """Keep `detection` for delivery, offered at once and on disk after the next
        `commit` or `sync`; False for a known id."""
        if self.knows(detection.id):
            return False
        pending = Pending(detection, self._clock())
        self._write(_enqueue_line(pending))
        self._keep(pending)
        return True

    def add(self, detection: Detection) -> bool:
        """Keep `detection` for delivery, on disk before returning; False for a known id."""
        if not self.put(detection):
            return False
        self.sync()
        return True

    def sync(self) -> None:
        """Every line written so far on disk before returning (in this thread)."""
        upto = self._flush()
        self._log.fsync()
        self._durable(upto)

    async def commit(self) -> None:
        """Every line written so far on disk, the fsync in a thread so that the event loop
        goes on (and writes more lines, for the next commit) meanwhile."""
        upto = self._flush()
        self._committing += 1
        try:
            await asyncio.to_thread(self._log.fsync)
        finally:
            self._committing -= 1
        self._durable(upto)

    def settle(self, detection_id: str, outcome: Settled) -> None:
        """The detection needs no more attempts: it was delivered or dead-lettered. The
        `done` line is durable with the next commit."""
        at = self._clock()
        self._write(_done_line(detection_id, at, outcome))
        self._forget(detection_id, at, outcome)
        self._compact_if_due()

    def to_back(self, detection_id: str) -> None:
        """Let the others go first (in memory: a restart keeps the journal's order)."""
        self._queue.move_to_end(detection_id)

    def close(self) -> None:
        """Sync what is written and close; no `commit` may be running."""
        if self.dirty:
            self.sync()
        self._log.close()
        self._lock.close()

    def _keep(self, pending: Pending) -> None:
        self._pending[pending.id] = self._queue[pending.id] = pending

    def _flush(self) -> int:
        """Written lines to the operating system; the number of the last one."""
        self._log.flush()
        return self._written

    def _durable(self, upto: int) -> None:
        """Lines up to `upto` are on disk."""
        self._synced = max(self._synced, upto)
        self._compact_if_due()

    def _compact_if_due(self) -> None:
        if self._appended < COMPACT_EVERY or self._committing:
            return  # a running fsync still holds the journal: the commit's end compacts
        old, self._log = self._log, self._compact()
        old.close()
        self._appended = 0
        self._durable(self._written)  # the rewritten journal has every line on disk

    def _forget(self, detection_id: str, at: float, outcome: Settled) -> None:
        self._pending.pop(detection_id, None)
        self._queue.pop(detection_id, None)
        self._done[detection_id] = (at, outcome)

    def _write(self, line: bytes) -> None:
        self._log.write(line)
        self._written += 1
        self._appended += 1

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                self._apply(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                if any(_is_record(later) for later in lines[number:]):
                    raise OutboxError(f"{path}:{number}: unreadable record: {exc}") from exc
                log.warning("%s:%d: dropping a record cut short by a crash", path, number)
                return

    def _apply(self, record: dict[str, Any]) -> None:
        op, detection_id, at = record["op"], record["id"], float(record["at"])
        if op == "enqueue":
            if not self.knows(detection_id):
                self._keep(Pending(Detection.model_validate(record["detection"]), at))
        elif op == "done" and record["outcome"] in ("delivered", "dead_letter"):
            self._forget(detection_id, at, record["outcome"])
        else:
            raise ValueError(f"unknown record {op!r}")

    def _compact(self) -> AppendLog:
        horizon = self._clock() - self._remember
        self._done = {key: value for key, value in self._done.items() if value[0] >= horizon}
        path = self.directory / JOURNAL
        write_atomically(
            path,
            [
                *(_done_line(key, at, outcome) for key, (at, outcome) in self._done.items()),
                *(_enqueue_line(pending) for pending in self._pending.values()),
            ],
        )
        return AppendLog(path)
