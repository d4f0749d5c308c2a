"""Replay on several cores: worker processes parse, normalize and match the records and
write the single-event detections; this process merges, correlates and writes.

The work per record (about nine tenths of a replay's CPU time) needs nothing but the
record, so it splits across processes; correlation needs every event in event-time order,
so it stays in one. What a worker sends back per event is small: the merge key, the
detections as JSON, and, only when the event feeds a correlation, its hits, evidence
and raw JSON (for a late event's dead letter). Events themselves never cross processes.

The output is the single-process replay's, byte for byte and in the same order: the
workers keep the input order of each file (chunks are taken back in the order they were
sent), and the merge, the skip of a resumed run, the selection counts, the correlation
engine and the checkpoints run here exactly as `pipeline.replay_detections` runs them.

Workers are forked from this process after the rules are loaded, so they start with its
rules, identity map and settings at no cost; anything that needs whole events (a report,
playbooks, a sink, pacing) runs in the single process instead.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice

import orjson

from detector.correlate import CorrelationEngine
from detector.correlate.engine import Hit, evidence_of, late_letter, microseconds
from detector.correlate.packed import Ev
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.normalize import NormalizeStage
from detector.pipeline import (
    Checkpointer,
    EventSelection,
    RunCounts,
    SingleEventMatcher,
    counted,
    file_records,
)
from detector.rules.routing import RuleRouter
from detector.sources.files import ProgressCallback
from detector.sources.merge import MergeKey, merge_by_event_time
from detector.sources.records import RawRecord

#: Records per task: large enough that the cost of a task is small against its work.
CHUNK = 512
#: Tasks in flight per input: keeps the workers busy while bounding memory.
AHEAD = 4


#: One event as a worker saw it: (timestamp, source, event id, its single-event
#: detections as (rule title, JSON) pairs or None when the selection left it out, the
#: hits it gives the correlations, its evidence and raw JSON (only with hits: the
#: JSON is a late event's dead letter), and the hits left out for a missing group-by
#: field (the engine's `ungrouped`). A plain tuple: it crosses a pipe per event.
Outcome = tuple[
    datetime,
    str,
    str,
    tuple[tuple[str, bytes], ...] | None,
    tuple[Hit, ...],
    Ev | None,
    bytes | None,
    int,
]


def outcome_key(result: Outcome) -> MergeKey:
    """Where an outcome goes in the merged stream: its event's place."""
    return (result[0], result[1], result[2])


@dataclass(frozen=True)
class WorkerState:
    """What each worker matches with: the objects of this process, inherited by fork."""

    stage: NormalizeStage
    router: RuleRouter
    engine: CorrelationEngine
    selection: EventSelection | None


_state: WorkerState | None = None
#: the worker's single-event matcher (it keeps each rule's reference for every task)
_matcher: SingleEventMatcher | None = None


def _install(state: WorkerState) -> None:
    global _state, _matcher
    _state = state
    _matcher = SingleEventMatcher(state.router, state.engine.silenced)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the replay's process handles Ctrl-C


#: A record as it is sent to a worker: `RawRecord`'s fields (a tuple pickles in a
#: quarter of the time a dataclass does).
Sent = tuple[bytes, str, str | None, str | None]


def _work(records: Sequence[Sent]) -> list[Outcome | DeadLetter]:
    """The outcomes of a chunk of records, in order (a worker's task)."""
    state, matcher = _state, _matcher
    assert state is not None and matcher is not None, "a task ran outside a worker"
    engine, selection = state.engine, state.selection
    results: list[Outcome | DeadLetter] = []
    for fields in records:
        for result in state.stage.process(RawRecord(*fields)):
            if isinstance(result, DeadLetter):
                results.append(result)
                continue
            event = result
            if selection is not None and not selection.accepts(event):
                results.append(
                    (event.timestamp, event.event_source, event.event_id, None, (), None, None, 0)
                )
                continue
            matched = state.router.match(event)
            detections = tuple(
                (detection.rule.title, detection.to_json())
                for detection in matcher.detections_for(event, matched)
            )
            ungrouped = engine.stats.ungrouped
            hits = engine.hits(event, matched) if matched else ()
            evidence, data = None, None
            if hits:
                evidence = evidence_of(event, microseconds(event.timestamp))
                data = orjson.dumps(event.raw)
            results.append(
                (
                    event.timestamp,
                    event.event_source,
                    event.event_id,
                    detections,
                    hits,
                    evidence,
                    data,
                    engine.stats.ungrouped - ungrouped,
                )
            )
    return results


class Workers:
    """Forked worker processes; `outcomes` maps one input's records through them.

    A worker that dies (killed, out of memory) fails the replay with
    `BrokenProcessPool` instead of leaving it waiting for the chunk it held.
    """

    def __init__(self, count: int, state: WorkerState) -> None:
        self._pool = ProcessPoolExecutor(
            count,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_install,
            initargs=(state,),
        )
        # Fork every worker now, before this process starts threads (a progress display,
        # a sink): a fork copies no thread, so a lock one of them held would stay held.
        self._pool.submit(int).result()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def outcomes(self, records: Iterable[RawRecord]) -> Iterator[Outcome | DeadLetter]:
        """The outcomes of `records`, in their order, with `AHEAD` chunks in flight."""
        chunks = _chunked(records, CHUNK)
        pending: deque[Future[list[Outcome | DeadLetter]]] = deque(
            self._pool.submit(_work, chunk) for chunk in islice(chunks, AHEAD)
        )
        while pending:
            done = pending.popleft().result()
            following = next(chunks, None)
            if following is not None:
                pending.append(self._pool.submit(_work, following))
            yield from done


def _chunked(records: Iterable[RawRecord], size: int) -> Iterator[list[Sent]]:
    iterator = ((r.data, r.origin, r.source, r.error) for r in records)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
    inputs = [pool.outcomes(file_records(name, stage, progress)) for name in files]
    if records is not None:
        inputs.append(pool.outcomes(records))
    outcomes: Iterator[Outcome] = counted(
        merge_by_event_time(inputs, outcome_key), letters, counts, skip
    )
    for result in outcomes:
        timestamp, source, event_id, detections, hits, evidence, data, ungrouped = result
        counts.normalized += 1
        counts.by_source[source] += 1
        if detections is None:
            counts.filtered += 1
            continue
        if before_event is not None:
            before_event()
        for title, line in detections:
            counts.by_rule[title] += 1
            yield line
        engine.stats.ungrouped += ungrouped
        time = microseconds(timestamp)
        if not hits:
            decided = engine.advance(time)
        else:
            late = partial(late_letter, time, source, event_id, data or b"")
            decided = engine.take(time, hits, evidence, late)
        for made in decided:
            if isinstance(made, DeadLetter):
                letters.write(made)
                counts.late += 1
            else:
                counts.by_rule[made.rule.title] += 1
                yield made.to_json()
        if checkpointer is not None:
            checkpointer.event_done()
    if checkpointer is not None:
        checkpointer.save()
    for detection in engine.flush():
        counts.by_rule[detection.rule.title] += 1
        yield detection.to_json()
