"""The normalized event: one flat model for every audit-log source.

Field names follow the Elastic Common Schema where ECS has one; the dotted names are
the JSON keys (aliases), the Python attribute names are their snake_case spelling.
Values a source does not carry stay absent: nothing is invented.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from detector.event_record import event_record
from detector.redact import redact
from detector.timestamps import format_timestamp

UserType = Literal["human", "bot", "service_account", "token"]
Outcome = Literal["success", "failure", "unknown"]

SCHEMA_ID = "https://detector.invalid/schemas/event.schema.json"


class Event(BaseModel):
    """A normalized audit event. `raw` keeps the source record untouched."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={"$id": SCHEMA_ID},
        title="Normalized audit event",
    )

    timestamp: datetime = Field(
        alias="@timestamp", description="Event time in UTC, microsecond precision."
    )
    event_id: str = Field(
        alias="event.id",
        min_length=1,
        description="The source's own id, else a hash of the raw record.",
    )
    event_source: str = Field(
        alias="event.source",
        min_length=1,
        description="Source name: github, gitlab, kubernetes, github_actions, jenkins, "
        "registry, cloudtrail, or a declared source.",
    )
    event_action: str | None = Field(default=None, alias="event.action")
    event_category: list[str] | None = Field(default=None, alias="event.category")
    event_type: list[str] | None = Field(default=None, alias="event.type")
    event_outcome: Outcome | None = Field(default=None, alias="event.outcome")
    user_name: str | None = Field(default=None, alias="user.name")
    user_id: str | None = Field(default=None, alias="user.id")
    user_type: UserType | None = Field(default=None, alias="user.type")
    user_identity: str | None = Field(
        default=None,
        alias="user.identity",
        description="The canonical person or service behind user.name, from the identity "
        "map (the same across GitHub, GitLab, Kubernetes, Jenkins and cloud roles).",
    )
    source_ip: str | None = Field(default=None, alias="source.ip")
    user_agent: str | None = Field(default=None, alias="user_agent.original")
    repository: str | None = Field(default=None, alias="repository")
    organization: str | None = Field(default=None, alias="organization")
    namespace: str | None = Field(default=None, alias="namespace")
    resource_kind: str | None = Field(default=None, alias="resource.kind")
    resource_name: str | None = Field(default=None, alias="resource.name")
    branch: str | None = Field(default=None, alias="branch")
    image_name: str | None = Field(default=None, alias="image.name")
    image_digest: str | None = Field(default=None, alias="image.digest")
    token_id: str | None = Field(default=None, alias="token.id")
    raw: Any = Field(description="The original record, untouched.")

    @field_validator("timestamp")
    @classmethod
    def _utc_microseconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a time zone")
        return value.astimezone(UTC)

    @field_serializer("timestamp")
    def _serialize_timestamp(self, value: datetime) -> str:
        return format_timestamp(value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: dotted keys, absent values left out. Unredacted: for matching."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def to_record(self, *, timestamp: bool = True) -> dict[str, Any]:
        """`to_dict()` without copying nested values (lists, `raw`): for reading only, as
        rule matching does on every event. Without `timestamp`, `@timestamp` is left out
        (formatting it is a third of the cost, and few rules read it)."""
        return record_of_values(self.__dict__, timestamp=timestamp)

    def to_json(self) -> bytes:
        """The JSON to write out: secrets in `raw` are redacted."""
        shape = self.to_dict()
        shape["raw"] = redact(self.raw)
        return orjson.dumps(shape)


#: JSON key -> attribute of each field, in the order `to_dict()` writes them
FIELD_ATTRIBUTES = {info.alias or name: name for name, info in Event.model_fields.items()}
#: (JSON key, attribute) of the fields `to_record` copies as they are: all but the time
RECORD_ATTRIBUTES = [(key, name) for key, name in FIELD_ATTRIBUTES.items() if key != "@timestamp"]


def record_of_values(values: dict[str, Any], *, timestamp: bool = True) -> dict[str, Any]:
    """`Event.to_record` of an event's attribute values (`event.__dict__`)."""
    moment = format_timestamp(values["timestamp"]) if timestamp else None
    return event_record(values, RECORD_ATTRIBUTES, moment)


def json_schema() -> dict[str, Any]:
    """The JSON Schema committed as `schemas/event.schema.json`."""
    schema = Event.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
