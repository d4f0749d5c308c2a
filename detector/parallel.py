"""Replay on several cores: worker processes split, parse, normalize and match the
records and write the single-event detections; this process reads, merges, correlates
and writes.

The work per record (about nine tenths of a replay's CPU time) needs nothing but the
record, so it splits across processes; correlation needs every event in event-time order,
so it stays in one. This process reads JSON-lines and text files in blocks of whole
lines and leaves the lines to the workers (other layouts go as records). What a worker
sends back per event is small: the merge key (the time in microseconds), the detections
as JSON, and, only when the event feeds a correlation, its hits, evidence and raw JSON
(for a late event's dead letter). Events themselves never cross processes.

The output is the single-process replay's, byte for byte and in the same order: the
workers keep the input order of each file (tasks are taken back in the order they were
sent), and the merge, the skip of a resumed run, the selection counts, the correlation
engine and the checkpoints run here exactly as `pipeline.replay_detections` runs them.

Workers are forked from this process after the rules are loaded, so they start with its
rules, identity map and settings at no cost; anything that needs whole events (a report,
playbooks, a sink, pacing) runs in the single process instead.
"""

from __future__ import annotations

import gc
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partial
from itertools import groupby, islice
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Final, cast

import orjson

from detector.correlate import CorrelationEngine
from detector.correlate.engine import Hit, evidence_of, late_letter, microseconds
from detector.correlate.packed import Ev
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.detections import Detection
from detector.normalize import NormalizeStage
from detector.pipeline import (
    BATCH_EVENTS,
    Checkpointer,
    EventSelection,
    RunCounts,
    SingleEventMatcher,
    counted,
    counted_detections,
    end_of_input,
)
from detector.rules.routing import RuleRouter
from detector.sources.files import LineBlock, ProgressCallback, read_parts
from detector.sources.merge import merge_by_event_time
from detector.sources.records import RawRecord

#: Records per task (a block of lines is about 1 MiB): large enough that the cost of a
#: task is small against its work.
CHUNK: Final = 1024
#: Tasks in flight in all: keeps the workers busy while bounding memory (each input of a
#: merge has one at least).
IN_FLIGHT: Final = 8


#: One event as a worker saw it: (time in microseconds, source, event id, its
#: single-event detections as (rule title, JSON) pairs or None when the selection left
#: it out, the hits it gives the correlations, its evidence and raw JSON (only with hits:
#: the JSON is a late event's dead letter), the hits left out for a missing group-by
#: field (the engine's `ungrouped`), and the event's JSON when the state keeps events and
#: it has detections or hits (the live service's responders see it). A plain tuple of
#: plain values: it crosses a pipe per event.
Outcome = tuple[
    int,
    str,
    str,
    tuple[tuple[str, bytes], ...] | None,
    tuple[Hit, ...],
    Ev | None,
    bytes | None,
    int,
    bytes | None,
]

#: Sorts before any event's place: the place of a dead letter no event came before.
_FIRST_OUTCOME: Final = (-(1 << 63), "", "")


def outcome_key(result: Outcome) -> tuple[int, str, str]:
    """Where an outcome goes in the merged stream: its event's place (the time in
    microseconds orders as the timestamp does)."""
    return (result[0], result[1], result[2])


@dataclass(frozen=True)
class WorkerState:
    """What each worker matches with: the objects of this process, inherited by fork."""

    stage: NormalizeStage
    router: RuleRouter
    engine: CorrelationEngine
    selection: EventSelection | None
    #: send back the JSON of each event with detections or hits
    keep_events: bool = False


_state: WorkerState | None = None
#: the worker's single-event matcher (it keeps each rule's reference for every task)
_matcher: SingleEventMatcher | None = None


def install_worker(state: WorkerState) -> None:
    """Make `state` what this process's tasks work with (a worker's start)."""
    global _state, _matcher
    _state = state
    _matcher = SingleEventMatcher(state.router, state.engine.silenced)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the process that started it handles Ctrl-C


Results = list[Outcome | DeadLetter]


def _work_block(block: LineBlock) -> Results:
    """The outcomes of a block of whole lines, in order (a worker's task)."""
    assert _state is not None, "a task ran outside a worker"
    return record_outcomes(_state.stage.join_continuation_lines(block.records()))


def record_outcomes(records: Iterable[RawRecord]) -> Results:
    """The outcomes of `records`, in order (a worker's task for a chunk of records, the
    work of a block's, and the live service's workers' work)."""
    state, matcher = _state, _matcher
    assert state is not None and matcher is not None, "a task ran outside a worker"
    engine, selection = state.engine, state.selection
    results: Results = []
    pending = iter(records)
    # a batch normalized before any is matched, as `pipeline.replay_detections` does
    while chunk := list(islice(pending, BATCH_EVENTS)):
        for result in list(state.stage.process_batch(chunk)):
            if type(result) is DeadLetter:
                results.append(result)
                continue
            event = result
            time = microseconds(event.timestamp)
            if selection is not None and not selection.accepts(event):
                results.append(
                    (time, event.event_source, event.event_id, None, (), None, None, 0, None)
                )
                continue
            matched = state.router.match(event)
            if not matched:  # most events: no detection, nothing for the correlations
                results.append(
                    (time, event.event_source, event.event_id, (), (), None, None, 0, None)
                )
                continue
            detections = tuple(
                (detection.rule.title, detection.to_json())
                for detection in matcher.detections_for(event, matched)
            )
            ungrouped = engine.stats.ungrouped
            hits = engine.hits(event, matched)
            evidence, data = None, None
            if hits:
                evidence = evidence_of(event, time)
                data = orjson.dumps(event.raw)
            kept = event.to_json() if state.keep_events and (detections or hits) else None
            results.append(
                (
                    time,
                    event.event_source,
                    event.event_id,
                    detections,
                    hits,
                    evidence,
                    data,
                    engine.stats.ungrouped - ungrouped,
                    kept,
                )
            )
    return results


#: A worker's task: its function and argument list.
Task = tuple[Callable[..., Results], tuple[object, ...]]


class Workers:
    """Forked worker processes; `outcomes` maps one input's tasks through them.

    A worker that dies (killed, out of memory) fails the replay with
    `BrokenProcessPool` instead of leaving it waiting for the chunk it held.

    The workers send their results through one pipe, each result whole under a lock
    between them. A worker that dies halfway through sending one leaves the pool's
    thread waiting for the rest of it and the other workers waiting for the lock, so the
    pool would never see the death: this process closes its own end for writing (only
    the workers write to it) and a watcher ends every worker as soon as one ends, so
    the pipe reads as ended and the pool breaks as for any other death.
    """

    def __init__(self, count: int, state: WorkerState) -> None:
        self._pool = ProcessPoolExecutor(
            count,
            mp_context=multiprocessing.get_context("fork"),
            initializer=install_worker,
            initargs=(state,),
        )
        # Fork every worker now, before this process starts threads (a progress display,
        # a sink): a fork copies no thread, so a lock one of them held would stay held.
        # The objects so far (the rules above all) are frozen out of the workers'
        # collections: walking them would copy every page they sit on into each worker.
        gc.collect()
        gc.freeze()
        try:
            self._pool.submit(int).result()
        except BrokenProcessPool:  # a worker died as it started: the others go too
            self._pool.shutdown(cancel_futures=True)
            raise
        finally:
            gc.unfreeze()  # this process collects them as before
        self._pool._result_queue._writer.close()  # type: ignore[attr-defined]
        stop, self._stop = multiprocessing.Pipe(duplex=False)
        processes = list(self._pool._processes.values())
        self._watcher = threading.Thread(
            target=_end_all_once_one_ends, args=(processes, stop), daemon=True
        )
        self._watcher.start()  # a thread, so after the fork

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.close()  # the workers are about to end: the watcher stops first
        self._watcher.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def outcomes(self, tasks: Iterable[Task], ahead: int) -> Iterator[Outcome | DeadLetter]:
        """The outcomes of `tasks`, in their order, with `ahead` tasks in flight."""
        tasks = iter(tasks)
        pending: deque[Future[Results]] = deque(
            [self._pool.submit(work, *arguments) for work, arguments in islice(tasks, ahead)]
        )
        while pending:
            done = pending.popleft().result()
            following = next(tasks, None)
            if following is not None:
                work, arguments = following
                pending.append(self._pool.submit(work, *arguments))
            yield from done


def _end_all_once_one_ends(processes: list[BaseProcess], stop: Connection) -> None:
    """Terminate every worker of `processes` once one has ended, unless `stop` (the
    reading end of a pipe) ends first."""
    with stop:
        if stop not in wait([stop] + [process.sentinel for process in processes]):
            for process in processes:
                process.terminate()


def file_tasks(
    name: str, stage: NormalizeStage, progress: ProgressCallback | None
) -> Iterator[Task]:
    """The tasks of one input: a block of whole lines each, or `CHUNK` records of a JSON
    array or of concatenated JSON values."""
    parts = _aligned(read_parts([name], progress), stage)
    for blocks, group in groupby(parts, key=lambda part: isinstance(part, LineBlock)):
        if blocks:
            for block in group:
                yield _work_block, (block,)
        else:
            records = cast(Iterator[RawRecord], group)  # the parts that are not blocks
            yield from record_tasks(stage.join_continuation_lines(records))


def _aligned(
    parts: Iterable[LineBlock | RawRecord], stage: NormalizeStage
) -> Iterator[LineBlock | RawRecord]:
    """`parts` with every block starting where a record starts: the continuation lines at
    the head of a block (a Jenkins script body cut by the block's end) go to the block
    before, so each block's records are those of the whole file."""
    held: LineBlock | None = None
    for part in parts:
        if not isinstance(part, LineBlock):
            if held is not None:
                yield held
                held = None
            yield part
            continue
        if held is not None:
            cut = stage.continuation_length(part.data, part.source)
            if cut:
                held = replace(held, data=held.data + part.data[:cut])
                if cut == len(part.data):
                    continue
                lines = part.data.count(b"\n", 0, cut)
                part = replace(part, data=part.data[cut:], first_line=part.first_line + lines)
            yield held
        held = part
    if held is not None:
        yield held


def record_tasks(records: Iterable[RawRecord]) -> Iterator[Task]:
    """Tasks of `CHUNK` records each."""
    iterator = iter(records)
    while chunk := list(islice(iterator, CHUNK)):
        yield record_outcomes, (chunk,)


def correlate(engine: CorrelationEngine, result: Outcome) -> list[Detection | DeadLetter]:
    """What the correlations decide on a worker's outcome of one event: its hits taken
    (a late event's dead letter among what comes back), or the event time advanced."""
    time, source, event_id, _, hits, evidence, data, ungrouped, _ = result
    engine.stats.ungrouped += ungrouped
    if not hits:
        return engine.advance(time)
    late = partial(late_letter, time, source, event_id, data or b"")
    return engine.take(time, hits, evidence, late)


def parallel_replay(
    pool: Workers,
    files: Sequence[str],
    stage: NormalizeStage,
    engine: CorrelationEngine,
    letters: DeadLetterFile,
    counts: RunCounts,
    progress: ProgressCallback | None = None,
    skip: int = 0,
    checkpointer: Checkpointer | None = None,
    before_event: Callable[[], None] | None = None,
    records: Iterable[RawRecord] | None = None,
) -> Iterator[bytes]:
    """`pipeline.replay_detections` with the work per record done by `pool` (whose
    workers hold the router and the selection): every detection as the JSON it writes,
    in the same order. `before_event` runs before each selected event is used
    (progress). The files are read here, so `progress` follows them as they are read."""
    ahead = max(1, IN_FLIGHT // (len(files) + (records is not None)))
    inputs = [pool.outcomes(file_tasks(name, stage, progress), ahead) for name in files]
    if records is not None:
        inputs.append(pool.outcomes(record_tasks(records), ahead))
    merged = merge_by_event_time(inputs, outcome_key, _FIRST_OUTCOME)
    outcomes: Iterator[Outcome] = counted(merged, letters, counts, skip)
    for result in outcomes:
        source, detections = result[1], result[3]
        counts.normalized += 1
        counts.count_source(source)
        if detections is None:
            counts.filtered += 1
            continue
        if before_event is not None:
            before_event()
        for title, line in detections:
            counts.by_rule[title] += 1
            yield line
        decided = correlate(engine, result)
        if decided:  # most events decide nothing: no generator for them
            for detection in counted_detections(decided, letters, counts):
                yield detection.to_json()
        if checkpointer is not None:
            checkpointer.events_done()
    for detection in end_of_input(engine, counts, checkpointer):
        yield detection.to_json()
