"""Dead letters: records that could not be parsed or normalized, kept with the reason.

Nothing is dropped silently: the original bytes travel with the reason so that a
record can be fixed and fed again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, final

import orjson

from detector.sources.records import RawRecord


@final  # the hot path tests `type(result) is DeadLetter`: a negative `isinstance` on a
# Python class looks up `__class__` on the other object, an event's through pydantic
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the pipeline could not use, and why."""

    reason: str
    origin: str
    data: bytes
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        try:
            original, encoding = self.data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            original, encoding = base64.b64encode(self.data).decode("ascii"), "base64"
        result: dict[str, Any] = {"reason": self.reason, "origin": self.origin}
        if self.source is not None:
            result["source"] = self.source
        result["encoding"] = encoding
        result["original"] = original
        return result

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def of_failure(cls, raw: RawRecord, exc: Exception) -> DeadLetter:
        """A record whose processing failed with `exc`: the error is the reason."""
        return cls(f"internal error: {type(exc).__name__}: {exc}", raw.origin, raw.data, raw.source)


class LetterWriter(Protocol):
    """Where dead letters go: a `DeadLetterFile`, or what holds them back for one."""

    def write(self, letter: DeadLetter) -> None: ...


class DeadLetterFile:
    """Appends dead letters as JSON lines; the file is created on the first one only.
    `observer` sees each letter written (a report counts the reasons)."""

    def __init__(self, path: Path, observer: Callable[[DeadLetter], None] | None = None) -> None:
        self.path = path
        self.count = 0
        self.observer = observer
        self._handle: IO[bytes] | None = None

    def write(self, letter: DeadLetter) -> None:
        if self.observer is not None:
            self.observer(letter)
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
        self._handle.write(letter.to_json() + b"\n")
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> DeadLetterFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
