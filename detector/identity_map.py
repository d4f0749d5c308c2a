"""The identity map at work: `(event.source, user.name)` to `user.identity`, on every event.

Compiled with the hot path; `detector.identity` reads and validates the map file (the
format and the rules it holds a map to are described there) and builds this from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from detector.events import Event
from detector.memo import remember

WILDCARD: Final = "*"
#: user names whose identity a source remembers
REMEMBERED: Final = 4096

#: canonical name -> event.source -> that source's user names and `*` patterns
Identities = Mapping[str, Mapping[str, Sequence[str]]]


class IdentityMap:
    """Resolves `(event.source, user.name)` to the canonical identity. Empty: every name
    is its own identity. Built from a validated map (`detector.identity`): one identity
    per name."""

    def __init__(self, identities: Identities | None = None) -> None:
        identities = identities or {}
        self._canonical = frozenset([name.casefold() for name in identities])
        self._exact: dict[tuple[str, str], str] = {}
        grouped: dict[str, list[tuple[str, str]]] = {}
        for source, canonical, name in claims(identities):
            if WILDCARD in name:
                grouped.setdefault(source, []).append((pattern_regex(name), canonical))
            else:
                self._exact[(source, name)] = canonical
        # One alternation per source; patterns never overlap, so the group that matched
        # (`lastindex`) names the only identity.
        self._patterns = {
            source: (
                re.compile("|".join([f"({regex})" for regex, _ in entries])),
                [canonical for _, canonical in entries],
            )
            for source, entries in grouped.items()
        }
        self._resolved: dict[str, dict[str, str]] = {}

    def __len__(self) -> int:
        """How many canonical identities the map has."""
        return len(self._canonical)

    def resolve(self, source: str, name: str | None) -> str | None:
        """The canonical identity of `name` in `source`; unmapped: `name` itself (qualified
        by the source when it equals a canonical name); None without a name.

        Remembered per source (up to `REMEMBERED` names, then it starts over): a stream
        repeats its users, and folding the case, the key and the patterns cost a
        thousand instructions an event."""
        if not name:
            return None
        known = self._resolved.get(source)
        if known is None:
            known = self._resolved[source] = {}
        identity = known.get(name)
        if identity is None:
            identity = remember(known, name, self._resolve(source, name), REMEMBERED)
        return identity

    def _resolve(self, source: str, name: str) -> str:
        folded = name.casefold()
        canonical = self._exact.get((source, folded))
        if canonical is not None:
            return canonical
        patterns = self._patterns.get(source)
        if patterns is not None:
            found = patterns[0].fullmatch(folded)
            if found is not None and found.lastindex is not None:
                return patterns[1][found.lastindex - 1]
        return f"{source}:{name}" if folded in self._canonical else name

    def apply(self, event: Event) -> Event:
        """`event`, just made by a normalizer, with its `user.identity` set in place (none
        when it has no user.name). In place, on an event nobody holds yet: a copy of the
        frozen model would cost a seventh of normalizing the record. (The fields are read
        from the model's dict: each attribute read of a pydantic model goes through its
        `__getattr__` hook.)"""
        values = event.__dict__
        name = values["user_name"]
        # without canonical names, the map makes every name its own identity: nothing to
        # resolve
        identity = self.resolve(values["event_source"], name) if self._canonical else (name or None)
        if identity is not None:
            values["user_identity"] = identity
            event.__pydantic_fields_set__.add("user_identity")
        return event


def claims(identities: Identities) -> Iterator[tuple[str, str, str]]:
    """(source, canonical name, case-folded user name or pattern), in file order."""
    for canonical, sources in identities.items():
        for source, names in sources.items():
            for name in names:
                yield source, canonical, name.casefold()


def pattern_regex(pattern: str) -> str:
    """A case-folded `*` pattern as a regular expression (without groups)."""
    return "(?s:" + ".*".join([re.escape(part) for part in pattern.split(WILDCARD)]) + ")"
