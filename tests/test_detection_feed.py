"""The detections feed's schema stays readable by subscribers of the published version:
the current `schemas/detection.schema.json` against the frozen copy of version 1, and
the checker that compares them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from detector.detections import SCHEMA_VERSION
from tests.schema_compat import breaking_changes

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_V1 = ROOT / "tests" / "fixtures" / "detection.schema.v1.json"


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def test_the_current_detection_schema_reads_like_the_published_version_1() -> None:
    current = _load(ROOT / "schemas" / "detection.schema.json")
    problems = breaking_changes(_load(PUBLISHED_V1), current)
    assert SCHEMA_VERSION.split(".")[0] == "1"
    assert problems == [], (
        "breaking changes for detector.detections subscribers: a new major schema_version "
        f"(and a frozen copy of it) is needed: {problems}"
    )


def test_breaking_changes_in_the_published_schema_are_named() -> None:
    published = _load(PUBLISHED_V1)
    removed = copy.deepcopy(published)
    del removed["$defs"]["Evidence"]["properties"]["actor"]
    retyped = copy.deepcopy(published)
    retyped["properties"]["message"] = {"type": ["string", "null"]}
    required = copy.deepcopy(published)
    required["required"].append("group")
    group_values = copy.deepcopy(published)
    group_values["properties"]["group"]["anyOf"][0]["additionalProperties"] = {"type": "integer"}
    added = copy.deepcopy(published)
    added["properties"]["severity_score"] = {"type": "number"}
    assert breaking_changes(published, removed) == ["$.evidence[].actor: removed"]
    assert breaking_changes(published, retyped) == [
        "$.message: type ['string'] became ['null', 'string']"
    ]
    assert breaking_changes(published, required) == ["$.group: optional, now required"]
    assert breaking_changes(published, group_values) == [
        "$.group.*: type ['string'] became ['integer']"
    ]
    assert breaking_changes(published, added) == []


LEAVES = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "boolean"}])


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


@st.composite
def _objects(
    draw: st.DrawFn, children: st.SearchStrategy[Any], min_size: int = 0
) -> dict[str, Any]:
    names = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
    properties = draw(st.dictionaries(names, children, min_size=min_size, max_size=5))
    required = (
        draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    )
    return _object(properties, required)


NODES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        _objects(children), children.map(lambda items: {"type": "array", "items": items})
    ),
    max_leaves=12,
)
#: an object schema with at least one property, as a published schema is
SCHEMAS = _objects(NODES, min_size=1)


def _properties(node: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every (object node, property name) in the schema."""
    if node["type"] == "object":
        for name, child in node["properties"].items():
            yield node, name
            yield from _properties(child)
    elif node["type"] == "array":
        yield from _properties(node["items"])


@given(SCHEMAS, st.data())
def test_removing_any_property_breaks(schema: dict[str, Any], data: st.DataObject) -> None:
    changed = copy.deepcopy(schema)
    node, name = data.draw(st.sampled_from(list(_properties(changed))))
    del node["properties"][name]
    node["required"] = [n for n in node["required"] if n != name]
    assert any(
        problem.endswith(f".{name}: removed") for problem in breaking_changes(schema, changed)
    )


@given(SCHEMAS, st.data())
def test_retyping_any_property_breaks(schema: dict[str, Any], data: st.DataObject) -> None:
    changed = copy.deepcopy(schema)
    node, name = data.draw(st.sampled_from(list(_properties(changed))))
    node["properties"][name] = {"type": "number"}
    problems = breaking_changes(schema, changed)
    assert any(f".{name}: type" in problem for problem in problems)


@given(SCHEMAS, st.data())
def test_requiring_an_optional_property_breaks_and_adding_one_does_not(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    assert breaking_changes(schema, schema) == []
    added = copy.deepcopy(schema)
    node, _ = data.draw(st.sampled_from(list(_properties(added))))
    node["properties"]["zz_new"] = {"type": "string"}
    assert breaking_changes(schema, added) == []
    optional = [(n, p) for n, p in _properties(schema) if p not in n["required"]]
    if optional:
        changed = copy.deepcopy(schema)
        index = data.draw(st.integers(0, len(optional) - 1))
        target = list(_properties(changed))[list(_properties(schema)).index(optional[index])]
        target[0]["required"].append(target[1])
        assert any("now required" in problem for problem in breaking_changes(schema, changed))
