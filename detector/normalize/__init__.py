"""Normalization: raw records in, normalized events or dead letters out.

`SourceRegistry` knows the normalizers and detects the source of a record;
`NormalizeStage` decodes one raw record (JSON or a text line), splits envelopes,
normalizes, and sets `user.identity` from the identity map. It has no I/O, so every
runtime wires the same object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson
from mypy_extensions import mypyc_attr

from detector.deadletter import DeadLetter
from detector.events import Event
from detector.identity_map import IdentityMap
from detector.normalize.base import NormalizationError, Normalizer, SourceRoute
from detector.sources.records import RawRecord

#: How many keys of an unrecognised record its dead-letter reason names.
_KEYS_IN_REASON: Final = 8
#: orjson's parser and its error as Final names: compiled, C statics, where `orjson.loads`
#: is a look-up of the module's attribute for every record
_LOADS: Final = orjson.loads
_JSON_ERROR: Final = orjson.JSONDecodeError


# A compiled class cannot derive from KeyError; this one stays a Python class.
@mypyc_attr(native_class=False)
class UnknownSourceError(KeyError):
    """A source name that is neither built in nor declared."""


class SourceRegistry:
    """The normalizers in detection order (most specific first) and the declared sources."""

    def __init__(self, detected: Sequence[Normalizer], declared: Iterable[Normalizer] = ()) -> None:
        self.detected = list(detected)
        self.by_name: dict[str, Normalizer] = {n.name: n for n in self.detected}
        #: the detected sources that have envelopes (the others' `unwrap` is always None)
        self.unwrapping = [n for n in self.detected if type(n).unwrap is not Normalizer.unwrap]
        for normalizer in declared:
            self.by_name[normalizer.name] = normalizer

    @property
    def names(self) -> list[str]:
        return sorted(self.by_name)

    def routes(self) -> dict[str, SourceRoute]:
        """Each source's Sigma logsource, for routing rules to raw records."""
        return {name: SourceRoute(n.product, n.service) for name, n in self.by_name.items()}

    def get(self, name: str) -> Normalizer:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(self.names)
            raise UnknownSourceError(f"unknown source {name!r} (known: {known})") from None

    def detect(self, record: dict[str, Any]) -> Normalizer | None:
        for normalizer in self.detected:
            if normalizer.matches(record):
                return normalizer
        return None


class NormalizeStage:
    """Raw record → events and dead letters. Never raises on bad input.

    Each event gets its `user.identity` from `identities` (default: an empty map, where
    every name is its own identity), so correlation rules can always group on it.
    """

    def __init__(
        self,
        registry: SourceRegistry,
        source: str | None = None,
        *,
        identities: IdentityMap | None = None,
    ) -> None:
        self.registry = registry
        self.forced = registry.get(source) if source else None
        self.identities = identities if identities is not None else IdentityMap()

    def process(self, raw: RawRecord) -> Iterator[Event | DeadLetter]:
        """One result per record in `raw` (an envelope holds several)."""
        return self._results(raw, _parsed(raw))

    def process_batch(self, raws: Sequence[RawRecord]) -> Iterator[Event | DeadLetter]:
        """`process` of each of `raws`, in order, all parsed before any is normalized: the
        parser's code stays in the processor's caches through the batch."""
        documents = [_parsed(raw) for raw in raws]
        for index, raw in enumerate(raws):
            yield from self._results(raw, documents[index])

    def _results(self, raw: RawRecord, document: Any) -> Iterator[Event | DeadLetter]:
        """`process` of `raw`, whose JSON is `document` (`_parsed`)."""
        if raw.error is not None:
            yield DeadLetter(raw.error, raw.origin, raw.data, raw.source)
            return
        forced = self.registry.get(raw.source) if raw.source else self.forced
        if isinstance(document, _JSON_ERROR):
            yield self._from_text(raw, forced, f"not JSON: {document}")
            return
        if isinstance(document, dict):
            candidates = [forced] if forced else self.registry.unwrapping
            for normalizer in candidates:
                try:
                    items = normalizer.unwrap(document)
                except Exception as exc:  # a normalizer bug must not stop the stream
                    yield _failed(normalizer, exc, raw.origin, raw.data)
                    return
                if items is not None:
                    for index, item in enumerate(items):
                        yield self._normalize(item, None, f"{raw.origin}#{index}", normalizer)
                    return
        yield self._normalize(document, raw.data, raw.origin, forced)

    def join_continuation_lines(self, records: Iterable[RawRecord]) -> Iterator[RawRecord]:
        """Multi-line text entries (a Jenkins script-console body) become one record.

        A text line that starts no record of any text source continues the text record
        before it in the same file. JSON lines are never joined.
        """
        pending: RawRecord | None = None
        for raw in records:
            if pending is not None:
                if _same_file(pending, raw) and self._text_record_start(raw) is False:
                    pending = RawRecord(
                        pending.data + b"\n" + raw.data, pending.origin, pending.source
                    )
                    continue
                yield pending
                pending = None
            if self._text_record_start(raw):
                pending = raw
            else:
                yield raw
        if pending is not None:
            yield pending

    def continuation_length(self, lines: bytes, source: str | None) -> int:
        """Bytes at the start of `lines` that `join_continuation_lines` would join to a
        record before them (continuation and blank lines): lines cut there into two
        blocks give, block by block, the records of the whole."""
        position = 0
        while position < len(lines):
            end = lines.find(b"\n", position) + 1 or len(lines)
            line = lines[position:end].rstrip(b"\r\n")
            if (
                line.strip(b" \t\r\n")
                and self._text_record_start(RawRecord(line, "", source)) is not False
            ):
                return position
            position = end
        return position

    def _text_record_start(self, raw: RawRecord) -> bool | None:
        """True if `raw` starts a text record, False if it is other text, None if not text."""
        if raw.error is not None or raw.data[:1] in (b"{", b"["):
            return None
        try:
            line = raw.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        forced = self.registry.get(raw.source) if raw.source else self.forced
        for normalizer in [forced] if forced else self.registry.detected:
            try:
                if normalizer.parse_text(line) is not None:
                    return True
            except Exception:  # reported when the record itself is processed
                return None
        return False

    def _from_text(
        self, raw: RawRecord, forced: Normalizer | None, reason: str
    ) -> Event | DeadLetter:
        try:
            line = raw.data.decode("utf-8")
        except UnicodeDecodeError:
            return DeadLetter("not JSON and not UTF-8 text", raw.origin, raw.data, raw.source)
        for normalizer in [forced] if forced else self.registry.detected:
            try:
                record = normalizer.parse_text(line)
            except Exception as exc:  # a normalizer bug must not stop the stream
                return _failed(normalizer, exc, raw.origin, raw.data)
            if record is not None:
                return self._normalize(record, raw.data, raw.origin, normalizer)
        return DeadLetter(reason, raw.origin, raw.data, raw.source)

    def _normalize(
        self, record: Any, data: bytes | None, origin: str, normalizer: Normalizer | None
    ) -> Event | DeadLetter:
        """`record` normalized, or its dead letter; `data` is the record as read, None for
        an envelope's item (its JSON is made only for a dead letter)."""
        source = normalizer.name if normalizer else None
        if not isinstance(record, dict):
            kind = "array" if isinstance(record, list) else type(record).__name__
            reason = f"record is a JSON {kind}, not an object"
            return DeadLetter(reason, origin, _original(record, data), source)
        if normalizer is None:
            normalizer = self.registry.detect(record)
            if normalizer is None:
                keys = ", ".join(sorted(map(str, record))[:_KEYS_IN_REASON]) or "none"
                reason = f"unknown source: no normalizer recognises keys {keys}"
                return DeadLetter(reason, origin, _original(record, data))
        try:
            event = normalizer.normalize(record)
        except NormalizationError as exc:
            reason = f"{normalizer.name}: {exc}"
            return DeadLetter(reason, origin, _original(record, data), normalizer.name)
        except Exception as exc:  # a normalizer bug must not stop the stream
            return _failed(normalizer, exc, origin, _original(record, data))
        return self.identities.apply(event)


def _parsed(raw: RawRecord) -> Any:
    """The JSON document of `raw`, its `JSONDecodeError` if it is not JSON (no document is
    an exception), None if it was not read."""
    if raw.error is not None:
        return None
    try:
        return _LOADS(raw.data)
    except _JSON_ERROR as exc:
        return exc


def _original(record: Any, data: bytes | None) -> bytes:
    """The record as read: `data`, or its JSON (an envelope's item)."""
    return data if data is not None else orjson.dumps(record)


def _same_file(first: RawRecord, second: RawRecord) -> bool:
    return first.origin.rpartition(":")[0] == second.origin.rpartition(":")[0]


def _failed(normalizer: Normalizer, exc: Exception, origin: str, data: bytes) -> DeadLetter:
    reason = f"{normalizer.name}: normalizer failed: {type(exc).__name__}: {exc}"
    return DeadLetter(reason, origin, data, normalizer.name)
