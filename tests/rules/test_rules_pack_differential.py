"""Differential test of the shipped rule pack (rules/) on the pack's own test events.

Each rule is evaluated on the test events of every pack test file its logsource sees: its
own positives and near misses and every other file's events of its source. A rule on a
raw logsource reads the raw record; a `product: cicd` rule reads the normalized event
(`Event.to_dict()`). The engine's answer (`CompiledRule.matches`) is compared with
pySigma's SQLite backend over a table of the records, where the backend converts the rule
and the table can hold what the rule reads, and with `differential_reference` on every
pair. Nested fields become dotted columns, the names the backend quotes as one identifier
(`objectRef.resource`); a field that holds a list or an object, and the other blind spots
of `sqlite_blind_spot`, leave the pair to the reference. The test lists every disagreement
(rule file, test file#case, engine, oracle) and fails on one the allow-list does not
explain. `pytest -s` prints a summary per source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import SigmaCompareExpression

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import SourceRegistry
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, load_rules, ruletests
from detector.rules.routing import NORMALIZED_PRODUCT, RuleRouter
from tests.rules.differential_cases import RuleCase
from tests.rules.differential_reference import flatten, rule_matches
from tests.rules.differential_sqlite import (
    backend,
    matching_rows,
    row_query,
    sqlite_table,
    text_rows,
)
from tests.rules.test_rules_differential import DOCUMENTED, Disagreement, Known, sqlite_blind_spot

RULES = Path(__file__).resolve().parents[2] / "rules"

# The allow-list: names of documented differences of `test_rules_differential.DOCUMENTED`
# (only those may be reused) that the pack's events meet, each with the pairs it explains as
# a comment. The pack's events meet none today. Each entry must explain at least one pair,
# so an entry that no longer applies is noticed.
REUSED: set[str] = set()
ALLOWED: list[Known] = [known for known in DOCUMENTED if known.name in REUSED]


@dataclass(frozen=True)
class PackRecord:
    """A test event of the pack as a rule reads it."""

    label: str  # test file (relative to rules/) and case: `github/x.tests.yml#2`
    record: Mapping[str, Any]  # the raw record, or the normalized event's dict
    flat: Mapping[str, Any]  # the same with dotted names for nested fields


@dataclass(frozen=True)
class PackDisagreement:
    """The engine and an oracle differ on a rule and a test event."""

    rule: str  # rule file, relative to rules/
    case: str
    detail: Disagreement  # what the allow-list reads: the rule's fields of the record

    def __str__(self) -> str:
        d = self.detail
        return f"{self.rule} on {self.case}: engine {d.engine}, {d.oracle} {d.expected}"


@dataclass
class Tally:
    """What one source's rules were checked on, and how."""

    rules: int = 0
    pairs: int = 0
    matches: int = 0  # pairs the engine matches
    sqlite: int = 0  # pairs SQLite answers for
    sqlite_matches: int = 0  # of those, pairs SQLite matches
    sqlite_agree: int = 0
    reference_agree: int = 0
    #: why SQLite did not answer, and for how many pairs
    reference_only: Counter[str] = field(default_factory=Counter)
    known: int = 0
    new: int = 0


# --- the pack's events, as each rule sees them ---------------------------------------------


def _relative(path: Path) -> str:
    return path.resolve().relative_to(RULES).as_posix()


def _events(rules: list[CompiledRule], registry: SourceRegistry) -> Iterator[tuple[str, Event]]:
    """(label, normalized event) of every case of every pack test file."""
    for test in ruletests.read_tests(ruletests.test_files([RULES]), rules, registry):
        assert test.error == "", f"{test.test_file}: {test.error}"
        for case in test.cases:
            assert case.error == "", f"{test.test_file}#{case.index}: {case.error}"
            for number, event in enumerate(case.events):
                suffix = f".{number}" if len(case.events) > 1 else ""
                yield f"{_relative(test.test_file)}#{case.index}{suffix}", event


def records_by_rule(rules: list[CompiledRule]) -> dict[CompiledRule, list[PackRecord]]:
    """Each rule's records: the test events of the sources its logsource sees."""
    registry = build_registry(SourcesSettings())
    router = RuleRouter(rules, registry.routes(), indexed=False)
    seen: dict[CompiledRule, list[PackRecord]] = {rule: [] for rule in rules}
    for label, event in _events(rules, registry):
        if isinstance(event.raw, dict):
            raw = PackRecord(label, event.raw, flatten(event.raw))
            for rule in router.raw[event.event_source].rules:
                seen[rule].append(raw)
        normalized = event.to_dict()
        record = PackRecord(label, normalized, flatten(normalized))
        for rule in router.normalized[event.event_source].rules:
            seen[rule].append(record)
    return seen


def _group(rule: CompiledRule, name: str) -> str:
    """The summary row of a rule: `cicd`, or the source directory of a raw-record rule."""
    return (
        NORMALIZED_PRODUCT if rule.logsource.product == NORMALIZED_PRODUCT else name.split("/")[0]
    )


# --- SQLite --------------------------------------------------------------------------------


def _compared_fields(detection: SigmaDetection) -> set[str]:
    """The fields the rule compares with `lt`, `lte`, `gt` or `gte`."""
    found: set[str] = set()
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            found |= _compared_fields(item)
        elif item.field is not None and any(
            isinstance(value, SigmaCompareExpression) for value in item.value
        ):
            found.add(item.field)
    return found


def sqlite_answers(
    rule: SigmaRule, case: RuleCase, fields: list[str], converter: Any
) -> tuple[dict[int, bool], dict[int, str]]:
    """SQLite's answer per record index it speaks for, and why it does not for the others."""
    try:
        query = row_query(rule, converter)
    except SigmaFeatureNotSupportedByBackendError:
        return {}, dict.fromkeys(range(len(case.events)), "the backend does not convert it")
    silent = {
        i: reason for i, e in enumerate(case.events) if (reason := sqlite_blind_spot(case, e))
    }
    usable = [i for i in range(len(case.events)) if i not in silent]
    compared = set().union(*map(_compared_fields, rule.detection.detections.values()))
    database = sqlite_table([case.events[i] for i in usable], fields, compared)
    rows = matching_rows(database, query)
    for row in text_rows(database, sorted(compared)):
        silent[usable[row]] = "a compared field holds text"
    return {i: row in rows for row, i in enumerate(usable) if i not in silent}, silent


# --- the comparison ------------------------------------------------------------------------


def evaluate() -> tuple[list[PackDisagreement], dict[str, Tally], dict[str, set[str]]]:
    """All disagreements, a tally per source directory, and each rule's test-file labels."""
    result = load_rules([RULES])
    assert result.errors == []
    converter = backend()
    tallies: dict[str, Tally] = {}
    own_labels: dict[str, set[str]] = {}
    disagreements = []
    for rule, records in records_by_rule(result.rules).items():
        assert rule.source is not None
        name = _relative(rule.source)
        text = rule.source.read_text(encoding="utf-8")
        detection = yaml.safe_load(text)["detection"]
        fields = sorted(rule.fields)
        projected = tuple({f: r.flat[f] for f in fields if f in r.flat} for r in records)
        case = RuleCase(_group(rule, name), detection, projected)
        by_sqlite, silent = sqlite_answers(SigmaRule.from_yaml(text), case, fields, converter)
        tally = tallies.setdefault(case.family, Tally())
        tally.rules += 1
        own_labels[name] = {r.label.split("#")[0] for r in records}
        for index, record in enumerate(records):
            engine = rule.matches(record.record)
            answers = {"reference": rule_matches(detection, record.flat)}
            if index in by_sqlite:
                answers["sqlite"] = by_sqlite[index]
                tally.sqlite += 1
                tally.sqlite_matches += by_sqlite[index]
                tally.sqlite_agree += engine == by_sqlite[index]
            else:
                tally.reference_only[silent[index]] += 1
            tally.pairs += 1
            tally.matches += engine
            tally.reference_agree += engine == answers["reference"]
            disagreements += [
                PackDisagreement(
                    name,
                    record.label,
                    Disagreement(case.family, detection, {}, projected[index], engine, o, a),
                )
                for o, a in answers.items()
                if a != engine
            ]
    return disagreements, tallies, own_labels


def _print_summary(tallies: dict[str, Tally], used: Counter[str]) -> None:
    columns = ["rules", "pairs", "matches", "sqlite", "sql match", "agree", "ref agree", "known"]
    print("\n" + f"{'source':<16}" + "".join(f"{c:>10}" for c in [*columns, "new"]))
    for source, t in sorted(tallies.items()):
        counts = [t.rules, t.pairs, t.matches, t.sqlite, t.sqlite_matches, t.sqlite_agree]
        counts += [t.reference_agree, t.known, t.new]
        print(f"{source:<16}" + "".join(f"{n:>10}" for n in counts))
        for reason, count in t.reference_only.most_common():
            print(f"{'':<16}reference only ({count} pairs): {reason}")
    for name, count in used.items():
        print(f"known difference ({count} pairs): {name}")


def test_pack_rules_agree_with_sqlite_and_the_reference() -> None:
    disagreements, tallies, own_labels = evaluate()
    used: Counter[str] = Counter()
    unexplained = []
    for disagreement in disagreements:
        known = next((k for k in ALLOWED if k.applies(disagreement.detail)), None)
        tally = tallies[disagreement.detail.family]
        if known is None:
            unexplained.append(str(disagreement))
            tally.new += 1
        else:
            used[known.name] += 1
            tally.known += 1
    _print_summary(tallies, used)

    assert unexplained == []
    assert len(ALLOWED) == len(REUSED), "the allow-list names a difference DOCUMENTED lacks"
    assert sorted(used) == sorted(k.name for k in ALLOWED), "an allow-list entry explains nothing"
    # each rule meets its own test events, and the events of other test files
    for name, labels in own_labels.items():
        assert name.replace(".yml", ".tests.yml") in labels, name
        assert len(labels) > 1, name
    # every source's rules meet matches and misses, and SQLite answers for each source
    assert all(0 < t.matches < t.pairs for t in tallies.values())
    assert all(t.sqlite > 0 for t in tallies.values())


def test_flatten_names_nested_fields_by_their_dotted_paths() -> None:
    record: dict[str, Any] = {
        "verb": "create",
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "spec": {"containers": [{"image": "a", "ports": [1, 2]}, {"name": "b"}, [{"image": "c"}]]},
    }
    assert flatten(record) == {
        "verb": "create",
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "annotations.authorization.k8s.io/decision": "allow",
        "spec": record["spec"],
        "spec.containers": record["spec"]["containers"],
        "spec.containers.image": ["a", "c"],
        "spec.containers.ports": [1, 2],
        "spec.containers.name": ["b"],
    }


def test_flatten_refuses_two_paths_of_one_name() -> None:
    with pytest.raises(ValueError, match=r"two paths spell the field 'a\.b'"):
        flatten({"a.b": 1, "a": {"b": 2}})
