"""Loading Sigma rule files: every rule that parses and compiles, and a reason for each
one that does not. A bad file or rule never stops the others, and nothing raises out.

Files are *.yml / *.yaml under the given files and directories, read in sorted order;
a file may hold several YAML documents (rule collections with `action: global` /
`repeat` / `reset` are handled by pySigma). Correlation rules are kept aside unresolved
(their references are resolved by the correlation engine); Sigma filters are compiled
and applied to the rules they name.

pySigma knows neither the correlation types this engine adds (`EXTENSION_CORRELATION_TYPES`)
nor conditions with several operators (ranges, which the specification allows). Such a
correlation is shown to pySigma in a standard shape, so that it validates everything else,
and `correlation_section` gives the section as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule, SigmaRuleBase
from sigma.rule.base import SigmaYAMLLoader

from detector.rules.cache import DocumentCache
from detector.rules.compiled import CompiledFilter, CompiledRule, compile_filter, compile_rule
from detector.rules.errors import RuleCompileError, error_reason
from detector.rules.placeholders import Placeholders

RULE_SUFFIXES = (".yml", ".yaml")
#: Correlation types beyond the Sigma specification, read by `detector.correlate`.
EXTENSION_CORRELATION_TYPES = frozenset({"first_seen", "absence"})
_CONDITION_OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
#: Custom attribute holding a correlation section pySigma was shown in standard shape.
_ORIGINAL_SECTION = "x-detector-correlation"
#: Rule test files (`<rule>.tests.yml`) live beside the rules and are not rules.
RULE_TEST_SUFFIXES = (".tests.yml", ".tests.yaml")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RuleError:
    """A file, rule or filter that could not be loaded, and why."""

    path: Path
    rule_id: str | None
    title: str | None
    #: io | yaml | sigma (pySigma rejected it) | compile | duplicate-id | internal
    kind: str
    reason: str

    def __str__(self) -> str:
        what = f" rule {self.rule_id}" if self.rule_id else ""
        return f"{self.path}{what}: {self.kind}: {self.reason}"


@dataclass
class LoadResult:
    """The outcome of `load_rules`."""

    rules: list[CompiledRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    filters: list[CompiledFilter] = field(default_factory=list)


def load_rules(
    paths: Iterable[str | Path],
    placeholders: Placeholders | None = None,
    *,
    cache: DocumentCache | Literal["environment"] | None = "environment",
) -> LoadResult:
    """Load, filter and compile every Sigma rule under `paths` (files or directories).

    Parsed YAML comes from `cache` where it has the file (`detector.rules.cache`; by
    default the one the environment configures, None for no cache).
    """
    documents_cache = DocumentCache.default() if cache == "environment" else cache
    result = LoadResult()
    rules: list[SigmaRule] = []
    seen_ids: dict[str, Path] = {}
    for path in _rule_files(paths, result.errors):
        for item in _parse_file(path, result.errors, documents_cache):
            if item.id is not None:
                first = seen_ids.get(str(item.id))
                if first is not None:
                    result.errors.append(
                        _error(path, item, "duplicate-id", f"rule id already loaded from {first}")
                    )
                    continue
                seen_ids[str(item.id)] = path
            if isinstance(item, SigmaCorrelationRule):
                result.correlations.append(item)
            elif isinstance(item, SigmaFilter):
                compiled = _guard(
                    path, item, result.errors, partial(compile_filter, item, placeholders)
                )
                if compiled is not None:
                    result.filters.append(compiled)
            elif isinstance(item, SigmaRule):
                rules.append(item)
    for rule in rules:
        path = rule.source.path if rule.source is not None else Path()
        compiled_rule = _guard(
            path, rule, result.errors, partial(compile_rule, rule, placeholders, result.filters)
        )
        if compiled_rule is not None:
            result.rules.append(compiled_rule)
    return result


def _guard(
    path: Path, item: SigmaRuleBase, errors: list[RuleError], compile_item: Callable[[], T]
) -> T | None:
    """compile_item(), or None with the failure recorded as a RuleError."""
    try:
        return compile_item()
    except RuleCompileError as exc:
        errors.append(_error(path, item, "compile", str(exc)))
    except SigmaError as exc:
        errors.append(_error(path, item, "sigma", error_reason(exc)))
    except Exception as exc:  # a bug here must not stop the other rules from loading
        errors.append(_error(path, item, "internal", f"{type(exc).__name__}: {exc}"))
    return None


def is_rule_test_file(path: Path) -> bool:
    return path.name.endswith(RULE_TEST_SUFFIXES)


def _rule_files(paths: Iterable[str | Path], errors: list[RuleError]) -> Iterator[Path]:
    """Rule files under `paths`, each once, directories walked in sorted order."""
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in RULE_SUFFIXES and p.is_file() and not is_rule_test_file(p)
            )
        elif path.is_file():
            found = [path]
        else:
            errors.append(RuleError(path, None, None, "io", "no such file or directory"))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                yield file


def _parse_file(
    path: Path, errors: list[RuleError], cache: DocumentCache | None
) -> list[SigmaRuleBase]:
    """The rules, correlations and filters of one file that pySigma parsed without error."""
    try:
        content = path.read_bytes()
        # as `read_text` gives it: universal newlines
        text = content.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(RuleError(path, None, None, "io", str(exc)))
        return []
    parsed, failure = _yaml_documents(text, content, cache)
    documents: list[dict[str, Any]] = []
    for number, document in enumerate(parsed, 1):
        if isinstance(document, dict):
            documents.append(document)
        elif document is not None:
            reason = f"YAML document {number} is a {type(document).__name__}, not a mapping"
            errors.append(RuleError(path, None, None, "yaml", reason))
    if failure is not None:
        errors.append(RuleError(path, None, None, "yaml", failure))

    documents = [_sigma_view(document) for document in documents]
    location = SigmaRuleLocation(path)
    try:
        collection = _collection(documents, location)
    except Exception:  # one document broke the whole file: parse them one by one
        items: list[SigmaRuleBase] = []
        for document in documents:
            try:
                items.extend(_collection([document], location))
            except Exception as exc:
                rule_id = document.get("id")
                title = document.get("title")
                errors.append(
                    RuleError(
                        path,
                        str(rule_id) if rule_id is not None else None,
                        str(title) if title is not None else None,
                        "sigma",
                        error_reason(exc),
                    )
                )
        return _without_errors(path, items, [], errors)
    items = [*collection.rules, *collection.filters]
    return _without_errors(path, items, collection.errors, errors)


def _yaml_documents(
    text: str, content: bytes, cache: DocumentCache | None
) -> tuple[list[Any], str | None]:
    """The YAML documents of a file (`content` is its bytes, `text` their text), from
    `cache` when it has them. A file that does not parse whole gives the documents before
    the error and the error (and is not cached)."""
    cached = cache.get(content) if cache is not None else None
    if cached is not None:
        return cached, None
    documents: list[Any] = []
    try:
        for document in yaml.load_all(text, Loader=SigmaYAMLLoader):
            documents.append(document)
    except Exception as exc:  # YAMLError, or a value the YAML constructors reject
        return documents, " ".join(str(exc).split())
    if cache is not None:
        cache.put(content, documents)
    return documents, None


def correlation_section(rule: SigmaCorrelationRule) -> dict[str, Any]:
    """The `correlation` section of a loaded correlation rule as its file wrote it."""
    section = rule.custom_attributes.get(
        _ORIGINAL_SECTION, rule.custom_attributes.get("correlation")
    )
    return section if isinstance(section, dict) else {}


def _sigma_view(document: dict[str, Any]) -> dict[str, Any]:
    """The document in a shape pySigma parses: extension types as `event_count`, a range
    condition as its first operator; the original section is kept as a custom attribute."""
    section = document.get("correlation")
    if not isinstance(section, dict):
        return document
    kind = section.get("type")
    extension = isinstance(kind, str) and kind in EXTENSION_CORRELATION_TYPES
    condition = section.get("condition")
    condition = condition if isinstance(condition, dict) else {}
    operators = [key for key in _CONDITION_OPERATORS if key in condition]
    if not extension and len(operators) < 2:
        return document
    if extension:
        shown = {"gte": 1, **({"field": condition["field"]} if "field" in condition else {})}
        view = {**section, "type": "event_count", "condition": shown}
    else:
        shown = {k: v for k, v in condition.items() if k not in operators[1:]}
        view = {**section, "condition": shown}
    return {**document, "correlation": view, _ORIGINAL_SECTION: section}


def _collection(documents: list[dict[str, Any]], location: SigmaRuleLocation) -> SigmaCollection:
    return SigmaCollection.from_dicts(
        documents,
        collect_errors=True,
        source=location,
        collect_filters=True,
        resolve_references=False,
    )


def _without_errors(
    path: Path,
    items: Sequence[SigmaRuleBase],
    collection_errors: list[SigmaError],
    errors: list[RuleError],
) -> list[SigmaRuleBase]:
    """Items pySigma parsed cleanly; a RuleError for each other item and file-level error."""
    clean = []
    attached: set[int] = set()
    for item in items:
        attached.update(id(error) for error in item.errors)
        if item.errors:
            reason = "; ".join(error_reason(error) for error in item.errors)
            errors.append(_error(path, item, "sigma", reason))
        else:
            clean.append(item)
    for error in collection_errors:
        if id(error) not in attached:
            errors.append(RuleError(path, None, None, "sigma", error_reason(error)))
    return clean


def _error(path: Path, item: SigmaRuleBase, kind: str, reason: str) -> RuleError:
    rule_id = str(item.id) if item.id is not None else None
    return RuleError(path, rule_id, item.title or None, kind, reason)
