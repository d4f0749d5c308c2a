"""Rule tests: events that must make a rule fire, and near misses that must not.

A rule `NAME.yml` is tested by `NAME.tests.yml` beside it:

    rule: 0b7a2c57-...        # optional: the rule's id (default: the rule in NAME.yml)
    source: github            # optional: read the events as this source (default: detect)
    match:                    # raw records as the source writes them (text lines as strings)
      - {action: repo.destroy, actor: mallory, "@timestamp": 1741611463961}
    no_match:                 # each must stay silent
      - {action: repo.create, actor: mallory, "@timestamp": 1741611463961}

The events go through the same normalize stage and routing as a replay, so a test
also proves that the rule sees the source it is written for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from detector.deadletter import DeadLetter
from detector.events import Event
from detector.normalize import NormalizeStage, SourceRegistry
from detector.rules.compiled import CompiledRule
from detector.rules.loader import RULE_TEST_SUFFIXES
from detector.rules.routing import RuleRouter
from detector.sources.records import RawRecord


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test event's outcome."""

    test_file: Path
    rule: str
    index: int
    expected: bool
    fired: bool | None  # None: the event could not be normalized
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.fired is self.expected


@dataclass(frozen=True, slots=True)
class Case:
    """One record of a test file and the events the normalize stage made of it."""

    index: int  # position among the file's cases: the `match` records first
    expected: bool  # True for a `match` record, False for a `no_match` one
    events: tuple[Event, ...]
    error: str = ""  # why the record gave no event (then `events` is empty)


@dataclass(frozen=True, slots=True)
class RuleTest:
    """A test file read: the rule it tests and its cases, or why it cannot run."""

    test_file: Path
    name: str  # the rule's id (or title), or what the file names when no rule is loaded
    rule: CompiledRule | None
    cases: tuple[Case, ...] = ()
    error: str = ""


def test_files(paths: Iterable[Path]) -> list[Path]:
    """Every `*.tests.yml` under `paths`."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(RULE_TEST_SUFFIXES)))
        elif path.name.endswith(RULE_TEST_SUFFIXES):
            found.append(path)
    return found


def read_tests(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[RuleTest]:
    """Each test file with the loaded rule it tests and its records, normalized."""
    by_id = {r.id: r for r in rules if r.id}
    by_file = {r.source.resolve(): r for r in by_id.values() if r.source is not None}
    for file in files:
        yield _read_file(file, by_id, by_file, registry)


def run_tests(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[CaseResult]:
    """Each case of each test file, run against the rule it names."""
    for test in read_tests(files, rules, registry):
        if test.rule is None or test.error:
            yield CaseResult(test.test_file, test.name, 0, True, None, test.error)
            continue
        router = RuleRouter([test.rule], registry.routes())
        for case in test.cases:
            fired = (
                None
                if case.error
                else any(test.rule in router.match(event) for event in case.events)
            )
            yield CaseResult(
                test.test_file, test.name, case.index, case.expected, fired, case.error
            )


def _read_file(
    file: Path,
    by_id: dict[str, CompiledRule],
    by_file: dict[Path, CompiledRule],
    registry: SourceRegistry,
) -> RuleTest:
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return RuleTest(file, "?", None, error=f"unreadable test file: {exc}")
    if not isinstance(spec, dict):
        return RuleTest(file, "?", None, error="a test file is a mapping")
    stem = file.name.removesuffix(".tests.yml").removesuffix(".tests.yaml")
    rule = by_id.get(str(spec.get("rule"))) if spec.get("rule") else None
    if rule is None:
        rule = next(
            (by_file.get((file.parent / f"{stem}{ext}").resolve()) for ext in (".yml", ".yaml")),
            None,
        )
    if rule is None:
        return RuleTest(file, str(spec.get("rule", stem)), None, error="no such rule loaded")
    name = rule.id or rule.title
    try:
        stage = NormalizeStage(registry, spec.get("source"))
    except KeyError as exc:
        return RuleTest(file, name, rule, error=str(exc.args[0]))
    records = [(True, r) for r in spec.get("match") or []] + [
        (False, r) for r in spec.get("no_match") or []
    ]
    cases = tuple(
        _read_case(file, index, expected, record, stage)
        for index, (expected, record) in enumerate(records)
    )
    return RuleTest(file, name, rule, cases)


def _read_case(file: Path, index: int, expected: bool, record: Any, stage: NormalizeStage) -> Case:
    data = record.encode("utf-8") if isinstance(record, str) else orjson.dumps(record)
    results = list(stage.process(RawRecord(data, f"{file}#{index}")))
    letters = [r for r in results if isinstance(r, DeadLetter)]
    if letters or not results:
        return Case(index, expected, (), letters[0].reason if letters else "no event")
    return Case(index, expected, tuple(r for r in results if isinstance(r, Event)))
