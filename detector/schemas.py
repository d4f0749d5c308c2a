"""The JSON Schemas of the contracts, as committed under `schemas/`."""

from __future__ import annotations

import orjson

from detector.detections import json_schema as detection_schema
from detector.events import json_schema as event_schema


def documents() -> dict[str, bytes]:
    """File name → exact bytes of each exported schema (the committed files must equal these)."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return {
        "event.schema.json": orjson.dumps(event_schema(), option=options) + b"\n",
        "detection.schema.json": orjson.dumps(detection_schema(), option=options) + b"\n",
    }
