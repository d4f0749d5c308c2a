"""The loaded rules as Elasticsearch and OpenSearch queries, through the pySigma backends
that sigma-cli uses (ES|QL, EQL, Lucene; OpenSearch's Lucene).

The queries target the documents this engine writes to the events data stream
(`search.templates`): a rule of a source's own logsource (`product: github, service:
audit`) reads the vendor's record, which the documents keep under `raw`, so its fields
get the `raw.` prefix and the query gains `event.source:<source>`; a `product: cicd`
rule reads the normalized fields, which the documents carry under the same names (and
`service` names the `event.source`). Correlation rules are converted where the backend
can (ES|QL and EQL for some types); a rule a backend cannot express is a per-rule
failure with the backend's reason, not an error of the export.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sigma.backends.elasticsearch.elasticsearch_eql import EqlBackend
from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.backends.opensearch.opensearch import OpensearchLuceneBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    AddFieldnamePrefixTransformation,
    SetStateTransformation,
)
from sigma.rule import SigmaRule

from detector.normalize.base import SourceRoute
from detector.rules.loader import LoadResult
from detector.search.templates import EVENTS_STREAM

Target = Literal["esql", "eql", "lucene", "opensearch"]
TARGETS: dict[str, Any] = {
    "esql": ESQLBackend,
    "eql": EqlBackend,
    "lucene": LuceneBackend,
    "opensearch": OpensearchLuceneBackend,
}
#: the normalized event's logsource
CICD = "cicd"


@dataclass(frozen=True)
class Exported:
    """One rule's query, or why the backend could not write it."""

    rule_id: str | None
    title: str
    queries: list[str]
    error: str | None = None


def pipeline(routes: Mapping[str, SourceRoute], index: str = EVENTS_STREAM) -> ProcessingPipeline:
    """Field names of Sigma rules → fields of the engine's event documents in `index`
    (the `FROM` of ES|QL queries)."""
    items = [ProcessingItem(SetStateTransformation("index", index), identifier="detector_index")]
    for source, route in sorted(routes.items()):
        items.append(
            ProcessingItem(
                AddFieldnamePrefixTransformation("raw."),
                rule_conditions=[LogsourceCondition(product=route.product, service=route.service)],
                identifier=f"detector_raw_{source}",
            )
        )
        items.append(
            ProcessingItem(
                AddConditionTransformation({"event.source": source}),
                rule_conditions=[LogsourceCondition(product=route.product, service=route.service)],
                identifier=f"detector_source_{source}",
            )
        )
    for source in sorted(routes):
        items.append(
            ProcessingItem(
                AddConditionTransformation({"event.source": source}),
                rule_conditions=[LogsourceCondition(product=CICD, service=source)],
                identifier=f"detector_cicd_{source}",
            )
        )
    return ProcessingPipeline(name="detector event documents", priority=20, items=items)


def export(
    loaded: LoadResult,
    routes: Mapping[str, SourceRoute],
    target: str,
    index: str = EVENTS_STREAM,
) -> list[Exported]:
    """Every rule and correlation of `loaded` as `target` queries over `index`, in load
    order."""
    backend_class = TARGETS[target]
    mapping = pipeline(routes, index)
    results = []
    for compiled in loaded.rules:
        rule = copy.deepcopy(compiled.rule)  # the pipeline changes the rules it processes
        results.append(_convert(backend_class(mapping), rule, SigmaCollection([rule])))
    if loaded.correlations:
        # Resolves every reference (ids, names, correlations of correlations) once.
        SigmaCollection([*(compiled.rule for compiled in loaded.rules), *loaded.correlations])
    for correlation in loaded.correlations:
        *referenced, own = copy.deepcopy([*_referenced(correlation), correlation])
        collection = SigmaCollection([*referenced, own])
        results.append(_convert(backend_class(mapping), own, collection))
    return results


def _referenced(correlation: SigmaCorrelationRule) -> list[SigmaRule | SigmaCorrelationRule]:
    """The rules `correlation` references, directly or through other correlations."""
    found: list[SigmaRule | SigmaCorrelationRule] = []
    for reference in correlation.rules or []:
        rule = reference.rule
        if isinstance(rule, SigmaCorrelationRule):
            found.extend(_referenced(rule))
        if rule not in found:
            found.append(rule)
    return found


def _convert(
    backend: Any, rule: SigmaRule | SigmaCorrelationRule, collection: SigmaCollection
) -> Exported:
    title, rule_id = rule.title, str(rule.id) if rule.id else None
    try:
        if isinstance(rule, SigmaCorrelationRule):
            queries = backend.convert(collection)
        else:
            queries = backend.convert_rule(rule)
    except (SigmaError, NotImplementedError) as exc:
        return Exported(rule_id, title, [], f"{type(exc).__name__}: {exc}")
    return Exported(rule_id, title, [str(query) for query in queries])
