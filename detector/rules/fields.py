"""Reading Sigma field values out of JSON records.

A field name is looked up as an exact key first, because normalized events carry flat
dotted keys ("event.action"). Failing that, the dotted name is read as a path through
nested objects, one key per segment ("objectRef.resource" is
record["objectRef"]["resource"]). Failing that too, every other grouping of the segments
into keys is tried, longest key first, so keys that themselves contain dots resolve
(Kubernetes "annotations.authorization.k8s.io/decision"). A list met on the way is
walked element by element and the values found are collected, the way search engines
flatten arrays of objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, Final

from detector.json_keys import parsed_key


class _Missing:
    """Type of `MISSING`: a field the record does not have (unlike a field set to null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

Getter = Callable[[Mapping[str, Any]], Any]
# Per start index of the name's parts: (end index, key of parts[start:end]), longest first.
_Splits = tuple[tuple[tuple[int, str], ...], ...]

_NUMBER: Final = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def compile_getter(name: str) -> Getter:
    """A function returning the value of field `name` in a record, or MISSING."""
    if "." not in name:
        key = parsed_key(name)

        def get_flat(record: Mapping[str, Any]) -> Any:
            return record.get(key, MISSING)

        return get_flat

    parts = [parsed_key(part) for part in name.split(".")]
    count = len(parts)
    splits = _split(parts)
    if count == 2:
        return _two_part_getter(name, parts[0], parts[1], splits)

    def get_dotted(record: Mapping[str, Any]) -> Any:
        return _read_deep(record, name, parts, splits)

    return get_dotted


def _read_deep(record: Mapping[str, Any], name: str, parts: list[str], splits: _Splits) -> Any:
    """A path of three parts or more: the dotted key, else nested objects, else any other
    way of splitting the path into keys (`_walk`)."""
    if type(record) is not dict:  # the walk tries the whole name first
        return _walk(record, splits, 0, len(parts))
    # (dict-typed names: compiled, their reads are dict look-ups, not method calls)
    whole: dict[str, Any] = record
    value = whole.get(name, MISSING)
    if value is not MISSING:
        return value
    current: Any = whole
    for part in parts:
        if type(current) is not dict:
            break
        level: dict[str, Any] = current
        current = level.get(part, MISSING)
        if current is MISSING:
            break
    else:
        return current
    return _walk(record, splits, 0, len(parts))


def _split(parts: list[str]) -> _Splits:
    count = len(parts)
    return tuple(
        tuple((end, ".".join(parts[start:end])) for end in range(count, start, -1))
        for start in range(count)
    )


def _two_part_getter(name: str, outer: str, inner: str, splits: _Splits) -> Getter:
    """`outer.inner`, the most common path, without the loop (see `_read_two`)."""

    def get_two(record: Mapping[str, Any]) -> Any:
        if isinstance(record, dict):
            return _read_two(record, name, outer, inner, splits)
        return _walk(record, splits, 0, 2)

    return get_two


def _read_two(record: dict[str, Any], name: str, outer: str, inner: str, splits: _Splits) -> Any:
    """With no `outer.inner` key, the only other reading is record[outer][inner]: when
    `outer` is absent, a scalar or an object without `inner`, the field is missing.
    Lists (and mappings that are not dicts) take the general walk."""
    value = record.get(name, MISSING)
    if value is not MISSING:
        return value
    first = record.get(outer, MISSING)
    if isinstance(first, dict):  # (a dict, not any mapping: compiled as dict lookups)
        return first.get(inner, MISSING)
    if first is MISSING or first is None:  # most often: no test of the type below
        return MISSING
    if isinstance(first, (list, Mapping)):
        return _walk(record, splits, 0, 2)
    return MISSING


class FieldReader:
    """Reads one field as `compile_getter` does, for compiled callers: without a call
    through a closure."""

    def __init__(self, name: str) -> None:
        self.parts = [parsed_key(part) for part in name.split(".")]
        self.depth = len(self.parts)
        self.name = self.parts[0] if self.depth == 1 else name
        self.outer = self.parts[0]
        self.inner = self.parts[-1]
        self.splits = _split(self.parts)

    def read(self, record: dict[str, Any]) -> Any:
        if self.depth == 1:
            return record.get(self.name, MISSING)
        if self.depth == 2:
            return _read_two(record, self.name, self.outer, self.inner, self.splits)
        return _read_deep(record, self.name, self.parts, self.splits)


@cache
def record_getter(name: str) -> Getter:
    """The getter of `name` shared by every rule, remembering its last record's value.

    Rules of one route read the same few fields of each record (`verb`,
    `objectRef.resource`...): the first rule resolves the path, the others get the
    value back by the record's identity. Records are read-only while they are matched
    (the engine never changes a parsed record), so identity is a sound key; the memo
    holds the record itself, so a new record never takes a freed one's identity.
    """
    getter = compile_getter(name)
    if "." not in name:
        return getter  # one dict lookup: nothing to save
    memo: tuple[object, Any] = (None, MISSING)

    def get_remembered(record: Mapping[str, Any]) -> Any:
        nonlocal memo
        last = memo  # one read and one write of a tuple: safe across threads
        if last[0] is record:
            return last[1]
        value = getter(record)
        memo = (record, value)
        return value

    return get_remembered


def _walk(obj: Mapping[str, Any], splits: _Splits, start: int, count: int) -> Any:
    if type(obj) is dict:
        return _walk_dict(obj, splits, start, count)
    for end, key in splits[start]:
        if key in obj:
            value = obj[key]
            if end == count:
                return value
            found = _descend(value, splits, end, count)
            if found is not MISSING:
                return found
    return MISSING


def _walk_dict(obj: dict[str, Any], splits: _Splits, start: int, count: int) -> Any:
    """`_walk` of a dict (a parsed record's objects all are): one look-up a key."""
    for end, key in splits[start]:
        value = obj.get(key, MISSING)
        if value is MISSING:
            continue
        if end == count:
            return value
        found = _descend(value, splits, end, count)
        if found is not MISSING:
            return found
    return MISSING


def _descend(value: Any, splits: _Splits, start: int, count: int) -> Any:
    # a parsed record's objects are dicts: tested first, as the test against the
    # `Mapping` ABC cost 1,700 instructions (a Kubernetes annotation key on every record)
    if type(value) is dict or isinstance(value, Mapping):
        return _walk(value, splits, start, count)
    if isinstance(value, list):
        collected: list[Any] = []
        present = False  # some element has the field, even if its value is an empty list
        for element in value:
            found = _descend(element, splits, start, count)
            if found is MISSING:
                continue
            present = True
            if isinstance(found, list):
                collected.extend(found)
            else:
                collected.append(found)
        return collected if present else MISSING
    return MISSING


def iter_elements(value: Any) -> Iterator[Any]:
    """The value itself, or each element of a (nested) list: a list matches by any element."""
    if isinstance(value, list):
        for element in value:
            yield from iter_elements(element)
    else:
        yield value


def iter_leaves(value: Any) -> Iterator[str | int | float | bool]:
    """Every non-null scalar anywhere in a record, depth first in key order."""
    if isinstance(value, Mapping):
        for child in value.values():
            yield from iter_leaves(child)
    elif isinstance(value, list):
        for child in value:
            yield from iter_leaves(child)
    elif isinstance(value, (str, int, float)):
        yield value


def text_of(value: Any) -> str | None:
    """The text a Sigma string is compared with: numbers as written, booleans as JSON."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def as_number(value: Any) -> int | float | None:
    """A numeric value, or numeric text read as a number; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text) is None:
            return None
        if "." in text or "e" in text or "E" in text:
            return float(text)
        return int(text)
    return None


def is_null(value: Any) -> bool:
    """Sigma `null`: the field is absent, null, or an empty list."""
    return value is MISSING or value is None or (isinstance(value, list) and not value)
