"""Sources declared by configuration or on the command line (for example Bitbucket).

Their records pass through as they are: the engine adds `event.source`, `event.id` and
`@timestamp` so that Sigma rules written for that product run on the raw fields.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from detector.events import Event
from detector.normalize.base import NormalizationError, Normalizer, content_id, dig, text
from detector.timestamps import TimestampError, from_any

#: Where a declared source's time is looked for when the declaration names no field.
DEFAULT_TIME_FIELDS = ("@timestamp", "timestamp", "time", "date", "created_at", "eventTime")


class DeclaredSource(BaseModel):
    """How to read a JSON audit source the engine has no normalizer for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The event.source value.")
    product: str | None = Field(default=None, description="Sigma product; defaults to name.")
    service: str | None = Field(default="audit", description="Sigma service.")
    time_field: str | None = Field(
        default=None, description="Dotted path of the event time; searched when absent."
    )
    id_field: str | None = Field(
        default=None, description="Dotted path of the source's own event id, if it has one."
    )


class DeclaredNormalizer(Normalizer):
    """Pass-through normalizer for a `DeclaredSource`; never claims records by itself."""

    def __init__(self, declaration: DeclaredSource, default_tz: tzinfo | None = None) -> None:
        self.declaration = declaration
        self.default_tz = default_tz
        self.name = declaration.name  # type: ignore[misc]
        self.product = declaration.product or declaration.name  # type: ignore[misc]
        self.service = declaration.service  # type: ignore[misc]

    def matches(self, record: dict[str, Any]) -> bool:
        return False

    def normalize(self, record: dict[str, Any]) -> Event:
        fields = (
            (self.declaration.time_field,) if self.declaration.time_field else DEFAULT_TIME_FIELDS
        )
        value = None
        for field in fields:
            value = dig(record, *field.split("."))
            if value is not None:
                break
        if value is None:
            raise NormalizationError(f"no time field ({', '.join(fields)}) in record")
        try:
            timestamp = from_any(value, self.default_tz)
        except TimestampError as exc:
            raise NormalizationError(f"bad time: {exc}") from exc
        own_id = (
            text(dig(record, *self.declaration.id_field.split(".")))
            if self.declaration.id_field
            else None
        )
        return Event(
            timestamp=timestamp,
            event_id=own_id or content_id(record),
            event_source=self.name,
            raw=record,
        )
