"""What the rule cache keeps of one rule file, as plain data and back.

Always the file's YAML documents. For a file of plain rules also what loading it gave:
the errors pySigma reported in it and, per rule, the metadata a load exposes and whether
its detection compiled (and why not), so a load from the cache reports the same rules and
errors without parsing or compiling any. A file holding a correlation or a filter keeps
its documents only: pySigma parses it on every load (there are few).

Reading checks the shape of every value: a foreign or damaged cache file is a miss
(`RuleCache.get`), never a wrong rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.rules.compiled import CompiledRule, LogSource
from detector.rules.errors import RuleError

#: First item of a kept value, so that a value of some other kind is never read as one.
_TAG = "detector.rules/file"


@dataclass(frozen=True, slots=True)
class FileProblem:
    """An error a file's parsing reported, without the file's path (the content is the key)."""

    rule_id: str | None
    title: str | None
    kind: str
    reason: str

    @classmethod
    def of(cls, error: RuleError) -> FileProblem:
        return cls(error.rule_id, error.title, error.kind, error.reason)

    def at(self, path: Path) -> RuleError:
        return RuleError(path, self.rule_id, self.title, self.kind, self.reason)


@dataclass(frozen=True, slots=True)
class RuleSummary:
    """What a load exposes of a rule before its detection is needed: its metadata, or for
    a rule that did not compile, its id, title and the error."""

    id: str | None
    name: str | None
    title: str | None
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    logsource: LogSource
    #: (kind, reason) of the error compiling it gave, None if it compiled
    failure: tuple[str, str] | None

    @classmethod
    def of(cls, loaded: CompiledRule | RuleError) -> RuleSummary:
        if isinstance(loaded, RuleError):
            nowhere = LogSource(None, None, None)
            failure = (loaded.kind, loaded.reason)
            return cls(loaded.rule_id, None, loaded.title, None, None, (), nowhere, failure)
        return cls(
            loaded.id,
            loaded.name,
            loaded.title,
            loaded.level,
            loaded.status,
            loaded.tags,
            loaded.logsource,
            None,
        )


@dataclass(frozen=True, slots=True)
class CachedFile:
    """One rule file as the cache keeps it."""

    #: the YAML documents (`encode_documents`)
    documents: bytes
    #: for a file of plain rules: the errors its parsing reported and its rules in order;
    #: None for a file parsed on every load
    problems: tuple[FileProblem, ...] | None
    rules: tuple[RuleSummary, ...] | None

    def to_plain(self) -> tuple[Any, ...]:
        problems = (
            None
            if self.problems is None
            else tuple((p.rule_id, p.title, p.kind, p.reason) for p in self.problems)
        )
        rules = (
            None
            if self.rules is None
            else tuple(
                (
                    r.id,
                    r.name,
                    r.title,
                    r.level,
                    r.status,
                    r.tags,
                    (r.logsource.category, r.logsource.product, r.logsource.service),
                    r.failure,
                )
                for r in self.rules
            )
        )
        return (_TAG, self.documents, problems, rules)

    @classmethod
    def from_plain(cls, value: Any) -> CachedFile:
        """The file a `to_plain` value describes; ValueError for any other value."""
        tag, documents, problems, rules = _items(value, 4)
        if tag != _TAG or not isinstance(documents, bytes):
            raise ValueError("not a cached rule file")
        if (problems is None) != (rules is None):
            raise ValueError("problems and rules go together")
        if problems is None or rules is None:
            return cls(documents, None, None)
        return cls(
            documents,
            tuple(_problem(item) for item in _sequence(problems)),
            tuple(_summary(item) for item in _sequence(rules)),
        )


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _problem(value: Any) -> FileProblem:
    rule_id, title, kind, reason = _items(value, 4)
    _check(_optional_text(rule_id) and _optional_text(title))
    _check(_text(kind) and _text(reason))
    return FileProblem(rule_id, title, kind, reason)


def _summary(value: Any) -> RuleSummary:
    rule_id, name, title, level, status, tags, logsource, failure = _items(value, 8)
    _check(all(_optional_text(v) for v in (rule_id, name, title, level, status)))
    tags = _sequence(tags)
    _check(all(_text(tag) for tag in tags))
    category, product, service = _items(logsource, 3)
    _check(all(_optional_text(v) for v in (category, product, service)))
    if failure is not None:
        kind, reason = _items(failure, 2)
        _check(_text(kind) and _text(reason))
        failure = (kind, reason)
    else:
        _check(_text(title))  # a rule that compiled has a title
    return RuleSummary(
        rule_id, name, title, level, status, tags, LogSource(category, product, service), failure
    )


def _items(value: Any, count: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple) or len(value) != count:
        raise ValueError(f"expected a tuple of {count}")
    return value


def _sequence(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        raise ValueError("expected a tuple")
    return value


def _check(holds: bool) -> None:
    if not holds:
        raise ValueError("a value of the wrong type")
