"""The JSON Schemas of the contracts, as committed under `schemas/`."""

from __future__ import annotations

import orjson

from detector.detections import json_schema as detection_schema
from detector.events import json_schema as event_schema
from detector.respond.audit import json_schema as action_schema
from detector.respond.playbooks import json_schema as playbook_schema


def documents() -> dict[str, bytes]:
    """File name → exact bytes of each exported schema (the committed files must equal these)."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return {
        "event.schema.json": orjson.dumps(event_schema(), option=options) + b"\n",
        "detection.schema.json": orjson.dumps(detection_schema(), option=options) + b"\n",
        "playbook.schema.json": orjson.dumps(playbook_schema(), option=options) + b"\n",
        "action.schema.json": orjson.dumps(action_schema(), option=options) + b"\n",
    }
