"""Per-group window state of each correlation type, fed in event-time order.

Times are integer microseconds. The engine hands each aggregator one call per
(event, group) in event-time order, and calls `timer` when the watermark passes a time
the aggregator scheduled; aggregators never look at a clock.

Two ways to decide, both over windows of the rule's timespan T:
- on arrival (growing aggregates with lower bounds only: event_count, value_count,
  temporal, temporal_ordered, value_sum with gt/gte): at each event time t the window is
  [t - T, t], both ends inclusive, so events at 10:59 and 11:01 meet in a 1h window. When
  the condition holds a detection is made and the group starts over, so the next
  detection needs new events.
- at window end (any condition with an upper bound, and value_avg / value_percentile /
  value_median whatever the operators): a group's window opens at its first event t0 and
  covers [t0, t0 + T], both inclusive; the condition is decided once the watermark has
  passed t0 + T, and the next event of the group opens a new window.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from . import packed
from .model import CorrelationRule
from .packed import Ev, Evs
from .packed import load_evs as load_evs  # the Kafka correlators read evidence with it

log = logging.getLogger("detector.correlate")

Key = tuple[str, ...]
#: (due time, group) -> token the timer call carries back
Schedule = Callable[[int, Key], int]
#: one event's contribution to one group: the slots it matched and its value (if any)
Value = str | int | float | None


@dataclass
class Counters:
    """What the aggregators dropped or bounded, so that nothing is lost silently."""

    evicted_groups: int = 0
    evicted_values: int = 0
    no_value: int = 0


@dataclass(frozen=True, slots=True)
class Fire:
    """A condition that held: what the detection is made of."""

    time: int
    key: Key
    start: int
    end: int
    evidence: list[Ev]
    #: the aggregate (count, sum, ...) the condition was checked on
    metric: float | None = None
    #: first_seen: the new value
    value: str | None = None


class Group:
    """Base of per-group state: the time of its last event, for expiry and eviction."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0


G = TypeVar("G", bound=Group)


class Groups(Generic[G]):
    """The live groups of one correlation, oldest activity first, at most `limit` of them.

    A group idle for longer than `horizon` can no longer contribute and is dropped; when a
    new group would exceed `limit` the least recently active one is evicted, counted and
    logged.
    """

    def __init__(self, rule: CorrelationRule, horizon: int, limit: int, counters: Counters):
        self.rule = rule
        self.horizon = horizon
        self.limit = limit
        self.counters = counters
        self.live: OrderedDict[Key, G] = OrderedDict()

    def touch(self, now: int, key: Key, new: Callable[[], G]) -> G:
        self.expire(now)
        state = self.live.get(key)
        if state is None:
            if len(self.live) >= self.limit:
                self._evict()
            state = self.live[key] = new()
        else:
            self.live.move_to_end(key)
        state.last = now
        return state

    def expire(self, now: int) -> None:
        horizon = now - self.horizon
        live = self.live
        while live:
            key = next(iter(live))
            if live[key].last >= horizon:
                return
            del live[key]

    def _evict(self) -> None:
        self.live.popitem(last=False)
        self.counters.evicted_groups += 1
        if self.counters.evicted_groups == 1 or self.counters.evicted_groups % 10_000 == 0:
            log.warning(
                "correlation %s: more than %d live groups, evicting the least recently "
                "active (%d evicted so far)",
                self.rule.key,
                self.limit,
                self.counters.evicted_groups,
            )


class Aggregator(Generic[G]):
    """One correlation's groups and how each event changes them."""

    def __init__(
        self, rule: CorrelationRule, limit: int, max_evidence: int, counters: Counters
    ) -> None:
        self.rule = rule
        self.span = rule.timespan
        self.max_evidence = max_evidence
        self.counters = counters
        self.groups: Groups[G] = Groups(rule, rule.timespan, limit, counters)
        self.schedule: Schedule = _unscheduled

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        raise NotImplementedError

    def timer(self, now: int, key: Key, token: int) -> list[Fire]:
        return []

    def snapshot(self) -> Any:
        """The groups as data orjson writes (tuples become arrays), oldest activity first."""
        return [[key, self.dump(state)] for key, state in self.groups.live.items()]

    def restore(self, data: Any) -> None:
        self.groups.live = OrderedDict((restored_key(key), self.load(state)) for key, state in data)

    def dump(self, state: G) -> Any:
        raise NotImplementedError

    def load(self, data: Any) -> G:
        raise NotImplementedError

    def _condition(self, metric: float) -> bool:
        assert self.rule.condition is not None
        return self.rule.condition.holds(metric)

    def _trailing_fire(self, now: int, key: Key, evidence: list[Ev], metric: float) -> Fire:
        self.groups.live.pop(key, None)
        return Fire(now, key, now - self.span, now, evidence, metric)


def _unscheduled(due: int, key: Key) -> int:
    raise RuntimeError("aggregator used before the engine set its scheduler")


# --- decided on arrival -------------------------------------------------------------


class _Sequence(Group):
    __slots__ = ("log", "total")

    def __init__(self) -> None:
        super().__init__()
        #: a record (time, weight, evidence) per event in the window (see `packed`)
        self.log = bytearray()
        self.total: int | float = 0


class Counting(Aggregator[_Sequence]):
    """event_count (weight 1) and value_sum (weight: the value) over [t - T, t]."""

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        weight: int | float = 1
        if self.rule.type == "value_sum":
            if not isinstance(value, (int, float)):
                self.counters.no_value += 1
                return []
            weight = value
        state = self.groups.touch(now, key, _Sequence)
        log = state.log
        for expired in packed.drop_before(log, now - self.span):
            state.total -= expired
        if not log:
            state.total = 0
        packed.append(log, now, weight, evs)
        state.total += weight
        if not self._condition(state.total):
            return []
        evidence = [ev for _, _, hit in packed.entries(log) for ev in hit]
        return [self._trailing_fire(now, key, evidence, state.total)]

    def dump(self, state: _Sequence) -> Any:
        return [state.last, state.total, list(packed.entries(state.log))]

    def load(self, data: Any) -> _Sequence:
        state = _Sequence()
        state.last, state.total = data[0], data[1]
        for t, w, e in data[2]:
            packed.append(state.log, t, w, load_evs(e))
        return state


class _Latest(Group):
    __slots__ = ("latest",)

    def __init__(self) -> None:
        super().__init__()
        #: distinct item -> its latest event's evidence stamped with its time (see
        #: `packed`), oldest first (a dict keeps insertion order in a third of an
        #: OrderedDict's space)
        self.latest: dict[str | int, bytes] = {}


class Distinct(Aggregator[_Latest]):
    """value_count (distinct values) and temporal (distinct rules) over [t - T, t]."""

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        items: Iterable[str | int]
        if self.rule.type == "temporal":
            items = slots
        elif isinstance(value, str):
            items = (value,)
        else:
            self.counters.no_value += 1
            return []
        state = self.groups.touch(now, key, _Latest)
        latest, oldest = state.latest, now - self.span
        while latest:
            first = next(iter(latest))
            if packed.time_of(latest[first]) >= oldest:
                break
            del latest[first]
        stamp = packed.pack(now, evs)
        for item in items:
            latest.pop(item, None)  # re-inserted last: the newest
            latest[item] = stamp
        if not self._condition(len(latest)):
            return []
        evidence = [ev for stamp in latest.values() for ev in packed.evs_of(stamp)]
        return [self._trailing_fire(now, key, evidence, len(latest))]

    def dump(self, state: _Latest) -> Any:
        return [state.last, [(k, _unstamp(stamp)) for k, stamp in state.latest.items()]]

    def load(self, data: Any) -> _Latest:
        state = _Latest()
        state.last = data[0]
        state.latest = {_canonical(k): packed.pack(t, load_evs(e)) for k, (t, e) in data[1]}
        return state


class _Chains(Group):
    __slots__ = ("chains",)

    def __init__(self) -> None:
        super().__init__()
        #: (last slot, length) -> evidence stamped with the start time (see `packed`) of
        #: the chain that starts latest
        self.chains: Chains = {}


#: (last slot, length) -> the chain's evidence stamped with its start time
Chains = dict[tuple[int, int], bytes]


class Ordered(Aggregator[_Chains]):
    """temporal_ordered over [t - T, t]: the count is the longest run of the referenced
    rules, in their listed order, matched by successive events (so `gte 2` of three rules
    is any two of them in order). For each (last rule, length) only the chain that started
    latest is kept, since it is the one most likely to complete within T."""

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        state = self.groups.touch(now, key, _Chains)
        chains, oldest = state.chains, now - self.span
        for stale in [k for k, stamp in chains.items() if packed.time_of(stamp) < oldest]:
            del chains[stale]
        for slot in sorted(slots, reverse=True):  # one event is never two steps of a chain
            _extend(chains, slot, now, evs, latest=True)
        best = _longest(chains)
        if best is None or not self._condition(best[0]):
            return []
        return [self._trailing_fire(now, key, list(packed.evs_of(best[1])), best[0])]

    def dump(self, state: _Chains) -> Any:
        return [state.last, _dump_chains(state.chains)]

    def load(self, data: Any) -> _Chains:
        state = _Chains()
        state.last = data[0]
        state.chains = _load_chains(data[1])
        return state


def _extend(chains: Chains, slot: int, now: int, evs: Evs, latest: bool) -> None:
    """Chains ending at `slot` with this event; `latest` keeps the latest start, else the first."""
    candidates: dict[int, tuple[int, bytes | None]] = {1: (now, None)}
    for (last, length), stamp in chains.items():
        if last < slot:
            start = packed.time_of(stamp)
            known = candidates.get(length + 1)
            if known is None or (latest and start > known[0]):
                candidates[length + 1] = (start, stamp)
    for length, (start, before) in candidates.items():
        known_stamp = chains.get((slot, length))
        if known_stamp is None or (latest and start >= packed.time_of(known_stamp)):
            chain = evs if before is None else packed.evs_of(before) + evs
            chains[_step(slot, length)] = packed.pack(start, chain)


def _longest(chains: Chains) -> tuple[int, bytes] | None:
    """(length, stamped evidence) of the longest chain; among equals the one that started
    latest, then the one with the lowest last rule."""
    if not chains:
        return None
    if len(chains) == 1:  # the common case, without unpacking a start time
        for (_, length), stamp in chains.items():
            return length, stamp
    (_, length), stamp = max(
        chains.items(), key=lambda item: (item[0][1], packed.time_of(item[1]), -item[0][0])
    )
    return length, stamp


#: one (slot, length) tuple per value, shared by every group's chains
_STEPS: Final[dict[tuple[int, int], tuple[int, int]]] = {}


def _step(slot: int, length: int) -> tuple[int, int]:
    step = (slot, length)
    return _STEPS.setdefault(step, step)


# --- decided at window end ----------------------------------------------------------


class _Window(Group):
    """What a window of any type collects; the parts a type does not use stay None."""

    __slots__ = (
        "chains",
        "count",
        "distinct",
        "evidence",
        "kept",
        "opened",
        "token",
        "total",
        "values",
    )

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.token = 0
        self.count = 0
        self.total: int | float = 0
        #: value_percentile, value_median: every value
        self.values: list[int | float] | None = None
        #: value_count, temporal: distinct item -> evidence of its first event (stamped
        #: with time 0: only the order of the items matters)
        self.distinct: dict[str | int, bytes] | None = None
        #: temporal_ordered
        self.chains: Chains | None = None
        #: the others: the first `max_evidence` pieces of evidence, `kept` of them, as a
        #: log of one record per event (see `packed`)
        self.evidence: bytearray | None = None
        self.kept = 0


class Anchored(Aggregator[_Window]):
    """Any type over [t0, t0 + T] from a group's first event t0, decided when it ends."""

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        kind = self.rule.type
        numeric = kind in ("value_sum", "value_avg", "value_percentile", "value_median")
        if (numeric and not isinstance(value, (int, float))) or (
            kind == "value_count" and not isinstance(value, str)
        ):
            self.counters.no_value += 1
            return []
        state = self.groups.touch(now, key, self._new)
        if not state.token:  # a new window: tokens start at 1
            state.opened = now
            state.token = self.schedule(now + self.span, key)
        state.count += 1
        if isinstance(value, (int, float)) and numeric:
            state.total += value
            if state.values is not None:
                state.values.append(value)
        if state.distinct is not None:
            if kind == "value_count" and isinstance(value, str):
                if value not in state.distinct:
                    state.distinct[value] = packed.pack(0, evs)
            elif kind == "temporal":
                for slot in slots:
                    if slot not in state.distinct:
                        state.distinct[slot] = packed.pack(0, evs)
        elif state.chains is not None:
            for slot in sorted(slots, reverse=True):
                _extend(state.chains, slot, now, evs, latest=False)
        elif state.evidence is not None:
            room = self.max_evidence - state.kept
            if room > 0:
                kept = evs[:room]
                packed.append(state.evidence, now, None, kept)
                state.kept += len(kept)
        return []

    def _new(self) -> _Window:
        state = _Window()
        kind = self.rule.type
        if kind in ("value_count", "temporal"):
            state.distinct = {}
        elif kind == "temporal_ordered":
            state.chains = {}
        else:
            state.evidence = bytearray()
            if kind in ("value_percentile", "value_median"):
                state.values = []
        return state

    def timer(self, now: int, key: Key, token: int) -> list[Fire]:
        state = self.groups.live.get(key)
        if state is None or state.token != token:
            return []  # evicted, and perhaps reopened since
        del self.groups.live[key]
        metric, evidence = self._measure(state)
        if not self._condition(metric):
            return []
        return [Fire(now, key, state.opened, state.opened + self.span, evidence, metric)]

    def _measure(self, state: _Window) -> tuple[float, list[Ev]]:
        kind = self.rule.type
        if state.distinct is not None:
            evidence = [ev for stamp in state.distinct.values() for ev in packed.evs_of(stamp)]
            return len(state.distinct), evidence
        if state.chains is not None:
            best = _longest(state.chains)
            return (best[0], list(packed.evs_of(best[1]))) if best else (0, [])
        assert state.evidence is not None
        evidence = [ev for _, _, evs in packed.entries(state.evidence) for ev in evs]
        if kind == "value_sum":
            return state.total, evidence
        if kind == "value_avg":
            return state.total / state.count, evidence
        if state.values is not None:
            assert self.rule.percentile is not None
            return percentile(sorted(state.values), self.rule.percentile), evidence
        return state.count, evidence

    def dump(self, state: _Window) -> Any:
        distinct = state.distinct or {}
        evidence = state.evidence or b""
        return [
            state.last,
            state.opened,
            state.token,
            state.count,
            state.total,
            list(state.values or ()),
            [(k, packed.evs_of(stamp)) for k, stamp in distinct.items()],
            _dump_chains(state.chains or {}),
            [ev for _, _, evs in packed.entries(evidence) for ev in evs],
        ]

    def load(self, data: Any) -> _Window:
        state = self._new()
        state.last, state.opened, state.token, state.count, state.total = data[:5]
        if state.values is not None:
            state.values = data[5]
        if state.distinct is not None:
            state.distinct = {_canonical(k): packed.pack(0, load_evs(e)) for k, e in data[6]}
        if state.chains is not None:
            state.chains = _load_chains(data[7])
        if state.evidence is not None:
            kept = load_evs(data[8])
            if kept:
                packed.append(state.evidence, state.opened, None, kept)
            state.kept = len(kept)
        return state


def percentile(ordered: list[int | float], rank: float) -> float:
    """The `rank`-th percentile of sorted values, linearly interpolated between neighbours."""
    position = (len(ordered) - 1) * rank / 100
    low = int(position)
    if low + 1 >= len(ordered):
        return float(ordered[low])
    fraction = position - low
    return ordered[low] * (1 - fraction) + ordered[low + 1] * fraction


# --- extensions ---------------------------------------------------------------------


class _History(Group):
    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__()
        #: value -> time last seen, least recently seen first (a dict keeps that order)
        self.seen: dict[str, int] = {}


class FirstSeen(Aggregator[_History]):
    """first_seen: a detection when a group sees a value it has not seen within T.

    Each group remembers at most `max-values` values (the least recently seen go first,
    counted); with `learn`, values seen during that long after the rule's first event are
    remembered without detections.
    """

    def __init__(
        self, rule: CorrelationRule, limit: int, max_evidence: int, counters: Counters
    ) -> None:
        super().__init__(rule, limit, max_evidence, counters)
        self.learn_until: int | None = None

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        if not isinstance(value, str):
            self.counters.no_value += 1
            return []
        if self.learn_until is None:
            self.learn_until = now + self.rule.learn
        state = self.groups.touch(now, key, _History)
        seen, oldest = state.seen, now - self.span
        while seen:
            first = next(iter(seen))
            if seen[first] >= oldest:
                break
            del seen[first]
        known = seen.pop(value, None) is not None
        seen[value] = now  # re-inserted last: the most recently seen
        if known:
            return []
        if len(seen) > self.rule.max_values:
            del seen[next(iter(seen))]
            self.counters.evicted_values += 1
        if now < self.learn_until:
            return []
        return [Fire(now, key, now - self.span, now, list(evs), value=value)]

    def snapshot(self) -> Any:
        return {"learn_until": self.learn_until, "groups": super().snapshot()}

    def restore(self, data: Any) -> None:
        self.learn_until = data["learn_until"]
        super().restore(data["groups"])

    def dump(self, state: _History) -> Any:
        return [state.last, [[value, seen] for value, seen in state.seen.items()]]

    def load(self, data: Any) -> _History:
        state = _History()
        state.last = data[0]
        state.seen = {value: seen for value, seen in data[1]}
        return state


class _Pending(Group):
    __slots__ = ("pending",)

    def __init__(self) -> None:
        super().__init__()
        #: (time, token, evidence) of each first-rule event still waiting, oldest first
        self.pending: deque[tuple[int, int, Evs]] = deque()


@dataclass
class _Instant:
    """Groups whose second rule matched at one event time (a tie still counts as after)."""

    time: int | None = None
    keys: set[Key] = field(default_factory=set)


class Absence(Aggregator[_Pending]):
    """absence: the first rule's event is not followed by the second rule's event of the
    same group within T (at the same time or up to T later); decided at t + T."""

    def __init__(
        self, rule: CorrelationRule, limit: int, max_evidence: int, counters: Counters
    ) -> None:
        super().__init__(rule, limit, max_evidence, counters)
        self.followed = _Instant()

    def hit(self, now: int, key: Key, slots: tuple[int, ...], value: Value, evs: Evs) -> list[Fire]:
        if 1 in slots:
            self.groups.live.pop(key, None)
            if self.followed.time != now:
                self.followed = _Instant(now)
            self.followed.keys.add(key)
        if 0 in slots and not (self.followed.time == now and key in self.followed.keys):
            state = self.groups.touch(now, key, _Pending)
            state.pending.append((now, self.schedule(now + self.span, key), evs))
        return []

    def timer(self, now: int, key: Key, token: int) -> list[Fire]:
        state = self.groups.live.get(key)
        if state is None or not state.pending or state.pending[0][1] != token:
            return []  # followed in time, or evicted
        started, _, evs = state.pending.popleft()
        if not state.pending:
            del self.groups.live[key]
        return [Fire(now, key, started, now, list(evs))]

    def snapshot(self) -> Any:
        followed = [self.followed.time, sorted(self.followed.keys)]
        return {"followed": followed, "groups": super().snapshot()}

    def restore(self, data: Any) -> None:
        time, keys = data["followed"]
        self.followed = _Instant(time, {tuple(key) for key in keys})
        super().restore(data["groups"])

    def dump(self, state: _Pending) -> Any:
        return [state.last, list(state.pending)]

    def load(self, data: Any) -> _Pending:
        state = _Pending()
        state.last = data[0]
        state.pending = deque([(t, token, load_evs(e)) for t, token, e in data[1]])
        return state


def aggregator_for(
    rule: CorrelationRule, limit: int, max_evidence: int, counters: Counters
) -> Aggregator[Any]:
    """The aggregator that decides `rule` as its type and condition require."""
    kind: type[Aggregator[Any]]
    if rule.type == "first_seen":
        kind = FirstSeen
    elif rule.type == "absence":
        kind = Absence
    elif not rule.decided_on_arrival:
        kind = Anchored
    elif rule.type in ("event_count", "value_sum"):
        kind = Counting
    elif rule.type == "temporal_ordered":
        kind = Ordered
    else:
        kind = Distinct
    return kind(rule, limit, max_evidence, counters)


def _dump_chains(chains: Chains) -> list[Any]:
    return [(step, _unstamp(stamp)) for step, stamp in chains.items()]


def _load_chains(data: Iterable[Sequence[Any]]) -> Chains:
    return {
        _step(slot, length): packed.pack(start, load_evs(evs))
        for (slot, length), (start, evs) in data
    }


def _unstamp(stamp: bytes) -> tuple[int, Evs]:
    """A stamp as the (time, evidence) pair a checkpoint holds."""
    return packed.time_of(stamp), packed.evs_of(stamp)


def restored_key(key: Iterable[str]) -> Key:
    """A group key from a checkpoint, its texts interned as `keys.group_key` does."""
    return tuple(map(sys.intern, key))


def _canonical(item: Any) -> Any:
    """A distinct value from a checkpoint, shared with equal ones as the live path does."""
    return sys.intern(item) if isinstance(item, str) else item
