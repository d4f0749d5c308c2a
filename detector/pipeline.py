"""The batch pipeline over files: read → normalize → (match) with counts and dead letters.

`detector normalize` and `detector replay` share it; the I/O (stdout, files) stays in
the command line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from detector.deadletter import DeadLetter, DeadLetterFile
from detector.detections import Detection, RuleRef, single_event_detection
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.rules.compiled import CompiledRule
from detector.rules.routing import RuleRouter
from detector.sources.files import ProgressCallback, read_paths


@dataclass
class RunCounts:
    """What a run did; `read == normalized + dead_lettered` always holds."""

    read: int = 0
    normalized: int = 0
    dead_lettered: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def detections(self) -> int:
        return sum(self.by_rule.values())


def normalized_events(
    files: Sequence[str],
    stage: NormalizeStage,
    letters: DeadLetterFile,
    counts: RunCounts,
    progress: ProgressCallback | None = None,
) -> Iterator[Event]:
    """Every event of `files`, in input order; dead letters go to `letters`."""
    for raw in stage.join_continuation_lines(read_paths(files, progress)):
        for result in stage.process(raw):
            counts.read += 1
            if isinstance(result, DeadLetter):
                letters.write(result)
                counts.dead_lettered += 1
            else:
                counts.normalized += 1
                counts.by_source[result.event_source] += 1
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
    """Event → its single-event detections, one per matching rule."""

    def __init__(self, router: RuleRouter) -> None:
        self.router = router
        self._refs: dict[int, RuleRef] = {}

    def detections(self, event: Event) -> list[Detection]:
        result = []
        for rule in self.router.match(event):
            ref = self._refs.get(id(rule))
            if ref is None:
                ref = self._refs[id(rule)] = rule_ref(rule)
            result.append(single_event_detection(ref, event))
        return result
