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


def test_files(paths: Iterable[Path]) -> list[Path]:
    """Every `*.tests.yml` under `paths`."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(RULE_TEST_SUFFIXES)))
        elif path.name.endswith(RULE_TEST_SUFFIXES):
            found.append(path)
    return found


def run_tests(
    files: Iterable[Path], rules: Iterable[CompiledRule], registry: SourceRegistry
) -> Iterator[CaseResult]:
    """Each case of each test file, run against the rule it names."""
    by_id = {r.id: r for r in rules if r.id}
    by_file = {r.source.resolve(): r for r in by_id.values() if r.source is not None}
    for file in files:
        yield from _run_file(file, by_id, by_file, registry)


def _run_file(
    file: Path,
    by_id: dict[str, CompiledRule],
    by_file: dict[Path, CompiledRule],
    registry: SourceRegistry,
) -> Iterator[CaseResult]:
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        yield CaseResult(file, "?", 0, True, None, f"unreadable test file: {exc}")
        return
    if not isinstance(spec, dict):
        yield CaseResult(file, "?", 0, True, None, "a test file is a mapping")
        return
    stem = file.name.removesuffix(".tests.yml").removesuffix(".tests.yaml")
    rule = by_id.get(str(spec.get("rule"))) if spec.get("rule") else None
    if rule is None:
        rule = next(
            (by_file.get((file.parent / f"{stem}{ext}").resolve()) for ext in (".yml", ".yaml")),
            None,
        )
    if rule is None:
        yield CaseResult(file, str(spec.get("rule", stem)), 0, True, None, "no such rule loaded")
        return
    try:
        stage = NormalizeStage(registry, spec.get("source"))
    except KeyError as exc:
        yield CaseResult(file, rule.id or rule.title, 0, True, None, str(exc.args[0]))
        return
    router = RuleRouter([rule], registry.routes())
    cases = [(True, e) for e in spec.get("match") or []] + [
        (False, e) for e in spec.get("no_match") or []
    ]
    for index, (expected, record) in enumerate(cases):
        yield _run_case(file, rule, index, expected, record, stage, router)


def _run_case(
    file: Path,
    rule: CompiledRule,
    index: int,
    expected: bool,
    record: Any,
    stage: NormalizeStage,
    router: RuleRouter,
) -> CaseResult:
    name = rule.id or rule.title
    data = record.encode("utf-8") if isinstance(record, str) else orjson.dumps(record)
    results = list(stage.process(RawRecord(data, f"{file}#{index}")))
    letters = [r for r in results if isinstance(r, DeadLetter)]
    if letters or not results:
        reason = letters[0].reason if letters else "no event"
        return CaseResult(file, name, index, expected, None, reason)
    fired = any(
        rule in router.match(event) for event in results if not isinstance(event, DeadLetter)
    )
    return CaseResult(file, name, index, expected, fired)
