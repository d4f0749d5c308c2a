"""Differential test: SigmaHQ process_creation rules give the same matches here as through
pySigma's SQLite backend (an independent conversion of the same rules) on a table of
records synthesized from the rules' own values."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import SigmaNumber, SigmaString, SigmaType, SpecialChars

from detector.rules import CompiledRule, load_rules
from tests.rules.differential_sqlite import backend, matching_rows, row_query, sqlite_table

RULES = Path(__file__).parents[2] / ".." / "shared" / "sigmahq" / "rules" / "windows"
RULES = RULES / "process_creation"


def synthesize(value: SigmaType, rng: random.Random) -> str | int | float | None:
    """A field value the Sigma value matches, in a random letter case."""
    if isinstance(value, SigmaNumber):
        return value.number
    if not isinstance(value, SigmaString):
        return None
    pieces = []
    for part in value.s:
        if isinstance(part, str):
            pieces.append(part)
        elif part is SpecialChars.WILDCARD_MULTI:
            pieces.append(rng.choice(["", "zz "]))
        else:
            pieces.append("q")
    text = "".join(pieces)
    return rng.choice([text, text.upper(), text.lower()])


def fill(detection: SigmaDetection, record: dict[str, Any], rng: random.Random) -> None:
    """Set most of the detection's fields to values of it (so records nearly match)."""
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            fill(item, record, rng)
        elif item.field is not None and item.value and rng.random() < 0.9:
            value = synthesize(rng.choice(item.value), rng)
            if isinstance(value, str) and item.field in record and rng.random() < 0.3:
                value = f"{record[item.field]} {value}"
            if value is not None:
                record[item.field] = value


def records_for(rules: list[CompiledRule]) -> list[dict[str, Any]]:
    rng = random.Random(20240615)
    records = []
    for rule in rules:
        for _ in range(2):
            record: dict[str, Any] = {}
            for detection in rule.rule.detection.detections.values():
                if rng.random() < 0.7:
                    fill(detection, record, rng)
            records.append(record)
    return records


@pytest.mark.shared
def test_process_creation_rules_agree_with_the_sqlite_backend() -> None:
    if not RULES.is_dir():
        pytest.skip(f"the SigmaHQ rule set is not at {RULES.resolve()} (../shared absent)")
    rules = load_rules([RULES]).rules
    records = records_for(rules)
    fields = sorted({name for rule in rules for name in rule.fields})
    assert all(re.fullmatch(r"\w+", name) for name in fields)
    assert len({name.lower() for name in fields}) == len(fields)
    database = sqlite_table(records, fields)
    converter = backend()

    disagreements = []
    compared = 0
    for rule in rules:
        assert rule.source is not None
        if rule.keyword_search:
            continue
        source = SigmaRule.from_yaml(rule.source.read_text())
        expected = matching_rows(database, row_query(source, converter))
        actual = {n for n, record in enumerate(records) if rule.matches(record)}
        compared += 1
        if actual != expected:
            disagreements.append((rule.source.name, sorted(actual ^ expected)[:3]))

    assert compared >= 0.95 * len(rules)
    # the records exercise matches, not only misses
    assert sum(1 for rule in rules if any(rule.matches(r) for r in records)) >= len(rules) // 3
    assert disagreements == []
