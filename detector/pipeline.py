"""The batch pipeline over files: read → normalize → (merge → select → match → correlate)
with counts and dead letters.

`detector normalize` and `detector replay` share it; the I/O (stdout, files) stays in
the command line, except checkpoints, which `Checkpointer` writes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from pathlib import Path
from typing import TypeVar

from detector.correlate import CorrelationEngine, checkpoint
from detector.deadletter import DeadLetter, DeadLetterFile, LetterWriter
from detector.detections import Detection, RuleRef
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.rules.compiled import CompiledRule
from detector.rules.routing import RuleRouter
from detector.single_event import single_event_detection
from detector.sources.files import ProgressCallback, read_paths
from detector.sources.merge import merge_by_event_time
from detector.sources.records import RawRecord


@dataclass
class RunCounts:
    """What a run did; `read == normalized + dead_lettered` always holds."""

    read: int = 0
    normalized: int = 0
    dead_lettered: int = 0
    #: normalized events outside the selection (time range, sources), never correlated
    filtered: int = 0
    #: events by source (a dict: a Counter's item assignment goes through Python, which
    #: cost a thousand instructions an event)
    by_source: dict[str, int] = field(default_factory=dict)
    by_rule: Counter[str] = field(default_factory=Counter)
    #: records a resumed run did not use again (the checkpoint had them)
    skipped: int = 0
    #: events too late for the correlations (also dead-lettered)
    late: int = 0
    started: float = field(default_factory=time.monotonic)

    def count_source(self, source: str) -> None:
        """One more event of `source`."""
        self.by_source[source] = self.by_source.get(source, 0) + 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def detections(self) -> int:
        return sum(self.by_rule.values())


@dataclass(frozen=True)
class EventSelection:
    """The events a replay uses: event time in `[since, until)` and, when `sources` is not
    empty, only those sources. The others are counted as filtered, not dead-lettered: they
    are good records the responder chose not to look at."""

    since: datetime | None = None
    until: datetime | None = None
    sources: frozenset[str] = frozenset()

    def accepts(self, event: Event) -> bool:
        if self.since is not None and event.timestamp < self.since:
            return False
        if self.until is not None and event.timestamp >= self.until:
            return False
        return not self.sources or event.event_source in self.sources


def file_records(
    name: str, stage: NormalizeStage, progress: ProgressCallback | None = None
) -> Iterator[RawRecord]:
    """The records of one input, continuation lines joined within it (a Jenkins
    script-console body is one record)."""
    return stage.join_continuation_lines(read_paths([name], progress))


def _results(records: Iterable[RawRecord], stage: NormalizeStage) -> Iterator[Event | DeadLetter]:
    """One input normalized on its own, as it is read, `BATCH_EVENTS` records at a time."""
    records = iter(records)
    while batch := list(islice(records, BATCH_EVENTS)):
        yield from stage.process_batch(batch)


Result = TypeVar("Result")


def counted(
    results: Iterable[Result | DeadLetter], letters: LetterWriter, counts: RunCounts, skip: int
) -> Iterator[Result]:
    """The results that are not dead letters (those go to `letters`), each counted as
    read; the first `skip` results (a resumed run has had them) are counted as skipped
    and not used again."""
    for result in results:
        if counts.skipped < skip:
            counts.skipped += 1
            continue
        counts.read += 1
        if type(result) is DeadLetter:
            letters.write(result)
            counts.dead_lettered += 1
            continue
        yield result


def normalized_events(
    files: Sequence[str],
    stage: NormalizeStage,
    letters: LetterWriter,
    counts: RunCounts,
    progress: ProgressCallback | None = None,
    skip: int = 0,
    *,
    merged: bool = False,
    selection: EventSelection | None = None,
    records: Iterable[RawRecord] | None = None,
) -> Iterator[Event]:
    """Every event of `files`, in input order or, `merged`, in event-time order across the
    files (`merge_by_event_time`); dead letters go to `letters`.

    The first `skip` results (events and dead letters) are read but not used again: a run
    resumed from a checkpoint has already had them. The merged order is the same for the
    same inputs, so the count means the same records on resume. Events `selection` does
    not accept are counted as filtered and not yielded. `records`, when given, is one more
    input, already in event-time order (an index read back).
    """
    inputs = [_results(file_records(name, stage, progress), stage) for name in files]
    if records is not None:
        inputs.append(_results(records, stage))
    results = merge_by_event_time(inputs) if merged else chain.from_iterable(inputs)
    for result in counted(results, letters, counts, skip):
        counts.normalized += 1
        counts.count_source(result.event_source)
        if selection is not None and not selection.accepts(result):
            counts.filtered += 1
            continue
        yield result


def rule_ref(rule: CompiledRule) -> RuleRef:
    """The detection's view of a compiled rule; rules without an id are named by title."""
    level = (
        rule.level if rule.level in ("informational", "low", "medium", "high", "critical") else None
    )
    return RuleRef(
        id=rule.id or rule.name or f"title:{rule.title}",
        title=rule.title,
        level=level,
        tags=list(rule.tags),
    )


class SingleEventMatcher:
    """Event → its single-event detections, one per matching rule.

    Rules in `silenced` (referenced by a correlation with `generate: false`) match but
    make no detection of their own.
    """

    def __init__(self, router: RuleRouter, silenced: Collection[object] = ()) -> None:
        self.router = router
        self.silenced = silenced
        self._refs: dict[CompiledRule, RuleRef] = {}

    def detections(self, event: Event) -> list[Detection]:
        return self.detections_for(event, self.router.match(event))

    def detections_for(self, event: Event, matched: Sequence[CompiledRule]) -> list[Detection]:
        """The detections of `matched`, the rules `event` matched."""
        result = []
        for rule in matched:
            if rule in self.silenced:
                continue
            ref = self._refs.get(rule)
            if ref is None:
                ref = self._refs[rule] = rule_ref(rule)
            result.append(single_event_detection(ref, event))
        return result


class DetectionStage:
    """Event → detections: single-event ones at once, correlation ones as event time
    decides them (and dead letters for events too late to correlate).

    `on_match` sees each event that matched at least one rule: the only events that can
    become evidence, so a report can keep their fields without keeping every event."""

    def __init__(
        self,
        router: RuleRouter,
        engine: CorrelationEngine,
        on_match: Callable[[Event], None] | None = None,
    ) -> None:
        self.router = router
        self.engine = engine
        self.matcher = SingleEventMatcher(router, engine.silenced)
        self.on_match = on_match

    def process(self, event: Event) -> list[Detection | DeadLetter]:
        return self.decide(event, self.router.match(event))

    def decide(self, event: Event, matched: Sequence[CompiledRule]) -> list[Detection | DeadLetter]:
        """`process` for an event whose rules were matched already (`router.match`)."""
        if not matched:  # most events: only the event-time clock has to move
            return self.engine.process(event, matched)
        if self.on_match is not None:
            self.on_match(event)
        result: list[Detection | DeadLetter] = list(self.matcher.detections_for(event, matched))
        result.extend(self.engine.process(event, matched))
        return result

    def flush(self) -> list[Detection]:
        """End of input: the correlation detections still pending."""
        return self.engine.flush()


class Checkpointer:
    """Saves the correlation state with the input position: every `every` events and at
    the end. `before_save` makes the output so far durable first, so that a resumed run
    misses nothing."""

    def __init__(
        self,
        path: Path,
        every: int,
        inputs: Sequence[str],
        engine: CorrelationEngine,
        counts: RunCounts,
        before_save: Callable[[], None],
    ) -> None:
        self.path = path
        self.every = every
        self.inputs = list(inputs)
        self.engine = engine
        self.counts = counts
        self.before_save = before_save
        self._since = 0

    def events_done(self, count: int = 1) -> None:
        """`count` more events fully processed: every record read so far is used."""
        self._since += count
        if self._since >= self.every:
            self.save()

    def save(self) -> None:
        self.before_save()
        records = self.counts.skipped + self.counts.read
        state = checkpoint.Checkpoint(records, self.inputs, self.engine.snapshot())
        checkpoint.save(self.path, state)
        self._since = 0


#: records read, then parsed, then normalized, and events matched, then decided
#: (detections, correlations) a batch at a time: the code and data of each stage stay in
#: the processor's caches across a batch, where one record at a time through every stage
#: misses them on every record (BENCHMARKS.md)
BATCH_EVENTS = 32


def replay_detections(
    files: Sequence[str],
    stage: NormalizeStage,
    detector: DetectionStage,
    letters: DeadLetterFile,
    counts: RunCounts,
    progress: ProgressCallback | None = None,
    skip: int = 0,
    checkpointer: Checkpointer | None = None,
    selection: EventSelection | None = None,
    before_event: Callable[[Event], None] | None = None,
    records: Iterable[RawRecord] | None = None,
) -> Iterator[Detection]:
    """Every detection of `files`, merged in event time, in the order it is decided; late
    events go to `letters`. `before_event` sees each selected event before its detections
    are made (pacing, progress).

    Events are normalized and matched `BATCH_EVENTS` at a time, then decided; the dead
    letters read meanwhile are held back, so the file keeps the records' order with the
    late events' letters, and a checkpoint is taken only between batches, when every
    record `counts` has read is processed.
    """
    held = _HeldLetters()
    events = normalized_events(
        files,
        stage,
        held,
        counts,
        progress,
        skip,
        merged=True,
        selection=selection,
        records=records,
    )
    match = detector.router.match
    while True:
        batch = [(event, held.take()) for event in islice(events, BATCH_EVENTS)]
        matches = [match(event) for event, _ in batch]
        for (event, before), matched in zip(batch, matches, strict=True):
            for letter in before:
                letters.write(letter)
            if before_event is not None:
                before_event(event)
            results = detector.decide(event, matched)
            if results:  # most events give nothing: no generator for them
                yield from counted_detections(results, letters, counts)
        for letter in held.take():  # read after the batch's last event: the input's end
            letters.write(letter)
        if not batch:
            break
        if checkpointer is not None:
            checkpointer.events_done(len(batch))
    yield from end_of_input(detector.engine, counts, checkpointer)


class _HeldLetters:
    """The dead letters of records read ahead, until `take` hands them over."""

    def __init__(self) -> None:
        self._held: list[DeadLetter] = []

    def write(self, letter: DeadLetter) -> None:
        self._held.append(letter)

    def take(self) -> tuple[DeadLetter, ...]:
        """The letters written since the last `take` (a tuple: compiled, read without the
        generic sequence protocol, for every event)."""
        if not self._held:
            return ()
        taken = tuple(self._held)
        self._held.clear()
        return taken


def counted_detections(
    results: Iterable[Detection | DeadLetter], letters: DeadLetterFile, counts: RunCounts
) -> Iterator[Detection]:
    """The detections among `results`, each counted by rule; a late event's dead letter
    goes to `letters`."""
    for result in results:
        if type(result) is DeadLetter:
            letters.write(result)
            counts.late += 1
        else:
            counts.by_rule[result.rule.title] += 1
            yield result


def end_of_input(
    engine: CorrelationEngine, counts: RunCounts, checkpointer: Checkpointer | None
) -> Iterator[Detection]:
    """The last checkpoint, then the correlation detections still pending, counted. The
    checkpoint comes before the flush, so a run resumed from it with more input continues
    the stream as if it had never stopped."""
    if checkpointer is not None:
        checkpointer.save()
    for detection in engine.flush():
        counts.by_rule[detection.rule.title] += 1
        yield detection


class Pacer:
    """Releases events at `speed` times real time by event time: an event waits until
    (its time - the first event's time) / speed has passed since the first was released.
    `before_wait` runs before each pause, so what is decided so far is seen on time."""

    def __init__(
        self,
        speed: float,
        before_wait: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self.before_wait = before_wait
        self.clock = clock
        self.sleep = sleep
        self._first: datetime | None = None
        self._started = 0.0

    def __call__(self, event: Event) -> None:
        wait = self.delay(event.timestamp)
        if wait > 0:
            self.before_wait()
            self.sleep(wait)

    def delay(self, when: datetime) -> float:
        """Seconds until an event at `when` is due (≤ 0: now); callers that cannot block
        (asyncio) wait this long themselves."""
        if self._first is None:
            self._first = when
            self._started = self.clock()
            return 0.0
        due = (when - self._first).total_seconds() / self.speed
        return self._started + due - self.clock()


class ProgressLine:
    """A plain progress line every `every` seconds, for a stderr that is not a terminal
    (logs of a batch job): bytes read of `total`, events, rate and, when the total is
    known, percentage and ETA."""

    def __init__(
        self,
        every: float,
        total: int | None,
        counts: RunCounts,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.total = total
        self.counts = counts
        self.write = write
        self.clock = clock
        self.bytes_read = 0
        self._started = clock()
        self._next = self._started + every

    def advance(self, size: int) -> None:
        """`size` more input bytes read (a `ProgressCallback`)."""
        self.bytes_read += size
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every
        self.write(self.line(now - self._started))

    def line(self, elapsed: float) -> str:
        events = self.counts.read
        rate = events / elapsed if elapsed > 0 else 0.0
        done = f"{self.bytes_read}"
        eta = ""
        if self.total:
            done += f"/{self.total} ({100 * self.bytes_read / self.total:.1f}%)"
            if self.bytes_read:
                left = max(self.total - self.bytes_read, 0)
                eta = f" · ETA {elapsed * left / self.bytes_read:.0f}s"
        return f"progress: {done} · {events} events · {rate:.0f} events/s{eta}"
