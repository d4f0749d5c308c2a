"""The audit trail: one append-only JSON line per thing that happened to an action.

Every action a playbook plans leaves records, written before and after anything runs:
`planned` (dry run; in a replay with the mode it would have run in), `pending` (waits
for a person), `approved`, `rejected`, `expired`, `refused` (a protected target),
`running` (the call starts), `executed` (done and verified), `failed` (with what it
changed first, if anything, which undo can reverse), `undone`.
Parameters are redacted: a credential being revoked never reaches the trail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_serializer

from detector.redact import redact, redact_text
from detector.respond.actions.base import Target
from detector.respond.playbooks import Mode
from detector.respond.state import StoredAction
from detector.sinks.durable import AppendLog
from detector.timestamps import format_timestamp

Status = Literal[
    "planned",
    "pending",
    "approved",
    "rejected",
    "expired",
    "refused",
    "running",
    "executed",
    "failed",
    "undone",
]
SCHEMA_ID = "https://detector.invalid/schemas/action.schema.json"
#: who acts when no person does
ENGINE = "detector"


class ActionRecord(BaseModel):
    """One line of the audit trail."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", title="Action record", json_schema_extra={"$id": SCHEMA_ID}
    )

    schema_version: Literal["1.0"] = "1.0"
    id: str = Field(description="The action: the same for every record of it.")
    status: Status
    time: datetime = Field(description="When this record was written (UTC).")
    detection_id: str
    rule_id: str
    playbook: str
    step: int = Field(ge=0, description="Index of the action in the playbook.")
    action: str
    system: str
    mode: Mode
    would_run: Mode | None = Field(
        default=None, description="In a replay (dry responder): the mode it would have run in."
    )
    parameters: dict[str, JsonValue] = Field(description="Rendered parameters, redacted.")
    targets: list[Target] = Field(default_factory=list)
    actor: str = Field(description=f"Who did this: {ENGINE!r} or the person's name.")
    reason: str = Field(default="", description="Why: the error, the protection, the cap.")
    expires_at: datetime | None = Field(default=None, description="A pending approval's end.")
    outcome: Literal["done", "already_done", "partial"] | None = Field(
        default=None, description="partial: a failure that changed part of the target first."
    )
    undo_state: dict[str, JsonValue] | None = Field(
        default=None,
        description="On a partial failure: what it changed, which `actions undo` reverses.",
    )

    @field_serializer("time", "expires_at")
    def _serialize_time(self, value: datetime | None) -> str | None:
        return None if value is None else format_timestamp(value)

    def to_json(self) -> bytes:
        """The line to write: a token-shaped value anywhere (a target name) is masked."""
        return orjson.dumps(redact(self.model_dump(mode="json", exclude_none=True)))


def redacted_parameters(params: dict[str, Any]) -> dict[str, JsonValue]:
    masked: dict[str, JsonValue] = redact(params)
    return masked


def redacted_reason(text: str) -> str:
    return redact_text(text)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class AuditTrail:
    """Appends records to a JSON-lines file, each on disk before the call returns, and
    hands each to `publish` too when given (the Kafka runtime's `detector.actions`)."""

    def __init__(
        self, path: Path, publish: Callable[[ActionRecord, bytes], None] | None = None
    ) -> None:
        self._log = AppendLog(path)
        self._publish = publish

    def write(self, record: ActionRecord) -> None:
        line = record.to_json()
        self._log.append(line)
        if self._publish is not None:
            self._publish(record, line)

    def close(self) -> None:
        self._log.close()


def overview(row: StoredAction) -> dict[str, Any]:
    """A stored action as JSON, its parameters and targets redacted."""
    shape = {
        "id": row.id,
        "status": row.status,
        "detection_id": row.detection_id,
        "rule_id": row.rule_id,
        "playbook": row.playbook,
        "step": row.step,
        "action": row.action,
        "system": row.system,
        "mode": row.mode,
        "parameters": row.params,
        "targets": [target.model_dump() for target in row.targets],
        "created": format_timestamp(utc(row.created)),
        "updated": format_timestamp(utc(row.updated)),
        "expires_at": None if row.expires is None else format_timestamp(utc(row.expires)),
        "reason": row.reason,
    }
    redacted: dict[str, Any] = redact(shape)
    return redacted


def json_schema() -> dict[str, Any]:
    """The JSON Schema committed as `schemas/action.schema.json`."""
    schema = ActionRecord.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
