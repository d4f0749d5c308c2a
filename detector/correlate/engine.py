"""The correlation engine: Sigma correlation rules over events, in event time.

Input is each event with the rules it matched (the single-event stage's result); output
is correlation detections and dead letters for late events. The engine has no I/O and
no clock: everything is decided by event time.

Event time. The watermark is the newest event time seen minus the allowed lateness
(unbounded by default: the whole input is put in order first). Events that a correlation
uses wait in a reorder buffer and are released in (time, event.source, event.id) order
once the watermark is past their time, so any arrival order within the lateness gives
exactly the result of the sorted input, detections in the same order. An event older
than the watermark is late: it is counted and returned as a dead letter (reason `late`)
and takes no part in correlations. The same (time, source, id) released twice is a
redelivery and counts once. Windows that end, absences and suppression periods are
decided when the watermark passes their end time, in the same time order as events (an
event at exactly the end time is still inside). `flush` at the end of input releases and
decides everything.

Chains. A correlation's detections are events of the correlations that reference it: at
the detection's time, with its `group` (plus the fields it carries for them, one record
per combination of carried values among its evidence) as the record and its evidence as
theirs.

State is bounded: groups idle for longer than their timespan are dropped, and each
correlation keeps at most `max_groups` groups (the least recently active is evicted,
counted in `stats` and logged). `snapshot` / `restore` save and resume all of it, and
only for the same correlation rules: a checkpoint of another rule set is refused, so a
resumed replay is always the uninterrupted one.

Reloading rules in a running service is `adopt`: a fresh engine of the new rule set takes
over the watermark, the reorder buffer, the counters and, of each correlation whose
`definition` is unchanged (same key, section, referenced rules and carried fields), its
groups, timers and suppression periods. Changed, added and removed correlations start
empty (or are dropped), and the returned `Adoption` says which; buffered events keep only
their part in the correlations carried over, since they were matched with the old rules.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

import orjson
from mypy_extensions import i64

from detector.deadletter import DeadLetter
from detector.detections import Detection, Evidence, Window, detection_id
from detector.events import Event
from detector.rules.compiled import CompiledRule
from detector.timestamps import EPOCH, format_timestamp

from .checkpoint import CheckpointError, gc_paused
from .keys import distinct_value, group_key, key_text, number
from .model import NUMERIC, CorrelationRule, CorrelationSet, Slot, number_text
from .packed import Ev, Evs, load_evs
from .windows import Aggregator, Counters, Fire, Key, Value, aggregator_for, restored_key

_MICROSECOND: Final = timedelta(microseconds=1)
#: later than any event time or timer in microseconds (year 9999 is below 2**58), and the
#: largest int compiled code holds unboxed
_END_OF_TIME: Final = (1 << 62) - 1
#: `heapq`'s functions as Final names: compiled, C statics, not module look-ups per event
_HEAPPOP: Final = heapq.heappop
_HEAPPUSH: Final = heapq.heappush
CHECKPOINT_FORMAT: Final = 1
DEFAULT_MAX_GROUPS: Final = 100_000

#: timer kinds: a window or absence end (the aggregator's), a suppression period's end
_WINDOW, _SUPPRESSION = 0, 1

#: (correlation index, group, slots matched, value, carried values) for one event
Hit = tuple[int, Key, tuple[int, ...], Value, tuple[str | None, ...]]
#: (time, source, id, sequence, evidence, hits): a buffered event
Entry = tuple[int, str, str, int, Evs, tuple[Hit, ...]]
#: (due, sequence = token, correlation index, kind, group)
Timer = tuple[int, int, int, int, Key]


def microseconds(moment: datetime) -> int:
    """Microseconds since the epoch: the engine's clock. (Read off the difference's
    parts: dividing it by a timedelta cost a correlator a fifth of its time per event.
    Summed as `i64`: compiled, a tagged int past 2**30 multiplies as a boxed Python int.)"""
    since = moment - EPOCH
    days: i64 = since.days
    seconds: i64 = since.seconds
    parts: i64 = since.microseconds
    return (days * 86_400 + seconds) * 1_000_000 + parts


def to_datetime(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def evidence_of(event: Event, time: int) -> Ev:
    """An event as correlation evidence; `time` is its timestamp in microseconds. (Read
    from the model's dict: one lookup through the pydantic model's attribute hook.)"""
    values = event.__dict__
    return (
        values["event_id"],
        time,
        values["event_source"],
        values["event_action"],
        values["user_name"],
        (),
    )


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How far events may arrive out of order, and the bounds on state."""

    #: None: unbounded (release at the end of input only)
    allowed_lateness: timedelta | None = None
    #: live groups per correlation before the least recently active one is evicted
    max_groups: int = DEFAULT_MAX_GROUPS
    #: evidence items per detection (the message always has the exact aggregate)
    max_evidence: int = 100

    def __post_init__(self) -> None:
        if self.allowed_lateness is not None and self.allowed_lateness < timedelta(0):
            raise ValueError("allowed lateness cannot be negative")
        if self.max_groups < 1 or self.max_evidence < 1:
            raise ValueError("max_groups and max_evidence must be at least 1")


@dataclass
class CorrelationStats(Counters):
    """What the engine did, besides detections: nothing is dropped without a count."""

    late: int = 0
    duplicates: int = 0
    #: (event, referenced rule) pairs with a group-by field missing: they join no group
    ungrouped: int = 0
    suppressed: int = 0
    #: detections per correlation key (emitted or not, suppressed included)
    detections: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, Any]:
        """Every count as plain data, a copy (for a checkpoint or a successor engine)."""
        counts = asdict(self)
        counts["detections"] = dict(self.detections)
        return counts

    def load(self, counts: Mapping[str, Any]) -> None:
        """Take every count from `counts` (a checkpoint's or a replaced engine's), in place:
        whoever reports these stats keeps this object."""
        for name, value in counts.items():
            setattr(self, name, value)
        self.detections = Counter(self.detections)


@dataclass
class _Suppression:
    """The open detection of a group's suppression period and what it absorbed."""

    detection: Detection
    until: int
    token: int
    count: int = 0
    end: int = 0
    evidence: list[Ev] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Adoption:
    """What `CorrelationEngine.adopt` carried over, by correlation key."""

    #: unchanged: their open windows, groups and suppression periods go on
    kept: tuple[str, ...]
    #: same key, another definition: they start empty
    changed: tuple[str, ...]
    #: new in this rule set
    added: tuple[str, ...]
    #: gone from the rule set, with their state
    removed: tuple[str, ...]


def definition(rule: CorrelationRule) -> str:
    """A hash of everything a correlation's state depends on: its key and section as
    written, each slot's reference, the rule it resolves to and the record it reads, and
    the fields it carries for the correlations referencing it."""
    slots = [[slot.reference, _target_key(slot.target), slot.normalized] for slot in rule.slots]
    parts = [rule.key, rule.section, slots, list(rule.carry)]
    options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    return detection_id(orjson.dumps(parts, option=options, default=str).decode())


def _target_key(target: CompiledRule | CorrelationRule) -> str:
    if isinstance(target, CorrelationRule):
        return target.key
    return target.id or target.name or f"title:{target.title}"


class CorrelationEngine:
    """Runs compiled correlations over events; `process` per event, `flush` at the end."""

    def __init__(self, correlations: CorrelationSet, settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self.rules: list[CorrelationRule] = list(correlations.rules)
        self.silenced = correlations.silenced
        self.fingerprint = correlations.fingerprint()
        self.stats = CorrelationStats()
        lateness = self.settings.allowed_lateness
        self._lateness = None if lateness is None else lateness // _MICROSECOND
        self._aggregators: list[Aggregator[Any]] = []
        for index, rule in enumerate(self.rules):
            aggregator = aggregator_for(
                rule, self.settings.max_groups, self.settings.max_evidence, self.stats
            )
            aggregator.schedule = partial(self._schedule, index, _WINDOW)
            self._aggregators.append(aggregator)
        #: rule or correlation (both hashed by identity) -> (correlation index, slot
        #: index) of each reference to it
        subscribers: dict[CompiledRule | CorrelationRule, list[tuple[int, int]]] = {}
        for index, rule in enumerate(self.rules):
            for position, slot in enumerate(rule.slots):
                subscribers.setdefault(slot.target, []).append((index, position))
        #: (tuples: compiled, read without the generic sequence protocol)
        self._subscribers: dict[CompiledRule | CorrelationRule, tuple[tuple[int, int], ...]] = {
            target: tuple(references) for target, references in subscribers.items()
        }
        self._buffer: list[Entry] = []
        self._timers: list[Timer] = []
        self._sequence = 0
        self._newest: int | None = None
        self._now: int | None = None
        self._last_released: tuple[int, str, str] | None = None
        self._suppressions: list[dict[Key, _Suppression]] = [{} for _ in self.rules]

    @property
    def watermark(self) -> datetime | None:
        """Events older than this are late; None while nothing is (unbounded lateness)."""
        mark = self._watermark()
        return None if mark is None else to_datetime(mark)

    def process(
        self, event: Event, matched: Iterable[CompiledRule]
    ) -> list[Detection | DeadLetter]:
        """Take one event and the rules it matched; return what became decided."""
        time = microseconds(event.timestamp)
        # most events matched no rule: only the clock moves, without looking for hits
        hits = self._event_hits(event, matched) if matched else ()
        if not hits:
            return self.advance(time)
        return self.take(time, hits, evidence_of(event, time), partial(_late, event))

    def take(
        self,
        time: int,
        hits: tuple[Hit, ...],
        evidence: Ev | None,
        late: Callable[[int], DeadLetter],
    ) -> list[Detection | DeadLetter]:
        """`process` for an event whose hits (`hits`) and evidence were found elsewhere (a
        replay's worker process): what became decided; `late(watermark)` is the event's
        dead letter when the watermark has passed it."""
        out: list[Detection | DeadLetter] = []
        if hits:
            assert evidence is not None
            if not self.offer(time, evidence, hits):
                mark = self._watermark()
                assert mark is not None
                out.append(late(mark))
        out.extend(self.advance(time))
        return out

    def hits(self, event: Event, matched: Iterable[CompiledRule]) -> tuple[Hit, ...]:
        """What `event` contributes to each (correlation, group), without taking it: for a
        runtime that correlates elsewhere (the Kafka correlators)."""
        return self._event_hits(event, matched)

    def offer(self, time: int, evidence: Ev, hits: tuple[Hit, ...]) -> bool:
        """Buffer one event's `hits` (from `hits`) until the watermark passes `time`;
        False, and nothing taken, when it is already late."""
        mark = self._watermark()
        if mark is not None and time < mark:
            self.stats.late += 1
            return False
        self._sequence += 1
        _HEAPPUSH(self._buffer, (time, evidence[2], evidence[0], self._sequence, (evidence,), hits))
        return True

    def advance(self, newest: int) -> list[Detection | DeadLetter]:
        """The newest event time is now `newest` (µs) if it is later than before: release
        events and decide what the watermark passed."""
        out: list[Detection | DeadLetter] = []
        last, lateness = self._newest, self._lateness
        if last is None or newest > last:
            self._newest = newest
            if lateness is not None:  # the watermark, without boxing it (`_watermark`)
                self._advance(newest - lateness, out)
        return out

    def flush(self) -> list[Detection]:
        """End of input: release every buffered event and decide every open window."""
        out: list[Detection | DeadLetter] = []
        self._advance(_END_OF_TIME, out)
        return [item for item in out if isinstance(item, Detection)]

    # --- event time ---------------------------------------------------------------

    def _watermark(self) -> int | None:
        if self._lateness is None or self._newest is None:
            return None
        return self._newest - self._lateness

    def _advance(self, limit: int, out: list[Detection | DeadLetter]) -> None:
        """Release events and fire timers before `limit`, in time order (events first on
        ties). (The heads' times are read as ints: compiled, compared without boxing.)"""
        buffer, timers = self._buffer, self._timers
        while buffer or timers:
            if buffer and (not timers or buffer[0][0] <= timers[0][0]):
                if buffer[0][0] >= limit:
                    return
                self._release(_HEAPPOP(buffer), out)
            else:
                if timers[0][0] >= limit:
                    return
                self._fire_timer(_HEAPPOP(timers), out)

    def _schedule(self, index: int, kind: int, due: int, key: Key) -> int:
        self._sequence += 1
        _HEAPPUSH(self._timers, (due, self._sequence, index, kind, key))
        return self._sequence

    def _release(self, entry: Entry, out: list[Detection | DeadLetter]) -> None:
        time, source, event_id, _, evidence, hits = entry
        self._now = time
        marker = (time, source, event_id)
        if marker == self._last_released:
            self.stats.duplicates += 1
            return
        self._last_released = marker
        for index, key, slots, value, carried in hits:
            evs = _carrying(evidence, carried) if carried else evidence
            for fire in self._aggregators[index].hit(time, key, slots, value, evs):
                self._fired(index, fire, out)

    def _fire_timer(self, timer: Timer, out: list[Detection | DeadLetter]) -> None:
        due, token, index, kind, key = timer
        self._now = due
        if kind == _WINDOW:
            for fire in self._aggregators[index].timer(due, key, token):
                self._fired(index, fire, out)
            return
        table = self._suppressions[index]
        open_period = table.get(key)
        if open_period is None or open_period.token != token:
            return
        del table[key]
        if open_period.count:
            out.append(self._absorbed(self.rules[index], open_period))

    # --- hits and detections ------------------------------------------------------

    def _event_hits(self, event: Event, matched: Iterable[CompiledRule]) -> tuple[Hit, ...]:
        references = [
            reference for rule in matched for reference in self._subscribers.get(rule, ())
        ]
        if not references:
            return ()
        values = event.__dict__  # one lookup through the pydantic model's attribute hook
        raw = values["raw"]
        if not isinstance(raw, dict):
            raw = {}

        def record_of(slot: Slot) -> Mapping[str, Any]:
            return values if slot.normalized else raw

        return self._hits(references, record_of)

    def _hits(
        self,
        references: Sequence[tuple[int, int]],
        record_of: Callable[[Slot], Mapping[str, Any]],
    ) -> tuple[Hit, ...]:
        """One hit per (correlation, group): the slots that matched and the value, read
        from the first of them that has one; in the order of `references`, which follows
        the order the router gives the matched rules in."""
        if len(references) == 1:  # the common case, without the bookkeeping
            index, position = references[0]
            rule = self.rules[index]
            slot = rule.slots[position]
            record = record_of(slot)
            key = group_key(slot.group, record)
            if key is None:
                self.stats.ungrouped += 1
                return ()
            carried = _carried(slot, record) if slot.carry else ()
            return ((index, key, (position,), _value(rule, slot, record), carried),)
        found: dict[tuple[int, Key], Hit] = {}
        for index, position in references:
            rule = self.rules[index]
            slot = rule.slots[position]
            record = record_of(slot)
            key = group_key(slot.group, record)
            if key is None:
                self.stats.ungrouped += 1
                continue
            known = found.get((index, key))
            if known is None:
                carried = _carried(slot, record)
                found[(index, key)] = (index, key, (position,), _value(rule, slot, record), carried)
            else:
                value = known[3] if known[3] is not None else _value(rule, slot, record)
                found[(index, key)] = (index, key, (*known[2], position), value, known[4])
        return tuple(found.values())

    def _fired(self, index: int, fire: Fire, out: list[Detection | DeadLetter]) -> None:
        rule = self.rules[index]
        evidence = _ordered(fire.evidence, self.settings.max_evidence)
        detection = _detection(rule, fire, evidence)
        self.stats.detections[rule.key] += 1
        if rule not in self.silenced:
            self._emit(index, rule, fire, detection, evidence, out)
        references = self._subscribers.get(rule)
        if not references:
            return
        # one record per combination of carried values, with the evidence behind it
        behind: dict[tuple[str | None, ...], list[Ev]] = {}
        for ev in evidence:
            behind.setdefault(ev[5], []).append(ev)
        for carried, evs in behind.items():
            record = {**(detection.group or {})}
            record.update((k, v) for k, v in zip(rule.carry, carried, strict=True) if v is not None)
            for hit in self._hits(references, partial(_same, record)):
                hit_index, key, slots, value, parent_carried = hit
                aggregator = self._aggregators[hit_index]
                parent_evs = _carrying(tuple(evs), parent_carried)
                for parent_fire in aggregator.hit(fire.time, key, slots, value, parent_evs):
                    self._fired(hit_index, parent_fire, out)

    def _emit(
        self,
        index: int,
        rule: CorrelationRule,
        fire: Fire,
        detection: Detection,
        evidence: list[Ev],
        out: list[Detection | DeadLetter],
    ) -> None:
        if rule.suppression is None:
            out.append(detection)
            return
        table = self._suppressions[index]
        open_period = table.get(fire.key)
        if open_period is not None and fire.time <= open_period.until:
            open_period.count += 1
            open_period.end = max(open_period.end, fire.end)
            room = self.settings.max_evidence - len(open_period.evidence)
            open_period.evidence.extend(evidence[: max(room, 0)])
            self.stats.suppressed += 1
            return
        until = fire.time + rule.suppression
        token = self._schedule(index, _SUPPRESSION, until, fire.key)
        table[fire.key] = _Suppression(detection, until, token, end=fire.end)
        out.append(detection)

    def _absorbed(self, rule: CorrelationRule, period: _Suppression) -> Detection:
        """The open detection again, same id, with what its period suppressed attached."""
        opened = period.detection
        assert opened.window is not None
        own: list[Ev] = [
            (e.id, microseconds(e.timestamp), e.source, e.action, e.actor, ())
            for e in opened.evidence
        ]
        evidence = _ordered([*own, *period.evidence], self.settings.max_evidence)
        return opened.model_copy(
            update={
                "window": Window(start=opened.window.start, end=to_datetime(period.end)),
                "evidence": [_evidence(ev) for ev in evidence],
                "message": f"{opened.message} (+{period.count} suppressed within "
                f"{rule.suppression_text})",
            }
        )

    # --- checkpoints ----------------------------------------------------------------

    @gc_paused()
    def snapshot(self) -> dict[str, Any]:
        """The whole state as data orjson writes (see `detector.correlate.checkpoint`);
        a copy, so the engine may go on while it is written."""
        if self._now is not None:
            for aggregator in self._aggregators:
                aggregator.groups.expire(self._now)
        stats = self.stats.counts()
        return {
            "format": CHECKPOINT_FORMAT,
            "rules": self.fingerprint,
            "newest": self._newest,
            "now": self._now,
            "sequence": self._sequence,
            "last_released": self._last_released,
            # tuples are JSON arrays to orjson: buffer entries and timers go as they are
            "buffer": list(self._buffer),
            "timers": list(self._timers),
            "aggregators": [aggregator.snapshot() for aggregator in self._aggregators],
            "suppressions": [
                [
                    [key, s.detection.to_dict(), s.until, s.token, s.count, s.end, list(s.evidence)]
                    for key, s in table.items()
                ]
                for table in self._suppressions
            ],
            "stats": stats,
        }

    @gc_paused()
    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a `snapshot`; raises CheckpointError if it is not this rule set's."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"unknown checkpoint format {state.get('format')!r}")
        if state.get("rules") != self.fingerprint:
            raise CheckpointError("the checkpoint was written with other correlation rules")
        try:
            self._restore(state)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CheckpointError(f"damaged checkpoint: {type(exc).__name__}: {exc}") from exc

    @gc_paused()
    def adopt(self, old: CorrelationEngine) -> Adoption:
        """Take over the state of `old`, the engine of the rule set this one replaces, for
        every correlation whose `definition` is unchanged; the rest start empty. Called on
        a fresh engine; `old` must not be used afterwards (its suppression periods move)."""
        if self._newest is not None or self._buffer:
            raise ValueError("only a fresh engine can adopt another's state")
        before = {rule.key: (index, definition(rule)) for index, rule in enumerate(old.rules)}
        moved: dict[int, int] = {}  # old index -> new index
        kept: list[str] = []
        changed: list[str] = []
        added: list[str] = []
        for index, rule in enumerate(self.rules):
            previous = before.get(rule.key)
            if previous is None:
                added.append(rule.key)
            elif previous[1] != definition(rule):
                changed.append(rule.key)
            else:
                moved[previous[0]] = index
                kept.append(rule.key)
        current = {rule.key for rule in self.rules}
        removed = [rule.key for rule in old.rules if rule.key not in current]
        self._newest, self._now = old._newest, old._now
        self._sequence, self._last_released = old._sequence, old._last_released
        for was, index in moved.items():
            self._aggregators[index].restore(old._aggregators[was].snapshot())
            self._suppressions[index] = old._suppressions[was]
        self._buffer = []
        for time, source, event_id, sequence, evidence, hits in old._buffer:
            kept_hits = tuple((moved[hit[0]], *hit[1:]) for hit in hits if hit[0] in moved)
            if kept_hits:
                self._buffer.append((time, source, event_id, sequence, evidence, kept_hits))
        heapq.heapify(self._buffer)
        self._timers = [
            (due, token, moved[index], kind, key)
            for due, token, index, kind, key in old._timers
            if index in moved
        ]
        heapq.heapify(self._timers)
        self.stats.load(old.stats.counts())
        return Adoption(tuple(kept), tuple(changed), tuple(added), tuple(removed))

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._newest = state["newest"]
        self._now = state["now"]
        self._sequence = state["sequence"]
        last = state["last_released"]
        self._last_released = None if last is None else (last[0], last[1], last[2])
        self._buffer = [
            (
                t,
                source,
                event_id,
                seq,
                load_evs(evs),
                tuple((i, restored_key(k), tuple(s), v, tuple(c)) for i, k, s, v, c in hits),
            )
            for t, source, event_id, seq, evs, hits in state["buffer"]
        ]
        heapq.heapify(self._buffer)
        for aggregator, data in zip(self._aggregators, state["aggregators"], strict=True):
            aggregator.restore(data)
        # a window's timer holds its group's key, as when it was scheduled
        keys = [{key: key for key in aggregator.groups.live} for aggregator in self._aggregators]
        self._timers = []
        for due, seq, index, kind, key in state["timers"]:
            restored = restored_key(key)
            self._timers.append((due, seq, index, kind, keys[index].get(restored, restored)))
        heapq.heapify(self._timers)
        self._suppressions = [
            {
                tuple(key): _Suppression(
                    Detection.model_validate(detection),
                    until,
                    token,
                    count,
                    end,
                    list(load_evs(evs)),
                )
                for key, detection, until, token, count, end, evs in table
            }
            for table in state["suppressions"]
        ]
        self.stats.load(state["stats"])


def _value(rule: CorrelationRule, slot: Slot, record: Mapping[str, Any]) -> Value:
    if not slot.value:
        return None
    if rule.type in NUMERIC:
        return number(slot.value, record)
    return distinct_value(slot.value, record)


def _carried(slot: Slot, record: Mapping[str, Any]) -> tuple[str | None, ...]:
    return tuple(key_text(get(record)) for get in slot.carry)


def _same(record: Mapping[str, Any], slot: Slot) -> Mapping[str, Any]:
    """A detection's record, whichever slot of the referencing correlation reads it."""
    return record


def _carrying(evs: Evs, carried: tuple[str | None, ...]) -> Evs:
    """The evidence with the carried values of the correlation it goes to."""
    if all(ev[5] == carried for ev in evs):
        return evs
    return tuple((*ev[:5], carried) for ev in evs)


def _ordered(evidence: Iterable[Ev], limit: int) -> list[Ev]:
    """Evidence in event-time order, each event once, the first `limit` of them."""
    unique = {(ev[2], ev[0]): ev for ev in evidence}
    return sorted(unique.values(), key=lambda ev: (ev[1], ev[2], ev[0]))[:limit]


def _evidence(ev: Ev) -> Evidence:
    return Evidence(id=ev[0], timestamp=to_datetime(ev[1]), source=ev[2], action=ev[3], actor=ev[4])


def _detection(rule: CorrelationRule, fire: Fire, evidence: list[Ev]) -> Detection:
    group = dict(zip(rule.group_by, fire.key, strict=True)) if rule.group_by else None
    first = evidence[0] if evidence else ("", fire.start, "", None, None)
    parts = [rule.key, orjson.dumps(list(fire.key)).decode(), first[2], first[0]]
    if fire.value is not None:
        parts.append(fire.value)
    return Detection(
        id=detection_id(*parts),
        timestamp=to_datetime(fire.time),
        rule=rule.ref,
        group=group,
        window=Window(start=to_datetime(fire.start), end=to_datetime(fire.end)),
        evidence=[_evidence(ev) for ev in evidence],
        message=f"{rule.title}: {rule.type}: {_what(rule, fire)}, {_group_text(group)}",
    )


def _what(rule: CorrelationRule, fire: Fire) -> str:
    """The aggregate in words, with the condition and the timespan."""
    metric = number_text(fire.metric) if fire.metric is not None else ""
    within = f"({rule.condition}) within {rule.timespan_text}"
    fields = ", ".join(rule.value_field)
    kind = rule.type
    if kind == "event_count":
        return f"{metric} events {within}"
    if kind == "value_count":
        return f"{metric} distinct {fields} {within}"
    if kind == "temporal":
        return f"{metric} of {len(rule.slots)} rules {within}"
    if kind == "temporal_ordered":
        return f"{metric} of {len(rule.slots)} rules in order {within}"
    if kind == "value_sum":
        return f"sum of {fields} {metric} {within}"
    if kind == "value_avg":
        return f"average of {fields} {metric} {within}"
    if kind in ("value_percentile", "value_median"):
        assert rule.percentile is not None
        return f"percentile {number_text(rule.percentile)} of {fields} {metric} {within}"
    if kind == "first_seen":
        return f"new {fields} {fire.value} (not seen within {rule.timespan_text})"
    first, then = rule.slots
    return f"{first.title} not followed by {then.title} within {rule.timespan_text}"


def _group_text(group: Mapping[str, str] | None) -> str:
    if not group:
        return "over all events"
    return "for " + ", ".join(f"{name}={value}" for name, value in group.items())


def _late(event: Event, mark: int) -> DeadLetter:
    """The dead letter of `event`, late for the watermark `mark` (µs)."""
    time = microseconds(event.timestamp)
    return late_letter(time, event.event_source, event.event_id, orjson.dumps(event.raw), mark)


def late_letter(time: int, source: str, event_id: str, data: bytes, mark: int) -> DeadLetter:
    """The dead letter of an event at `time` that came after the watermark `mark` (µs)."""
    reason = (
        f"late: event time {format_timestamp(to_datetime(time))} is before the correlation "
        f"watermark {format_timestamp(to_datetime(mark))}"
    )
    return DeadLetter(reason, f"{source}:{event_id}", data, source)
