"""The sink interface: one delivery attempt of one detection, and what came of it.

A sink only knows how to talk to its endpoint. Retrying, deadlines, the outbox and
dead letters belong to the delivery worker, so every sink gets them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from detector.detections import Detection
from detector.redact import REDACTED, redact_text


@dataclass(frozen=True, slots=True)
class Delivered:
    """The endpoint took the detection."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A failure that may pass (network, timeout, 408, 429, 5xx); `after`: the endpoint's
    `Retry-After`, in seconds."""

    reason: str
    after: float | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The endpoint refused this detection for good (a 4xx): sending it again cannot help."""

    reason: str


Outcome = Delivered | Retry | Rejected
DELIVERED = Delivered()


class Sink(ABC):
    """An alert endpoint. `secrets` are the strings that must never reach a log or a file.

    `batch_size` is how many pending detections one attempt may take: an endpoint with a
    bulk API (Elasticsearch) takes many per request and answers for each one."""

    batch_size = 1

    def __init__(self, name: str, secrets: Sequence[str] = ()) -> None:
        self.name = name
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    @abstractmethod
    async def send(self, detection: Detection) -> Outcome:
        """One attempt; network trouble is an outcome, not an exception."""

    async def send_batch(self, detections: Sequence[Detection]) -> list[Outcome]:
        """One attempt for up to `batch_size` detections: an outcome for each, in order."""
        return [await self.send(detection) for detection in detections]

    @abstractmethod
    async def close(self) -> None:
        """Release connections and files."""

    def scrub(self, text: str) -> str:
        """`text` (an error, a response body) safe to log: this sink's secrets masked."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact_text(text)


def is_retryable(status: int) -> bool:
    """Whether an HTTP answer with `status` is worth another try (a redirect, a timeout,
    throttling or a server error), not a refusal of the detection itself."""
    return status in (408, 429) or status >= 500 or 300 <= status < 400
