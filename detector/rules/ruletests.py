"""Rule tests: events that must make a rule fire, and near misses that must not.

A rule `NAME.yml` is tested by `NAME.tests.yml` beside it:

    rule: 0b7a2c57-...        # optional: the rule's id (default: the rule in NAME.yml)
    source: github            # optional: read the events as this source (default: detect)
    match:                    # raw records as the source writes them (text lines as strings)
      - {action: repo.destroy, actor: mallory, "@timestamp": 1741611463961}
    no_match:                 # each must stay silent
      - {action: repo.create, actor: mallory, "@timestamp": 1741611463961}

A correlation rule is tested the same way, except that each case is a sequence of raw
records of any sources, replayed in the order listed:

    match:                    # each sequence must make the correlation fire
      - [{...github record...}, {...kubernetes record...}]
    no_match:                 # out of order, another identity, too far apart...
      - [{...}, {...}]

The events go through the same normalize stage and routing as a replay, so a test
also proves that the rule sees the source it is written for. A sequence is matched by
every loaded rule and run through a fresh correlation engine holding the correlations of
the test file's directory (compiled against the loaded rules, so the rules a correlation
references must be among them), flushed at the end; the case fires when the tested
correlation made a detection, emitted or not (`generate: false` of a correlation that
references it silences its output, not its decision).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from detector.correlate import CorrelationEngine, CorrelationRule, CorrelationSet
from detector.correlate import compile_correlations as compile_correlation_set
from detector.deadletter import DeadLetter
from detector.events import Event
from detector.normalize import NormalizeStage, SourceRegistry
from detector.rules.compiled import CompiledRule
from detector.rules.loader import (
    RULE_SUFFIXES,
    RULE_TEST_SUFFIXES,
    LoadResult,
    RuleError,
    is_rule_test_file,
    load_rules,
)
from detector.rules.routing import RuleRouter
from detector.sources.records import RawRecord


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One test event's (or sequence's) outcome."""

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
    """One record of a test file and the events the normalize stage made of it; for a
    correlation test, one sequence of records and the events of all of them, in order."""

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


@dataclass(frozen=True, slots=True)
class CorrelationTest:
    """A correlation's test file read: the correlation with the set it runs in (its
    directory's correlations), and its sequences."""

    test_file: Path
    name: str  # the correlation's key (id, else name, else title)
    rule: CorrelationRule | None
    correlations: CorrelationSet = field(default_factory=CorrelationSet)
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
    """Each single-event test file with the loaded rule it tests and its records,
    normalized; correlation test files are left to `read_correlation_tests`."""
    for test in _read_all(files, rules, registry):
        if isinstance(test, RuleTest):
            yield test


def read_correlation_tests(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[CorrelationTest]:
    """Each correlation test file with its correlation and its sequences, normalized."""
    for test in _read_all(files, rules, registry):
        if isinstance(test, CorrelationTest):
            yield test


def run_tests(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[CaseResult]:
    """Each case of each test file, run against the rule or correlation it names."""
    loaded = list(rules)
    router: RuleRouter | None = None
    for test in _read_all(files, loaded, registry):
        if test.rule is None or test.error:
            yield CaseResult(test.test_file, test.name, 0, True, None, test.error)
            continue
        if isinstance(test, RuleTest):
            yield from _run_rule_test(test, registry)
            continue
        if router is None:
            router = RuleRouter(loaded, registry.routes())
        yield from _run_correlation_test(test, router)


def _run_rule_test(test: RuleTest, registry: SourceRegistry) -> Iterator[CaseResult]:
    assert test.rule is not None
    router = RuleRouter([test.rule], registry.routes())
    for case in test.cases:
        fired = None if case.error else any(test.rule in router.match(e) for e in case.events)
        yield CaseResult(test.test_file, test.name, case.index, case.expected, fired, case.error)


def _run_correlation_test(test: CorrelationTest, router: RuleRouter) -> Iterator[CaseResult]:
    assert test.rule is not None
    if not any(case.expected for case in test.cases) or all(c.expected for c in test.cases):
        reason = "a correlation test needs a `match` and a `no_match` sequence"
        yield CaseResult(test.test_file, test.name, 0, True, None, reason)
        return
    for case in test.cases:
        fired = None if case.error else _correlation_fires(test, router, case.events)
        yield CaseResult(test.test_file, test.name, case.index, case.expected, fired, case.error)


def _correlation_fires(test: CorrelationTest, router: RuleRouter, events: Iterable[Event]) -> bool:
    """True if the sequence makes the tested correlation decide a detection."""
    assert test.rule is not None
    engine = CorrelationEngine(test.correlations)
    for event in events:
        engine.process(event, router.match(event))
    engine.flush()
    return engine.stats.detections[test.rule.key] > 0


@dataclass(frozen=True, slots=True)
class _Directory:
    """The correlations of one directory, and why the others there did not load."""

    correlations: CorrelationSet
    errors: list[RuleError]


class _Correlations:
    """The correlations of each test file's directory, loaded and compiled once per run
    against the rules the tests run with."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = rules
        self._by_directory: dict[Path, _Directory] = {}

    def of(self, directory: Path) -> _Directory:
        directory = directory.resolve()
        found = self._by_directory.get(directory)
        if found is None:
            files = sorted(
                p
                for p in directory.iterdir()
                if p.suffix in RULE_SUFFIXES and p.is_file() and not is_rule_test_file(p)
            )
            beside = load_rules(files)
            loaded = LoadResult(rules=list(self.rules), correlations=beside.correlations)
            compiled = compile_correlation_set(loaded)
            found = _Directory(compiled, [*beside.errors, *compiled.errors])
            self._by_directory[directory] = found
        return found


def _read_all(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[RuleTest | CorrelationTest]:
    loaded = list(rules)
    by_id = {r.id: r for r in loaded if r.id}
    by_file = {r.source.resolve(): r for r in by_id.values() if r.source is not None}
    correlations = _Correlations(loaded)
    for file in files:
        yield _read_file(file, by_id, by_file, correlations, registry)


def _read_file(
    file: Path,
    by_id: dict[str, CompiledRule],
    by_file: dict[Path, CompiledRule],
    correlations: _Correlations,
    registry: SourceRegistry,
) -> RuleTest | CorrelationTest:
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return RuleTest(file, "?", None, error=f"unreadable test file: {exc}")
    if not isinstance(spec, dict):
        return RuleTest(file, "?", None, error="a test file is a mapping")
    stem = file.name.removesuffix(".tests.yml").removesuffix(".tests.yaml")
    rule_files = [(file.parent / f"{stem}{ext}").resolve() for ext in RULE_SUFFIXES]
    wanted = str(spec["rule"]) if spec.get("rule") else None
    rule = by_id.get(wanted) if wanted else None
    if rule is None:
        rule = next((by_file[p] for p in rule_files if p in by_file), None)
    if rule is None:
        return _read_correlation_file(file, spec, stem, wanted, rule_files, correlations, registry)
    name = rule.id or rule.title
    try:
        stage = NormalizeStage(registry, spec.get("source"))
    except KeyError as exc:
        return RuleTest(file, name, rule, error=str(exc.args[0]))
    cases = tuple(
        _read_case(file, index, expected, record, stage)
        for index, (expected, record) in enumerate(_items(spec))
    )
    return RuleTest(file, name, rule, cases)


def _read_correlation_file(
    file: Path,
    spec: dict[str, Any],
    stem: str,
    wanted: str | None,
    rule_files: list[Path],
    correlations: _Correlations,
    registry: SourceRegistry,
) -> RuleTest | CorrelationTest:
    """The test of the correlation the file names, or a RuleTest saying no rule is loaded."""
    directory = correlations.of(file.parent)
    compiled = directory.correlations
    rule = next((c for c in compiled.rules if _names(c, wanted, rule_files)), None)
    if rule is None:
        error = next(
            (
                e
                for e in directory.errors
                if (wanted and e.rule_id == wanted)
                or (not wanted and e.path.resolve() in rule_files)
            ),
            None,
        )
        name = error.rule_id if error is not None and error.rule_id else wanted or stem
        if error is None:
            return RuleTest(file, name, None, error="no such rule loaded")
        if error.kind != "correlation":  # the file did not load: no telling what it holds
            return RuleTest(file, name, None, error=f"{error.kind}: {error.reason}")
        return CorrelationTest(file, name, None, error=error.reason)
    try:
        stage = NormalizeStage(registry, spec.get("source"))
    except KeyError as exc:
        return CorrelationTest(file, rule.key, rule, compiled, error=str(exc.args[0]))
    cases = tuple(
        _read_sequence(file, index, expected, records, stage)
        for index, (expected, records) in enumerate(_items(spec))
    )
    return CorrelationTest(file, rule.key, rule, compiled, cases)


def _names(rule: CorrelationRule, wanted: str | None, rule_files: list[Path]) -> bool:
    """True if the test file names `rule`: by its id or name, else by the file beside it."""
    if wanted:
        return wanted in (rule.key, rule.name)
    return rule.source is not None and rule.source.resolve() in rule_files


def _items(spec: dict[str, Any]) -> list[tuple[bool, Any]]:
    """The file's cases as (expected, item): the `match` ones first."""
    return [(True, item) for item in spec.get("match") or []] + [
        (False, item) for item in spec.get("no_match") or []
    ]


def _read_case(file: Path, index: int, expected: bool, record: Any, stage: NormalizeStage) -> Case:
    events, error = _normalize(file, f"#{index}", record, stage)
    return Case(index, expected, events, error)


def _read_sequence(
    file: Path, index: int, expected: bool, records: Any, stage: NormalizeStage
) -> Case:
    if not isinstance(records, list) or not records:
        return Case(index, expected, (), "a correlation test case is a list of raw records")
    events: list[Event] = []
    for position, record in enumerate(records):
        found, error = _normalize(file, f"#{index}.{position}", record, stage)
        if error:
            return Case(index, expected, (), f"record {position}: {error}")
        events.extend(found)
    return Case(index, expected, tuple(events))


def _normalize(
    file: Path, where: str, record: Any, stage: NormalizeStage
) -> tuple[tuple[Event, ...], str]:
    """The events of one raw record, or why there are none."""
    data = record.encode("utf-8") if isinstance(record, str) else orjson.dumps(record)
    results = list(stage.process(RawRecord(data, f"{file}{where}")))
    letters = [r for r in results if isinstance(r, DeadLetter)]
    if letters or not results:
        return (), letters[0].reason if letters else "no event"
    return tuple(r for r in results if isinstance(r, Event)), ""
