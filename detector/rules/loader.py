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

With the rule cache (`detector.rules.cache`), a file loaded before in the same context
is not parsed: its rules come from what the cache kept (`detector.rules.outcome`), with
the same metadata, errors and order, and each one's detection is parsed and compiled on
first use, with the filters of this load.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
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

from detector.rules.cache import RuleCache, decode_documents, encode_documents
from detector.rules.compiled import (
    CompiledFilter,
    CompiledRule,
    RuleDetection,
    compile_detection,
    compile_filter,
    compile_rule,
)
from detector.rules.errors import RuleCompileError, error_reason
from detector.rules.errors import RuleError as RuleError  # where callers of load_rules find it
from detector.rules.outcome import CachedFile, FileProblem, RuleSummary
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


@dataclass(frozen=True)
class RuleSources:
    """The rule files under some paths, read once: a load of them can be made again
    elsewhere (the live service's worker processes) from the very bytes, whatever the
    files became since."""

    files: tuple[tuple[Path, bytes], ...] = ()
    #: paths that are not there, files that could not be read
    errors: tuple[RuleError, ...] = ()


def read_rule_sources(paths: Iterable[str | Path]) -> RuleSources:
    """The rule files under `paths` (files or directories, walked in sorted order), each
    once, with their bytes."""
    errors: list[RuleError] = []
    files = []
    for path in _rule_files(paths, errors):
        try:
            files.append((path, path.read_bytes()))
        except OSError as exc:
            errors.append(RuleError(path, None, None, "io", str(exc)))
    return RuleSources(tuple(files), tuple(errors))


@dataclass
class LoadResult:
    """The outcome of `load_rules`."""

    rules: list[CompiledRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    filters: list[CompiledFilter] = field(default_factory=list)
    #: what was loaded
    sources: RuleSources = field(default_factory=RuleSources)


class RuleCacheError(RuntimeError):
    """A cache entry of the right shape whose documents are not the rules it lists: the
    cache was damaged by something else than this engine, and must be deleted."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"{path}: the rule cache entry of this file {what}; delete the rule cache"
            " ($DETECTOR_RULE_CACHE, else ~/.cache/detector/rules) to rebuild it"
        )


def load_rules(
    paths: Iterable[str | Path] | RuleSources,
    placeholders: Placeholders | None = None,
    *,
    cache: RuleCache | Literal["environment"] | None = "environment",
) -> LoadResult:
    """Load, filter and compile every Sigma rule under `paths` (files or directories), or
    of rule files read before (`read_rule_sources`).

    What loading a file gave comes from `cache` where it has the file
    (`detector.rules.cache`; by default the one the environment configures, None for no
    cache); the rules of such a file are parsed and compiled when first needed.
    """
    sources = paths if isinstance(paths, RuleSources) else read_rule_sources(paths)
    rule_cache = RuleCache.default() if cache == "environment" else cache
    loading = _Loading(placeholders, rule_cache)
    result = LoadResult(errors=list(sources.errors), sources=sources)
    rules: list[SigmaRule | _CachedRule] = []
    seen_ids: dict[str, Path] = {}
    for path, content in sources.files:
        for item in loading.file(path, content, result.errors):
            item_id = item.id if isinstance(item, _CachedRule) else _id(item)
            if item_id is not None:
                first = seen_ids.get(item_id)
                if first is not None:
                    reason = f"rule id already loaded from {first}"
                    error = RuleError(path, item_id, item.title or None, "duplicate-id", reason)
                    result.errors.append(error)
                    continue
                seen_ids[item_id] = path
            if isinstance(item, SigmaCorrelationRule):
                result.correlations.append(item)
            elif isinstance(item, SigmaFilter):
                compiled = _guard(path, item, partial(compile_filter, item, placeholders))
                if isinstance(compiled, RuleError):
                    result.errors.append(compiled)
                else:
                    result.filters.append(compiled)
            elif isinstance(item, SigmaRule | _CachedRule):
                rules.append(item)
    for rule in rules:
        if isinstance(rule, _CachedRule):
            loaded = rule.load(placeholders, result.filters)
        else:
            path = rule.source.path if rule.source is not None else Path()
            loaded = _guard(path, rule, partial(compile_rule, rule, placeholders, result.filters))
            loading.outcomes[id(rule)] = loaded
        if isinstance(loaded, RuleError):
            result.errors.append(loaded)
        else:
            result.rules.append(loaded)
    loading.keep()
    return result


class _CachedFile:
    """A file loaded from the cache, whose rules pySigma parses when one is needed."""

    def __init__(self, path: Path, cached: CachedFile) -> None:
        self.path = path
        self.cached = cached
        self._parsed: list[SigmaRuleBase] | None = None

    def compile(
        self, index: int, placeholders: Placeholders | None, filters: list[CompiledFilter]
    ) -> RuleDetection:
        """The detection of the file's `index`th rule, with the filters of the load."""
        if self._parsed is None:
            try:
                documents = decode_documents(self.cached.documents)
            except (ValueError, EOFError, TypeError) as exc:
                raise RuleCacheError(self.path, f"has corrupt documents ({exc})") from exc
            self._parsed = _parse_documents(self.path, documents, [])
        summaries = self.cached.rules or ()
        parsed = self._parsed[index] if index < len(self._parsed) else None
        if (
            index >= len(summaries)
            or not isinstance(parsed, SigmaRule)
            or _id(parsed) != summaries[index].id
            or parsed.title != summaries[index].title
        ):
            raise RuleCacheError(self.path, "does not match its documents")
        return compile_detection(parsed, placeholders, filters)


@dataclass(frozen=True, slots=True, eq=False)
class _CachedRule:
    """A rule of a cached file, before the load decides whether it is kept."""

    file: _CachedFile
    index: int
    summary: RuleSummary

    @property
    def id(self) -> str | None:
        return self.summary.id

    @property
    def title(self) -> str | None:
        return self.summary.title

    def load(
        self, placeholders: Placeholders | None, filters: list[CompiledFilter]
    ) -> CompiledRule | RuleError:
        """The rule, its detection compiled when first needed, or the error compiling
        it gave when the file was cached."""
        summary = self.summary
        if summary.failure is not None:
            kind, reason = summary.failure
            return RuleError(self.file.path, summary.id, summary.title, kind, reason)
        assert summary.title is not None  # RuleSummary checks it
        return CompiledRule(
            id=summary.id,
            name=summary.name,
            title=summary.title,
            level=summary.level,
            status=summary.status,
            tags=summary.tags,
            logsource=summary.logsource,
            source=self.file.path,
            compiled=partial(self.file.compile, self.index, placeholders, filters),
        )


class _Loading:
    """The cache's part in one load: files read from it, files parsed to be kept in it."""

    def __init__(self, placeholders: Placeholders | None, cache: RuleCache | None) -> None:
        self.placeholders = placeholders
        self.cache = cache
        #: what else than a file's bytes shapes its outcome: the placeholder values
        self.context = repr(sorted((placeholders or {}).items())).encode()
        #: files parsed in this load: bytes, encoded documents, parse errors, items
        self.parsed: list[tuple[bytes, bytes, list[RuleError], list[SigmaRuleBase]]] = []
        #: id() of each rule compiled in this load -> what compiling it gave
        self.outcomes: dict[int, CompiledRule | RuleError] = {}

    def file(
        self, path: Path, content: bytes, errors: list[RuleError]
    ) -> Sequence[SigmaRuleBase | _CachedRule]:
        """The rules, correlations and filters of one file that parsed without error."""
        if self.cache is not None:
            cached = self.cache.get(content, self.context, CachedFile.from_plain)
            if cached is not None:
                return self._from_cache(path, cached, errors)
        try:
            # as `read_text` gives it: universal newlines
            text = content.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError as exc:
            errors.append(RuleError(path, None, None, "io", str(exc)))
            return []
        documents, failure = _yaml_documents(text)
        file_errors: list[RuleError] = []
        items = _parse_documents(path, documents, file_errors, failure)
        errors.extend(file_errors)
        if self.cache is not None and failure is None:  # a broken file is parsed every time
            try:
                encoded = encode_documents(documents)  # as pySigma was given them
            except ValueError:
                pass  # a value of an unusual YAML tag
            else:
                self.parsed.append((content, encoded, file_errors, items))
        return items

    def _from_cache(
        self, path: Path, cached: CachedFile, errors: list[RuleError]
    ) -> Sequence[SigmaRuleBase | _CachedRule]:
        if cached.problems is None or cached.rules is None:
            file_errors: list[RuleError] = []
            items = _parse_documents(path, decode_documents(cached.documents), file_errors)
            errors.extend(file_errors)
            return items
        errors.extend(problem.at(path) for problem in cached.problems)
        file = _CachedFile(path, cached)
        return [_CachedRule(file, index, summary) for index, summary in enumerate(cached.rules)]

    def keep(self) -> None:
        """Keep the files parsed in this load in the cache, with what loading them gave:
        a file of plain rules whole, one with a correlation or a filter its documents."""
        if self.cache is None:
            return
        for content, documents, file_errors, items in self.parsed:
            kept = CachedFile(documents, None, None)
            if all(isinstance(item, SigmaRule) for item in items):
                summaries = tuple(RuleSummary.of(self._outcome(item)) for item in items)
                problems = tuple(FileProblem.of(error) for error in file_errors)
                whole = CachedFile(documents, problems, summaries)
                with suppress(ValueError):  # metadata of an unusual type: parsed on every load
                    kept = CachedFile.from_plain(whole.to_plain())
            self.cache.put(content, self.context, kept.to_plain())

    def _outcome(self, rule: SigmaRuleBase) -> CompiledRule | RuleError:
        """What compiling the rule gave in this load; one the load skipped (its id was
        taken) is compiled now, as a load of its file elsewhere would compile it."""
        outcome = self.outcomes.get(id(rule))
        if outcome is None:
            assert isinstance(rule, SigmaRule)
            path = rule.source.path if rule.source is not None else Path()
            outcome = _guard(path, rule, partial(compile_rule, rule, self.placeholders))
        return outcome


def _guard(path: Path, item: SigmaRuleBase, compile_item: Callable[[], T]) -> T | RuleError:
    """compile_item(), or the RuleError saying why it failed."""
    try:
        return compile_item()
    except RuleCompileError as exc:
        return _error(path, item, "compile", str(exc))
    except SigmaError as exc:
        return _error(path, item, "sigma", error_reason(exc))
    except Exception as exc:  # a bug here must not stop the other rules from loading
        return _error(path, item, "internal", f"{type(exc).__name__}: {exc}")


def is_rule_test_file(path: Path) -> bool:
    return path.name.endswith(RULE_TEST_SUFFIXES)


def _rule_files(paths: Iterable[str | Path], errors: list[RuleError]) -> Iterator[Path]:
    """Rule files under `paths`, each once, directories walked in sorted order."""
    seen: set[tuple[int, int]] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and not is_rule_test_file(p)
            )
        elif path.is_file():
            found = [path]
        else:
            errors.append(RuleError(path, None, None, "io", "no such file or directory"))
            continue
        for file in found:
            try:
                status = file.stat()
            except OSError:
                continue  # a dangling link
            identity = (status.st_dev, status.st_ino)  # the same file, by whatever path
            if stat.S_ISREG(status.st_mode) and identity not in seen:
                seen.add(identity)
                yield file


def _parse_documents(
    path: Path, parsed: list[Any], errors: list[RuleError], failure: str | None = None
) -> list[SigmaRuleBase]:
    """The rules, correlations and filters pySigma parsed without error from the YAML
    documents of a file (`failure`: why its YAML stopped parsing after them)."""
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


def _yaml_documents(text: str) -> tuple[list[Any], str | None]:
    """The YAML documents of a file's text; a file that does not parse whole gives the
    documents before the error, and the error."""
    documents: list[Any] = []
    try:
        for document in yaml.load_all(text, Loader=SigmaYAMLLoader):
            documents.append(document)
    except Exception as exc:  # YAMLError, or a value the YAML constructors reject
        return documents, " ".join(str(exc).split())
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
    return RuleError(path, _id(item), item.title or None, kind, reason)


def _id(item: SigmaRuleBase) -> str | None:
    return str(item.id) if item.id is not None else None
