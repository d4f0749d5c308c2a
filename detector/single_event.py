"""The detection of one (rule, event) match, made by compiled code: a replay makes one
for every match, from a validated rule and event, so without validating again.

The event's and the rule's values are read from their `__dict__`: one look-up each
instead of one attribute read through pydantic's hook each.
"""

from __future__ import annotations

from typing import Any, Final

from detector.construct import unvalidated
from detector.detections import SCHEMA_VERSION, Detection, Evidence, RuleRef, detection_id
from detector.events import Event

#: the models as Final names: compiled, C statics instead of module look-ups per match
_DETECTION: Final = Detection
_EVIDENCE: Final = Evidence
#: the fields set of every evidence, and of every single-event detection: one set shared
#: by all (pydantic only ever adds to one, and these models are frozen)
_EVIDENCE_FIELDS: Final = set(Evidence.model_fields)
_SINGLE_EVENT_FIELDS: Final = {"id", "timestamp", "rule", "evidence", "message"}


def single_event_detection(rule: RuleRef, event: Event) -> Detection:
    """The detection of `rule` matching `event`."""
    values = event.__dict__
    rule_values = rule.__dict__
    source = values["event_source"]
    event_id = values["event_id"]
    detection = {
        "schema_version": SCHEMA_VERSION,
        "id": detection_id(rule_values["id"], source, event_id),
        "timestamp": values["timestamp"],
        "rule": rule,
        "group": None,
        "window": None,
        "evidence": [_evidence(values)],
        "message": f"{rule_values['title']}: {describe(values)}",
    }
    return unvalidated(_DETECTION, detection, _SINGLE_EVENT_FIELDS)


def evidence_of(event: Event) -> Evidence:
    """The evidence of a (validated) event."""
    return _evidence(event.__dict__)


def _evidence(values: dict[str, Any]) -> Evidence:
    """The evidence of the event whose values (`Event.__dict__`) are `values`."""
    evidence = {
        "id": values["event_id"],
        "timestamp": values["timestamp"],
        "source": values["event_source"],
        "action": values["event_action"],
        "actor": values["user_name"],
    }
    return unvalidated(_EVIDENCE, evidence, _EVIDENCE_FIELDS)


def describe(values: dict[str, Any]) -> str:
    """`actor action target` in words, from whatever the event (whose values are
    `values`) carries."""
    namespace, resource = values["namespace"], values["resource_name"]
    target = (
        values["repository"]
        or values["image_name"]
        or (f"{namespace}/{resource}" if namespace and resource else None)
        or resource
        or values["organization"]
    )
    words = [values["user_name"] or "someone", values["event_action"] or "acted"]
    if target:
        words.append(f"on {target}")
    words.append(f"({values['event_source']})")
    return " ".join(words)
