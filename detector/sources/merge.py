"""Several inputs as one stream in event-time order, without loading them into memory.

A replay of a directory with one file per source must see the records as a live feed
would have delivered them: interleaved by event time. `merge_by_event_time` is a k-way
merge (`heapq.merge`) of the normalized results of each input, keyed by (timestamp,
source, event id), the order the correlation engine uses for equal times.

Each input is assumed to be roughly sorted already, as audit logs are written: nothing
is sorted within an input. The merge only ever compares the heads of the inputs, so a
record out of order within its input comes out where its input reaches it; the
correlation engine's reorder buffer puts such disorder back in order when it is within
the allowed lateness, and reports what is beyond it as late.

Memory: the merge holds one pending result per input (and each input's reader its
current record and read buffer), so it is bounded by the number of inputs times the
largest record, never by the size of the inputs. Every input is open for the whole
merge: one file descriptor per input.

Dead letters have no event time. One takes the key of the event before it in its input
(the smallest key when none came before), so it flows out next to its neighbours and
dead letters of one input keep the order in which they were read. Equal keys come out in
the order of the inputs, which makes the merged order deterministic for the same inputs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from detector.deadletter import DeadLetter
from detector.events import Event

#: (timestamp, source, event id); a worker's outcomes have the time in microseconds
MergeKey = tuple[Any, str, str]

#: what is merged: normalized events, or what a worker made of them (`detector.parallel`)
Result = TypeVar("Result")

_FIRST: Final[MergeKey] = (datetime.min.replace(tzinfo=UTC), "", "")


def event_key(event: Event) -> MergeKey:
    """Where an event goes in the merged stream (read from the model's dict: one lookup
    through the pydantic model's attribute hook instead of three)."""
    values = event.__dict__
    return (values["timestamp"], values["event_source"], values["event_id"])


def _keyed(
    results: Iterable[Result | DeadLetter], key: Callable[[Any], MergeKey], first: MergeKey
) -> Iterator[tuple[MergeKey, Result | DeadLetter]]:
    last = first
    for result in results:
        if type(result) is not DeadLetter:
            last = key(result)
        yield last, result


def merge_by_event_time(
    inputs: Iterable[Iterable[Result | DeadLetter]],
    key: Callable[[Any], MergeKey] = event_key,
    first: MergeKey = _FIRST,
) -> Iterator[Result | DeadLetter]:
    """The results of all `inputs` (each in its own order) merged by event time; `key`
    gives a result's place (by default the results are events), `first` sorts before
    every place (a dead letter's when no event came before it in its input)."""
    streams = list(inputs)
    if len(streams) == 1:  # nothing to merge: the input's own order
        yield from streams[0]
        return
    keyed = [_keyed(results, key, first) for results in streams]
    for _, result in heapq.merge(*keyed, key=lambda pair: pair[0]):
        yield result
