"""Field getters: their fast paths read what the general walk reads."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from detector.rules.fields import MISSING, _walk, compile_getter

NESTED = st.recursive(
    st.one_of(st.none(), st.integers(0, 2), st.sampled_from(["x", "y"])),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "a.b", "c"]), children, max_size=3),
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["a", "b", "a.b", "c"]), NESTED, max_size=4))
def test_two_part_paths_read_as_the_general_walk(record: dict[str, Any]) -> None:
    splits = (((2, "a.b"), (1, "a")), ((2, "b"),))
    exact = record.get("a.b", MISSING)
    expected = exact if exact is not MISSING else _walk(record, splits, 0, 2)
    assert compile_getter("a.b")(record) == expected


def _nested(record: dict[str, Any], parts: list[str]) -> Any:
    """The value under each part in turn, through objects only; MISSING where one lacks it."""
    current: Any = record
    for part in parts:
        if not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return current


THREE_PART_KEYS = st.sampled_from(["a", "b", "c", "a.b", "b.c", "a.b.c"])
THREE_PART_NESTED = st.recursive(
    st.one_of(st.none(), st.integers(0, 2)),
    lambda children: st.one_of(
        st.lists(children, max_size=2), st.dictionaries(THREE_PART_KEYS, children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(THREE_PART_KEYS, THREE_PART_NESTED, max_size=4))
@example({"a": {"b.c": 1}})
@example({"a": {"b.c": 1}, "a.b": {"c": 2}})  # the longer key comes first
def test_longer_paths_read_the_key_then_nested_objects_then_the_general_walk(
    record: dict[str, Any],
) -> None:
    splits = (
        ((3, "a.b.c"), (2, "a.b"), (1, "a")),
        ((3, "b.c"), (2, "b")),
        ((3, "c"),),
    )
    expected = record.get("a.b.c", MISSING)
    if expected is MISSING:
        expected = _nested(record, ["a", "b", "c"])
    if expected is MISSING:
        expected = _walk(record, splits, 0, 3)
    assert compile_getter("a.b.c")(record) == expected


def _as_mappings(value: Any) -> Any:
    """`value` with every object a read-only mapping that is not a dict: read by the
    walk's generic code, not by its path for dicts."""
    if isinstance(value, dict):
        return MappingProxyType({key: _as_mappings(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_mappings(item) for item in value]
    return value


@given(st.dictionaries(THREE_PART_KEYS, THREE_PART_NESTED, max_size=4))
@example({"a.b": {"c": 1}, "a": {"b": {"c": 2}}})
@example({"a": [{"b.c": 1}, {"b": {"c": 2}}, {"b": [{"c": 3}]}]})
def test_the_walk_reads_dicts_as_it_reads_any_mapping(record: dict[str, Any]) -> None:
    splits = (
        ((3, "a.b.c"), (2, "a.b"), (1, "a")),
        ((3, "b.c"), (2, "b")),
        ((3, "c"),),
    )
    assert _walk(record, splits, 0, 3) == _walk(_as_mappings(record), splits, 0, 3)
