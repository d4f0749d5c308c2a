"""Backward compatibility of a JSON Schema for the readers of what it describes.

`breaking_changes(published, current)` names what a reader written against `published`
would trip on in data that follows `current`: a property removed, a property whose JSON
types changed (`type`, `const`, `enum`, `anyOf`/`oneOf` branches, compared as sets), or
an optional property made required. It follows `$ref`s into each document's `$defs`
and recurses into properties, array items, `additionalProperties` and the object and
array branches of `anyOf`/`oneOf`. A new optional property is compatible.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Schema = Mapping[str, Any]
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def breaking_changes(published: Schema, current: Schema) -> list[str]:
    return list(_compare(published, current, published, current, "$"))


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        reference = node["$ref"]
        assert reference.startswith("#/$defs/"), f"only local $defs refs: {reference}"
        node = root["$defs"][reference.removeprefix("#/$defs/")]
    return node


def _branches(node: Schema, root: Schema) -> list[Schema]:
    """The alternatives a node allows, each resolved (the node itself when it has none)."""
    node = _resolve(node, root)
    alternatives = node.get("anyOf") or node.get("oneOf")
    if alternatives is None:
        return [node]
    return [branch for item in alternatives for branch in _branches(item, root)]


def _types_of(node: Schema) -> set[str]:
    if "const" in node:
        return {JSON_TYPES[type(node["const"])]}
    if "enum" in node:
        return {JSON_TYPES[type(value)] for value in node["enum"]}
    declared = node.get("type")
    if declared is None:
        return {"any"}
    return {declared} if isinstance(declared, str) else set(declared)


def _types(node: Schema, root: Schema) -> set[str]:
    return {kind for branch in _branches(node, root) for kind in _types_of(branch)}


def _of_type(node: Schema, root: Schema, kind: str) -> Schema | None:
    return next((b for b in _branches(node, root) if kind in _types_of(b)), None)


def _compare(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str
) -> Iterator[str]:
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if old_types != new_types:
        yield f"{path}: type {sorted(old_types)} became {sorted(new_types)}"
        return
    old_object, new_object = _of_type(old, old_root, "object"), _of_type(new, new_root, "object")
    if old_object is not None and new_object is not None:
        yield from _compare_objects(old_object, new_object, old_root, new_root, path)
    old_array, new_array = _of_type(old, old_root, "array"), _of_type(new, new_root, "array")
    if old_array is not None and new_array is not None and "items" in old_array:
        if "items" not in new_array:
            yield f"{path}[]: items no longer described"
        else:
            yield from _compare(
                old_array["items"], new_array["items"], old_root, new_root, f"{path}[]"
            )


def _compare_objects(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str
) -> Iterator[str]:
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_properties.items():
        where = f"{path}.{name}"
        if name not in new_properties:
            yield f"{where}: removed"
            continue
        yield from _compare(schema, new_properties[name], old_root, new_root, where)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required & set(old_properties)):
        yield f"{path}.{name}: optional, now required"
    old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_extra, Mapping):
        if not isinstance(new_extra, Mapping):
            yield f"{path}.*: additional properties no longer described"
        else:
            yield from _compare(old_extra, new_extra, old_root, new_root, f"{path}.*")
