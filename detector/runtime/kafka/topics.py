"""The topics of the Kafka runtime, named after the stage that reads them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RAW_PREFIX = "audit.raw."
#: the Faust table of the correlators' state
STATE_TABLE = "correlation-state"


def changelog_topic(app_id: str) -> str:
    """The topic Faust keeps the correlation state table in (named by Faust's rule)."""
    return f"{app_id}-{STATE_TABLE}-changelog"


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Every topic name, with the configured prefix."""

    prefix: str = ""

    def raw(self, source: str) -> str:
        """Raw records of one source, as the source wrote them."""
        return f"{self.prefix}{RAW_PREFIX}{source}"

    def source_of(self, topic: str) -> str:
        """The source a raw topic carries."""
        return topic.removeprefix(self.prefix).removeprefix(RAW_PREFIX)

    def raws(self, sources: Iterable[str]) -> list[str]:
        return [self.raw(source) for source in sources]

    @property
    def events(self) -> str:
        """Normalized events, for subscribers."""
        return f"{self.prefix}audit.events"

    @property
    def hits(self) -> str:
        """Correlation hits, keyed so that each correlation group lives on one partition."""
        return f"{self.prefix}detector.hits"

    @property
    def detections(self) -> str:
        return f"{self.prefix}detector.detections"

    @property
    def actions(self) -> str:
        """The responder's audit trail (`schemas/action.schema.json`), keyed by detection id."""
        return f"{self.prefix}detector.actions"

    @property
    def deadletter(self) -> str:
        """Records that could not be used, with the reason."""
        return f"{self.prefix}detector.deadletter"
