"""The index templates the engine writes into: data streams with ECS-compatible mappings.

Detections keep the field names of `schemas/detection.schema.json`; ECS names are added
as field aliases where ECS has one (`rule.name` for `rule.title`, `event.severity`-like
levels stay `rule.level`). Normalized events already use ECS names (`event.action`,
`user.name`, `source.ip`...), all keywords so they aggregate and match exactly; the
vendor's record under `raw` is one `flattened` field (OpenSearch: `flat_object`), so a
vendor's many and changing field names never grow or break the mapping, and its leaf
values stay searchable as keywords (`raw.action:repo.destroy`).
"""

from __future__ import annotations

from typing import Any

from detector.search.connection import Kind

DETECTIONS_STREAM = "detector-detections"
EVENTS_STREAM = "detector-events"
#: Above the engines' built-in templates (`logs-*-*` is 100), below a site's overrides.
PRIORITY = 200

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_DATE = {"type": "date_nanos"}


def _detection_mappings() -> dict[str, Any]:
    return {
        "dynamic": "false",
        "properties": {
            "@timestamp": _DATE,
            "schema_version": _KEYWORD,
            "id": _KEYWORD,
            "message": {"type": "text"},
            "rule": {
                "properties": {
                    "id": _KEYWORD,
                    "title": {"type": "text", "fields": {"keyword": _KEYWORD}},
                    "name": {"type": "alias", "path": "rule.title"},
                    "level": _KEYWORD,
                    "tags": _KEYWORD,
                }
            },
            "group": {"type": "object", "dynamic": "true"},
            "window": {"properties": {"start": _DATE, "end": _DATE}},
            "evidence": {
                "properties": {
                    "id": _KEYWORD,
                    "@timestamp": _DATE,
                    "source": _KEYWORD,
                    "action": _KEYWORD,
                    "actor": _KEYWORD,
                }
            },
        },
        "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": _KEYWORD}}],
    }


def _event_mappings(kind: Kind) -> dict[str, Any]:
    keyword_fields = [
        "event.id",
        "event.source",
        "event.action",
        "event.category",
        "event.type",
        "event.outcome",
        "user.name",
        "user.id",
        "user.type",
        "user.identity",
        "user_agent.original",
        "repository",
        "organization",
        "namespace",
        "resource.kind",
        "resource.name",
        "branch",
        "image.name",
        "image.digest",
        "token.id",
    ]
    properties: dict[str, Any] = {"@timestamp": _DATE, "source.ip": {"type": "ip"}}
    properties.update({name: _KEYWORD for name in keyword_fields})
    properties["raw"] = {"type": "flattened" if kind == "elasticsearch" else "flat_object"}
    return {"dynamic": "false", "properties": properties}


def template(stream: str, mappings: dict[str, Any]) -> dict[str, Any]:
    """The body of a composable index template making `stream` a data stream."""
    return {
        "index_patterns": [stream],
        "data_stream": {},
        "priority": PRIORITY,
        "template": {"mappings": mappings},
        "_meta": {"managed_by": "detector"},
    }


def detections_template(stream: str = DETECTIONS_STREAM) -> dict[str, Any]:
    return template(stream, _detection_mappings())


def events_template(kind: Kind, stream: str = EVENTS_STREAM) -> dict[str, Any]:
    return template(stream, _event_mappings(kind))
