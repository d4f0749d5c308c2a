"""A detection's JSON, made by compiled code from its models' values.

Every detection a replay or the service makes is written at least once; walking the
pydantic models in interpreted code cost more than making the detection. The models'
field values are read from their `__dict__`, one look-up each instead of one attribute
read through pydantic's hook each.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from detector.memo import remember
from detector.redact import redact, redact_text
from detector.timestamps import format_timestamp

_DUMPS: Final = orjson.dumps

#: each rule's part of the JSON, by the rule's identity (the rule is kept, so its id is
#: not reused): a replay writes thousands of detections of a few hundred rules
_RULE_SHAPES: Final[dict[int, tuple[object, dict[str, Any]]]] = {}
_RULE_SHAPES_LIMIT: Final = 4096


def detection_json(values: dict[str, Any]) -> bytes:
    """The JSON of the detection whose field values (`Detection.__dict__`) are `values`,
    a token quoted in a message or a name redacted.

    The same bytes as `orjson.dumps(redact(detection.to_dict()))`, built field by field.
    None of the fixed keys is a secret's key name, so only values are redacted; the
    group's keys come from rules and go through `redact`.
    """
    shape: dict[str, Any] = {
        "schema_version": values["schema_version"],
        "id": redact_text(values["id"]),
        "@timestamp": format_timestamp(values["timestamp"]),
        "rule": _rule_shape(values["rule"]),
    }
    group = values["group"]
    if group is not None:
        shape["group"] = redact(group)
    window = values["window"]
    if window is not None:
        span = window.__dict__
        shape["window"] = {
            "start": format_timestamp(span["start"]),
            "end": format_timestamp(span["end"]),
        }
    shape["evidence"] = [_evidence_shape(evidence.__dict__) for evidence in values["evidence"]]
    shape["message"] = redact_text(values["message"])
    return _DUMPS(shape)


def _evidence_shape(values: dict[str, Any]) -> dict[str, Any]:
    """An evidence's object (`Evidence.__dict__` is `values`), redacted."""
    shape = {
        "id": redact_text(values["id"]),
        "@timestamp": format_timestamp(values["timestamp"]),
        "source": redact_text(values["source"]),
    }
    action = values["action"]
    if action is not None:
        shape["action"] = redact_text(action)
    actor = values["actor"]
    if actor is not None:
        shape["actor"] = redact_text(actor)
    return shape


def _rule_shape(rule: Any) -> dict[str, Any]:
    """`rule`'s (a `RuleRef`'s) object in a detection's JSON, redacted; shared, so never
    changed."""
    known = _RULE_SHAPES.get(id(rule))
    if known is not None:
        return known[1]
    values = rule.__dict__
    shape: dict[str, Any] = {"id": redact_text(values["id"]), "title": redact_text(values["title"])}
    level = values["level"]
    if level is not None:
        shape["level"] = level
    shape["tags"] = [redact_text(tag) for tag in values["tags"]]
    remember(_RULE_SHAPES, id(rule), (rule, shape), _RULE_SHAPES_LIMIT)
    return shape
