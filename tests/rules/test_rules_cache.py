"""The parsed-rule cache: a hit loads the same rules without parsing YAML, a changed file
misses, a corrupt cache file is ignored with a warning, and the environment turns it off."""

from __future__ import annotations

import logging
import marshal
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.rules import load_rules
from detector.rules import loader as rule_loader
from detector.rules.cache import DocumentCache, _decode, _encode

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
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: create, objectRef.subresource: exec}
    condition: selection
"""

DELETE = {"verb": "delete", "objectRef": {"resource": "secrets"}}
EXEC = {"verb": "create", "objectRef": {"subresource": "exec"}}


def summary(rules_dir: Path, cache: DocumentCache | None) -> list[tuple[Any, ...]]:
    loaded = load_rules([rules_dir], cache=cache)
    assert not loaded.errors
    return [
        (r.id, r.title, r.fields, r.rule.date, r.matches(DELETE), r.matches(EXEC))
        for r in loaded.rules
    ]


def no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make parsing YAML fail, so only cached documents can load."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("YAML was parsed")

    monkeypatch.setattr(rule_loader.yaml, "load_all", refuse)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "k8s.yml").write_text(RULE)
    return directory


def test_a_hit_gives_the_same_rules_without_parsing_yaml(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DocumentCache(tmp_path / "cache")
    uncached = summary(rules_dir, None)
    assert summary(rules_dir, cache) == uncached  # fills the cache
    no_yaml(monkeypatch)
    assert summary(rules_dir, cache) == uncached
    assert uncached[0][3] == date(2024, 5, 1)
    assert [row[4:] for row in uncached] == [(True, False), (False, True)]


def test_a_changed_file_misses(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DocumentCache(tmp_path / "cache")
    summary(rules_dir, cache)
    (rules_dir / "k8s.yml").write_text(RULE.replace("Secret deleted", "Secret removed"))
    titles = [row[1] for row in summary(rules_dir, cache)]
    assert titles == ["Secret removed", "Exec into pod"]
    no_yaml(monkeypatch)  # and the changed file is cached in turn
    assert [row[1] for row in summary(rules_dir, cache)] == titles


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00not marshal", marshal.dumps({"not": "a list"}), marshal.dumps([("tag", "x")])],
    ids=["empty", "not-marshal", "not-a-list", "unknown-tag"],
)
def test_a_corrupt_cache_file_is_ignored_with_a_warning(
    rules_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    cache = DocumentCache(tmp_path / "cache")
    expected = summary(rules_dir, cache)
    (cached,) = (tmp_path / "cache").rglob("*.marshal")
    cached.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="detector.rules.cache"):
        assert summary(rules_dir, cache) == expected
    assert any("is corrupt" in message for message in caplog.messages)
    assert isinstance(_decode(marshal.loads(cached.read_bytes())), list)  # rewritten


def test_a_file_that_does_not_parse_is_not_cached(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "bad.yml").write_text("title: [unclosed\n")
    cache = DocumentCache(tmp_path / "cache")
    first = load_rules([directory], cache=cache)
    assert [e.kind for e in first.errors] == ["yaml"]
    assert not list((tmp_path / "cache").rglob("*.marshal"))
    assert load_rules([directory], cache=cache).errors == first.errors


def test_the_environment_chooses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_RULE_CACHE", "off")
    assert DocumentCache.default() is None
    monkeypatch.setenv("DETECTOR_RULE_CACHE", str(tmp_path / "here"))
    chosen = DocumentCache.default()
    assert chosen is not None and chosen.directory == tmp_path / "here"
    monkeypatch.delenv("DETECTOR_RULE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    chosen = DocumentCache.default()
    assert chosen is not None and chosen.directory == tmp_path / "xdg" / "detector" / "rules"


def test_the_default_load_uses_the_configured_cache(
    rules_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTOR_RULE_CACHE", str(tmp_path / "configured"))
    expected = summary(rules_dir, None)
    assert [(r.id, r.title) for r in load_rules([rules_dir]).rules] == [
        (row[0], row[1]) for row in expected
    ]
    assert list((tmp_path / "configured").rglob("*.marshal"))


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


@given(yaml_values)
def test_cached_values_come_back_equal_and_of_the_same_types(value: Any) -> None:
    restored = _decode(marshal.loads(marshal.dumps(_encode(value))))
    assert restored == value
    assert shape(restored) == shape(value)


def shape(value: Any) -> Any:
    """The value with each scalar's type beside it (True == 1, a date is not a datetime)."""
    if isinstance(value, dict):
        return {shape(k): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return (type(value), value.isoformat() if isinstance(value, date | datetime) else value)
