"""The rule cache: a hit loads the same rules and errors without parsing YAML, and without
pySigma or the compiler until a rule's detection is needed; a changed file, other
placeholders or a changed filter give what an uncached load gives; a corrupt or foreign
cache file is ignored with a warning; the environment turns the cache off."""

from __future__ import annotations

import logging
import marshal
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.rules import LoadResult, load_rules
from detector.rules import loader as rule_loader
from detector.rules.cache import RuleCache, decode_documents, encode_documents
from detector.rules.loader import RuleCacheError
from detector.rules.outcome import CachedFile

RULE = """
title: Secret deleted
id: 22222222-2222-4222-8222-222222222222
date: 2024-05-01
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: delete, objectRef.resource: secrets}
    condition: selection
---
title: Exec into pod
id: 11111111-1111-4111-8111-111111111111
name: k8s_exec
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: create, objectRef.subresource: exec}
    condition: selection
"""

PLACEHOLDER_RULE = """
title: Delete in a watched namespace
id: 33333333-3333-4333-8333-333333333333
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        verb: delete
        objectRef.namespace|expand: '%watched%'
    condition: selection
"""

FILTER = """
title: Ignore the sandbox namespace
id: 88888888-8888-4888-8888-888888888888
logsource: {product: kubernetes}
filter:
    rules: [k8s_exec]
    selection: {objectRef.namespace: sandbox}
    condition: not selection
"""

DELETE = {"verb": "delete", "objectRef": {"resource": "secrets", "namespace": "prod"}}
EXEC = {"verb": "create", "objectRef": {"subresource": "exec", "namespace": "sandbox"}}
RECORDS = [DELETE, EXEC, {"verb": "delete", "objectRef": {"namespace": "kube-system"}}]


def summary(loaded: LoadResult) -> list[Any]:
    """Everything a load shows of its rules and errors, and each rule's verdicts."""
    return [
        [
            (r.id, r.name, r.title, r.level, r.logsource, r.source, r.rule.date, sorted(r.fields))
            for r in loaded.rules
        ],
        [[r.matches(record) for record in RECORDS] for r in loaded.rules],
        [[r.explain(record) for record in RECORDS] for r in loaded.rules],
        [[f.id for f in r.filters] for r in loaded.rules],
        loaded.errors,
    ]


def load(directory: Path, cache: RuleCache | None, **options: Any) -> list[Any]:
    return summary(load_rules([directory], cache=cache, **options))


def refuse(monkeypatch: pytest.MonkeyPatch, target: object, name: str) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} was called")

    monkeypatch.setattr(target, name, refused)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "k8s.yml").write_text(RULE)
    return directory


def test_a_hit_gives_the_same_rules_without_parsing_yaml(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RuleCache(tmp_path / "cache")
    uncached = load(rules_dir, None)
    assert load(rules_dir, cache) == uncached  # fills the cache
    refuse(monkeypatch, rule_loader.yaml, "load_all")
    assert load(rules_dir, cache) == uncached
    assert uncached[0][0][6] == date(2024, 5, 1)
    assert uncached[1] == [[True, False, False], [False, True, False]]


def test_a_hit_parses_and_compiles_a_rule_only_when_its_detection_is_needed(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RuleCache(tmp_path / "cache")
    load_rules([rules_dir], cache=cache)
    parse = rule_loader.SigmaCollection.from_dicts
    with monkeypatch.context() as refused:
        refuse(refused, rule_loader.SigmaCollection, "from_dicts")
        refuse(refused, rule_loader, "compile_detection")
        loaded = load_rules([rules_dir], cache=cache)
        assert [(r.id, r.title, r.logsource.product) for r in loaded.rules] == [
            ("22222222-2222-4222-8222-222222222222", "Secret deleted", "kubernetes"),
            ("11111111-1111-4111-8111-111111111111", "Exec into pod", "kubernetes"),
        ]
    parses: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        parses.append(1)
        return parse(*args, **kwargs)

    monkeypatch.setattr(rule_loader.SigmaCollection, "from_dicts", counted)
    assert [r.matches(EXEC) for r in loaded.rules] == [False, True]
    assert loaded.rules[0].fields == frozenset({"verb", "objectRef.resource"})
    assert len(parses) == 1  # the file once, for both of its rules


def test_a_changed_file_misses(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RuleCache(tmp_path / "cache")
    load(rules_dir, cache)
    (rules_dir / "k8s.yml").write_text(RULE.replace("Secret deleted", "Secret removed"))
    changed = load(rules_dir, cache)
    assert [row[2] for row in changed[0]] == ["Secret removed", "Exec into pod"]
    refuse(monkeypatch, rule_loader.yaml, "load_all")  # and the changed file is cached in turn
    assert load(rules_dir, cache) == changed


def test_other_placeholder_values_miss(rules_dir: Path, tmp_path: Path) -> None:
    (rules_dir / "watched.yml").write_text(PLACEHOLDER_RULE)
    cache = RuleCache(tmp_path / "cache")
    for placeholders in [None, {"watched": ["kube-*"]}, {"watched": ["prod"]}, None]:
        expected = load(rules_dir, None, placeholders=placeholders)
        assert load(rules_dir, cache, placeholders=placeholders) == expected  # fills
        assert load(rules_dir, cache, placeholders=placeholders) == expected  # hits
    unset = load(rules_dir, cache)
    assert [e.reason for e in unset[4]] == ["placeholder %watched% has no configured values"]
    watched = load(rules_dir, cache, placeholders={"watched": ["kube-*"]})
    assert watched[4] == [] and watched[1][2] == [False, False, True]


def test_a_changed_filter_applies_to_cached_rules(rules_dir: Path, tmp_path: Path) -> None:
    cache = RuleCache(tmp_path / "cache")
    filter_file = rules_dir / "z_filter.yml"
    for content in [FILTER, FILTER.replace("[k8s_exec]", "any"), None, FILTER]:
        if content is None:
            filter_file.unlink()
        else:
            filter_file.write_text(content)
        expected = load(rules_dir, None)
        assert load(rules_dir, cache) == expected
        assert load(rules_dir, cache) == expected
    assert expected[3] == [[], ["88888888-8888-4888-8888-888888888888"]]
    assert expected[1][1] == [False, False, False]  # the exec in the sandbox is filtered out


def test_errors_and_duplicates_come_back_the_same(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "a.yml").write_text(RULE)
    (directory / "b_copy.yml").write_text(RULE.split("---")[1])  # a duplicate id
    (directory / "c_bad.yml").write_text(
        RULE.replace("condition: selection", "condition: selection and missing", 1)
        .replace("2222", "4444")
        .replace("1111", "5555")
        + "---\n- not a mapping\n"
    )
    (directory / "d_broken.yml").write_text("title: [unclosed\n")
    cache = RuleCache(tmp_path / "cache")
    expected = load(directory, None)
    assert [e.kind for e in expected[4]] == ["duplicate-id", "yaml", "yaml", "compile"]
    assert load(directory, cache) == expected
    assert load(directory, cache) == expected
    # the copy alone: its rule, skipped as a duplicate when cached, loads
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "b_copy.yml").write_text(RULE.split("---")[1])
    assert load(alone, cache) == load(alone, None)
    assert len(load(alone, cache)[0]) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00not marshal",
        marshal.dumps([{"title": "the documents alone, as an older cache kept them"}]),
        marshal.dumps(("detector.rules/file", b"", (), ((None,) * 8,))),
        marshal.dumps(("detector.rules/file", b"", None, ())),
        marshal.dumps(("someone else's", b"", None, None)),
    ],
    ids=["empty", "not-marshal", "older-format", "bad-rule", "half", "foreign"],
)
def test_a_corrupt_cache_file_is_ignored_with_a_warning(
    rules_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    cache = RuleCache(tmp_path / "cache")
    expected = load(rules_dir, cache)
    (cached,) = (tmp_path / "cache").rglob("*.marshal")
    cached.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="detector.rules.cache"):
        assert load(rules_dir, cache) == expected
    assert any("is corrupt" in message for message in caplog.messages)
    rewritten = CachedFile.from_plain(marshal.loads(cached.read_bytes()))
    assert rewritten.rules is not None and len(rewritten.rules) == 2


@pytest.mark.parametrize(
    "documents",
    [b"\x00not marshal", encode_documents([{"title": "another rule"}])],
    ids=["corrupt", "other-rules"],
)
def test_an_entry_whose_documents_are_not_its_rules_fails_on_use(
    rules_dir: Path, tmp_path: Path, documents: bytes
) -> None:
    """An entry of the right shape around other documents is no entry this engine
    writes: the rule that needs them says so, and names the file and the cache."""
    cache = RuleCache(tmp_path / "cache")
    load_rules([rules_dir], cache=cache)
    (cached,) = (tmp_path / "cache").rglob("*.marshal")
    kept = CachedFile.from_plain(marshal.loads(cached.read_bytes()))
    damaged = CachedFile(documents, kept.problems, kept.rules)
    cached.write_bytes(marshal.dumps(damaged.to_plain()))
    loaded = load_rules([rules_dir], cache=cache)
    assert [r.title for r in loaded.rules] == ["Secret deleted", "Exec into pod"]
    with pytest.raises(RuleCacheError, match=r"k8s\.yml: the rule cache entry of this file"):
        loaded.rules[0].matches(DELETE)


def test_files_with_correlations_or_filters_keep_their_documents_only(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rules_dir / "z_filter.yml").write_text(FILTER)
    cache = RuleCache(tmp_path / "cache")
    expected = load(rules_dir, cache)
    kept = {
        path.stat().st_size: CachedFile.from_plain(marshal.loads(path.read_bytes()))
        for path in (tmp_path / "cache").rglob("*.marshal")
    }
    assert sorted(f.rules is None for f in kept.values()) == [False, True]
    refuse(monkeypatch, rule_loader.yaml, "load_all")
    assert load(rules_dir, cache) == expected


def test_a_file_that_does_not_parse_is_not_cached(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "bad.yml").write_text("title: [unclosed\n")
    cache = RuleCache(tmp_path / "cache")
    first = load_rules([directory], cache=cache)
    assert [e.kind for e in first.errors] == ["yaml"]
    assert not list((tmp_path / "cache").rglob("*.marshal"))
    assert load_rules([directory], cache=cache).errors == first.errors


def test_the_environment_chooses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_RULE_CACHE", "off")
    assert RuleCache.default() is None
    monkeypatch.setenv("DETECTOR_RULE_CACHE", str(tmp_path / "here"))
    chosen = RuleCache.default()
    assert chosen is not None and chosen.directory == tmp_path / "here"
    monkeypatch.delenv("DETECTOR_RULE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    chosen = RuleCache.default()
    assert chosen is not None and chosen.directory == tmp_path / "xdg" / "detector" / "rules"


def test_the_default_load_uses_the_configured_cache(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTOR_RULE_CACHE", str(tmp_path / "configured"))
    expected = load(rules_dir, None)
    assert summary(load_rules([rules_dir])) == expected
    assert list((tmp_path / "configured").rglob("*.marshal"))
    monkeypatch.setenv("DETECTOR_RULE_CACHE", "off")
    refuse(monkeypatch, RuleCache, "get")
    assert summary(load_rules([rules_dir])) == expected


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5))])),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner) | st.dictionaries(st.text() | st.integers(), inner),
    max_leaves=30,
)


@given(st.lists(yaml_values))
def test_cached_documents_come_back_equal_and_of_the_same_types(documents: list[Any]) -> None:
    restored = decode_documents(encode_documents(documents))
    assert restored == documents
    assert shape(restored) == shape(documents)


def shape(value: Any) -> Any:
    """The value with each scalar's type beside it (True == 1, a date is not a datetime)."""
    if isinstance(value, dict):
        return {shape(k): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return (type(value), value.isoformat() if isinstance(value, date | datetime) else value)
