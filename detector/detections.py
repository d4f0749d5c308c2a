"""The detection: what the engine says when a rule fires, in a stable, versioned shape.

The id is deterministic (a hash of the rule and the matching event, or of the rule,
group and window for correlations), so a replay or a redelivery never makes a second
alert for the same thing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from detector.detection_json import detection_json
from detector.timestamps import format_timestamp

SCHEMA_VERSION: Literal["1.0"] = "1.0"
SCHEMA_ID = "https://detector.invalid/schemas/detection.schema.json"
Level = Literal["informational", "low", "medium", "high", "critical"]


class RuleRef(BaseModel):
    """The rule that fired."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    level: Level | None = None
    tags: list[str] = Field(default_factory=list, description="Sigma tags, ATT&CK ids included.")


class Evidence(BaseModel):
    """One event that made the detection, summarised."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str
    timestamp: datetime = Field(alias="@timestamp")
    source: str
    action: str | None = None
    actor: str | None = None

    @field_serializer("timestamp")
    def _serialize_timestamp(self, value: datetime) -> str:
        return format_timestamp(value)


class Window(BaseModel):
    """The event-time span a correlation looked at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime

    @field_serializer("start", "end")
    def _serialize_time(self, value: datetime) -> str:
        return format_timestamp(value)


class Detection(BaseModel):
    """A rule that fired, with the evidence, ready for sinks and responders."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        title="Detection",
        json_schema_extra={"$id": SCHEMA_ID},
    )

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    id: str = Field(description="Deterministic: the same input always gives the same id.")
    timestamp: datetime = Field(alias="@timestamp", description="Event time of the detection.")
    rule: RuleRef
    group: dict[str, str] | None = Field(default=None, description="Correlation group-by values.")
    window: Window | None = None
    evidence: list[Evidence]
    message: str

    @field_serializer("timestamp")
    def _serialize_timestamp(self, value: datetime) -> str:
        return format_timestamp(value)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)

    def to_json(self) -> bytes:
        """The JSON to write out; a token quoted in a message or a name is redacted
        (`detection_json`, compiled: every detection of a replay is written)."""
        return detection_json(self.__dict__)


def detection_id(*parts: str) -> str:
    """SHA-256 over the parts, unambiguously joined."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8"))
    return digest.hexdigest()[:32]


def json_schema() -> dict[str, Any]:
    """The JSON Schema committed as `schemas/detection.schema.json`."""
    schema = Detection.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
