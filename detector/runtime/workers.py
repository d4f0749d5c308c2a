"""Worker processes of the live service (`service.workers` above 1): they parse,
normalize and match the records taken off the intake queue; the service's process
serves the intake, correlates, alerts and responds.

The split is the replay's (`detector.parallel`): per event a worker sends back its time,
its single-event detections as JSON, and, only for an event that feeds a correlation,
its hits and evidence, so the correlation engine here decides exactly what it decides
when one process does everything. Events themselves do not cross processes, except the
JSON of an event with detections or hits when responders are configured (their
templates see it).

Workers are spawned, not forked: the service runs threads (fsyncs, the rule watcher),
and a fork copies none of them, so a lock one held would stay held in the child. Each
worker compiles the rule files the service compiled, from the same bytes
(`RuleSources`), so both hold the same rules whatever the files became since; a rule
reload starts new workers with the new rules, and the old ones finish what they have.

Each worker has a socket to the service: tasks (pickled records) go one way, outcomes
the other, each a length-prefixed frame, read and written by the event loop without
threads. A worker that dies closes its socket: its tasks in flight fail at once with
`WorkerDiedError`, and so does every later one. A worker whose service is gone reads
the end of its socket and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import socket
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from detector import parallel
from detector.config import Settings
from detector.deadletter import DeadLetter
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.rules import RuleSources
from detector.runtime.errors import WorkerDiedError, WorkerStartError
from detector.runtime.logs import configure_logging
from detector.runtime.ruleset import RuleSet, compile_rule_set, freeze_heap
from detector.sources.records import RawRecord

#: tasks in flight per worker: one being worked on, one waiting, so none waits for us
TASKS_PER_WORKER = 2
#: records and bytes of one task at most: large enough that the socket costs little per
#: record, small enough that a burst is spread over every worker
TASK_RECORDS = 512
TASK_BYTES = 256 * 1024
#: how long the workers may take to start (spawn, import, compile the rules)
START_SECONDS = 120.0
#: how long a worker may take to finish its tasks and exit once told to stop
STOP_SECONDS = 30.0

_LENGTH = struct.Struct("!Q")
#: the first frame of a worker that started; one that could not sends its error instead
_READY = b"ready"

#: what a task gives back: the outcomes of each of its records, in order
Outcomes = list[parallel.Results]


# -- in the worker -----------------------------------------------------------------------


def _serve(
    connection: socket.socket, settings: Settings, sources: RuleSources, keep_events: bool
) -> None:
    """A worker's life: build the service's normalizers and rules, say so, then answer
    each task with its outcomes until the service closes the socket."""
    # Signals for the service's process group (Ctrl-C, `kill -TERM -PGID`) are the
    # service's to act on: it finishes the tasks in flight, then closes the sockets.
    os.setpgrp()
    configure_logging(settings.service.log_level)  # the service's JSON lines, masked
    with connection, contextlib.suppress(ConnectionError):  # the service is gone
        try:
            _install(settings, sources, keep_events)
        except Exception as exc:
            _send_frame(connection, f"{type(exc).__name__}: {exc}".encode())
            return
        _send_frame(connection, _READY)
        while (frame := _receive_frame(connection)) is not None:
            records: list[RawRecord] = pickle.loads(frame)
            _send_frame(connection, pickle.dumps(_work(records), pickle.HIGHEST_PROTOCOL))


def _install(settings: Settings, sources: RuleSources, keep_events: bool) -> None:
    registry = build_registry(settings.sources)
    stage = NormalizeStage(registry, identities=settings.identities.load(registry.names))
    rule_set = compile_rule_set(settings, registry, sources)
    if not isinstance(rule_set, RuleSet):  # the service compiled these very bytes
        raise WorkerStartError(f"the service's rules do not compile here: {rule_set[:3]}")
    detection = rule_set.stage
    state = parallel.WorkerState(stage, detection.router, detection.engine, None, keep_events)
    parallel.install_worker(state)
    freeze_heap()  # as the service does


def _work(records: Sequence[RawRecord]) -> Outcomes:
    """The outcomes of each of `records`, in order; a record whose processing fails is a
    dead letter with the error, and the next ones go on (as in the service's process)."""
    results: Outcomes = []
    for raw in records:
        try:
            results.append(parallel.record_outcomes((raw,)))
        except Exception as exc:
            results.append([DeadLetter.of_failure(raw, exc)])
    return results


def _send_frame(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(_LENGTH.pack(len(payload)) + payload)


def _receive_frame(connection: socket.socket) -> bytes | None:
    """The next frame, None at the end of the socket (inside a frame too: the service
    is gone)."""
    header = _receive_exactly(connection, _LENGTH.size)
    if header is None:
        return None
    return _receive_exactly(connection, _LENGTH.unpack(header)[0])


def _receive_exactly(connection: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


# -- in the service ----------------------------------------------------------------------


@dataclass
class _Worker:
    """One worker process as the service sees it."""

    number: int
    process: BaseProcess
    connection: socket.socket
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    #: the answers awaited, in the order the tasks were sent
    waiting: deque[asyncio.Future[Outcomes]] = field(default_factory=deque)
    listening: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"worker {self.number} (pid {self.process.pid})"


class LiveWorkers:
    """`count` spawned worker processes holding one compiled rule set."""

    def __init__(
        self, count: int, settings: Settings, sources: RuleSources, keep_events: bool
    ) -> None:
        self.count = count
        self._failure: WorkerDiedError | None = None
        #: fails with `WorkerDiedError` when a worker dies (set by `started`)
        self.failed: asyncio.Future[None] | None = None
        self._stopping = False
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        for number in range(count):
            ours, theirs = socket.socketpair()
            process = context.Process(
                target=_serve,
                args=(theirs, settings, sources, keep_events),
                name=f"detector-worker-{number}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._workers.append(_Worker(number, process, ours))

    @property
    def window(self) -> int:
        """How many tasks to keep in flight."""
        return self.count * TASKS_PER_WORKER

    async def started(self) -> None:
        """Return once every worker has compiled its rules; `WorkerStartError` for one
        that could not (or not within `START_SECONDS`)."""
        self.failed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(START_SECONDS):
                for worker in self._workers:
                    reader, writer = await asyncio.open_connection(sock=worker.connection)
                    worker.reader, worker.writer = reader, writer
                    first = await _read_frame(reader)
                    if first != _READY:
                        why = "its socket ended" if first is None else first.decode()
                        raise WorkerStartError(f"{worker.describe()} did not start: {why}")
                    worker.listening = asyncio.create_task(self._listen(worker))
        except TimeoutError:
            await self.shutdown()
            raise WorkerStartError(f"the workers did not start within {START_SECONDS:g}s") from None
        except BaseException:
            await self.shutdown()
            raise

    def submit(self, records: Sequence[RawRecord]) -> asyncio.Future[Outcomes]:
        """The outcomes of each of `records`, from the worker with the fewest tasks."""
        if self._failure is not None:
            raise self._failure
        # a worker whose socket just ended is not given more while it is found dead
        alive = [w for w in self._workers if w.writer is not None and not w.writer.is_closing()]
        if not alive:
            raise WorkerDiedError("every worker's socket is closed")
        worker = min(alive, key=lambda w: len(w.waiting))
        assert worker.writer is not None
        payload = pickle.dumps(list(records), pickle.HIGHEST_PROTOCOL)
        worker.writer.writelines((_LENGTH.pack(len(payload)), payload))
        answer: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
        worker.waiting.append(answer)
        return answer

    async def shutdown(self) -> None:
        """Let the tasks given finish, then end the workers: each sees its socket end
        and exits (one that does not within `STOP_SECONDS` is killed)."""
        self._stopping = True
        for worker in self._workers:
            if worker.writer is None:
                worker.connection.close()
            elif not worker.writer.is_closing():  # a dead worker's is closed
                worker.writer.write_eof()
        listening = [w.listening for w in self._workers if w.listening is not None]
        await asyncio.gather(*listening, return_exceptions=True)
        for worker in self._workers:
            await asyncio.to_thread(worker.process.join, STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join)
            if worker.writer is not None:
                worker.writer.close()

    async def _listen(self, worker: _Worker) -> None:
        """Answer `worker`'s tasks in order as its outcomes come. Its socket ending
        before `shutdown` asked for it, or with tasks unanswered, means it died: that
        task and every later one fail."""
        assert worker.reader is not None
        try:
            while (frame := await _read_frame(worker.reader)) is not None:
                answer = worker.waiting.popleft()
                if not answer.done():
                    answer.set_result(pickle.loads(frame))
        except Exception as exc:  # a frame that does not read: the worker is not sane
            self._died(worker, f"{type(exc).__name__}: {exc}")
            return
        if not self._stopping or worker.waiting:
            await asyncio.to_thread(worker.process.join, STOP_SECONDS)
            self._died(worker, f"exit code {worker.process.exitcode}")

    def _died(self, worker: _Worker, why: str) -> None:
        self._failure = WorkerDiedError(f"{worker.describe()} ended: {why}")
        if self.failed is not None and not self.failed.done():
            self.failed.set_exception(self._failure)
        for other in self._workers:
            while other.waiting:
                answer = other.waiting.popleft()
                if not answer.done():
                    answer.set_exception(self._failure)


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame, None at the end of the stream (or when the other end is gone)."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        return await reader.readexactly(_LENGTH.unpack(header)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
