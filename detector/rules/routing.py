"""Which rules see which events: logsource routing and the rule index.

Routing follows the design contract. A rule whose logsource names a product (and
optionally a service) matches the *raw* record of the sources with that Sigma
logsource, under the vendor's own field names, so SigmaHQ rules run unchanged. A rule
with `product: cicd` matches the *normalized* event; its optional `service` names one
`event.source`. A rule never sees events of another logsource, and rules with a
`category` other than `application` (SigmaHQ's category for application logs) match no
audit source.

The index (`index`) narrows each route further: a record is checked only against the
rules whose necessary condition it meets ("`verb` is create or patch", "`user.username`
is present"), which gives the same rules, in the same order, as checking every rule of
the route.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from detector.event_record import event_record
from detector.events import FIELD_ATTRIBUTES, RECORD_ATTRIBUTES, Event
from detector.normalize.base import SourceRoute
from detector.rules.compiled import CompiledRule
from detector.rules.index import RuleIndex
from detector.timestamps import format_timestamp

#: The Sigma product of rules that match normalized events.
NORMALIZED_PRODUCT: Final = "cicd"


class RuleRouter:
    """Finds the rules an event must be checked against, and checks them."""

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        routes: Mapping[str, SourceRoute],
        *,
        indexed: bool = True,
    ) -> None:
        self.rules = list(rules)
        self.routes = dict(routes)
        self.raw: dict[str, RuleIndex] = {}
        self.normalized: dict[str, RuleIndex] = {}
        #: sources with a normalized-event rule that reads `@timestamp`
        self._timestamp_read: set[str] = set()
        #: per source, (JSON key, attribute) of the fields its normalized-event rules can
        #: read: the record they are matched on holds only those
        self._record_fields: dict[str, list[tuple[str, str]]] = {}
        for source, route in self.routes.items():
            raw = [r for r in self.rules if _serves(r, route)]
            normalized = [r for r in self.rules if _serves_normalized(r, source)]
            self.raw[source] = RuleIndex(raw, indexed)
            self.normalized[source] = RuleIndex(normalized, indexed, _ATTRIBUTES)
            if any(_reads_timestamp(rule) for rule in normalized):
                self._timestamp_read.add(source)
            self._record_fields[source] = _read_fields(normalized)
        routed = {
            id(r) for index in (*self.raw.values(), *self.normalized.values()) for r in index.rules
        }
        #: rules that no known source feeds (a Windows rule, a typo in a logsource)
        self.unrouted = [r for r in self.rules if id(r) not in routed]

    def match(self, event: Event) -> list[CompiledRule]:
        """The rules that match `event`, raw-record rules first, each once."""
        values = event.__dict__  # one lookup through the pydantic model's attribute hook
        source, raw = values["event_source"], values["raw"]
        raw_index = self.raw.get(source)
        if raw_index is not None and raw_index.rules and isinstance(raw, dict):
            matched = [r for r in raw_index.candidates(raw) if r.matches(raw)]
        else:
            matched = []
        index = self.normalized.get(source)
        if index is None or not index.rules:
            return matched
        if index.reads_attributes:
            # every field by attribute name, None where absent: the model's own dict
            candidates = index.candidates(values)
            if not candidates:  # most events: no record to make
                return matched
            record = self._record(values, source)
        else:
            record = self._record(values, source)
            candidates = index.candidates(record)
        matched += [r for r in candidates if r.matches(record)]
        return matched

    def _record(self, values: dict[str, Any], source: str) -> dict[str, Any]:
        """`Event.to_record` of the event's attribute `values` for the normalized-event
        rules of `source`: only the fields they can read (the pack's GitHub rules read 7
        of 22), and `@timestamp` only if one of them reads it (formatting it is a
        third of the cost)."""
        moment = format_timestamp(values["timestamp"]) if source in self._timestamp_read else None
        return event_record(values, self._record_fields[source], moment)

    def index_fields(self) -> dict[str, tuple[str, ...]]:
        """The fields the index reads per record of each raw route (for the benchmark)."""
        return {source: index.fields for source, index in self.raw.items()}


#: normalized field -> the event's attribute, for picking candidates without the record
#: (`@timestamp` is formatted into the record: rules reading it need the record)
_ATTRIBUTES: Final = {key: name for key, name in FIELD_ATTRIBUTES.items() if key != "@timestamp"}

#: Categories every audit source satisfies: SigmaHQ files audit rules under `application`.
_AUDIT_CATEGORIES: Final = (None, "application")


def _serves(rule: CompiledRule, route: SourceRoute) -> bool:
    logsource = rule.logsource
    return (
        logsource.category in _AUDIT_CATEGORIES
        and logsource.product == route.product
        and logsource.service in (None, route.service)
    )


def _read_fields(rules: list[CompiledRule]) -> list[tuple[str, str]]:
    """(JSON key, attribute) of the event fields `rules` can read, in `to_record` order. A
    field name reads the key it equals or continues (`raw.actor` reads `raw`): a record
    has no other way to reach a key (`detector.rules.fields`). A keyword search reads
    every field."""
    if any(rule.keyword_search for rule in rules):
        return RECORD_ATTRIBUTES
    names = {name for rule in rules for name in rule.fields}
    return [
        (key, attribute)
        for key, attribute in RECORD_ATTRIBUTES
        if any(name == key or name.startswith(key + ".") for name in names)
    ]


def _reads_timestamp(rule: CompiledRule) -> bool:
    """Whether the rule can read `@timestamp` (by name, or in a keyword search)."""
    return rule.keyword_search or any(name.startswith("@timestamp") for name in rule.fields)


def _serves_normalized(rule: CompiledRule, source: str) -> bool:
    logsource = rule.logsource
    return (
        logsource.category in _AUDIT_CATEGORIES
        and logsource.product == NORMALIZED_PRODUCT
        and logsource.service in (None, source)
    )
