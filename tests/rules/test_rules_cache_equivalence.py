"""Whole rule sets load the same with the rule cache off, filling it, and from it: the same
rules in the same order with the same metadata, the same errors, correlations and filters,
the same routing, and the same matches and explanations on the fixture records (and, for
the shipped pack, the same results of its rule tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import SourceRegistry
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, LoadResult, load_rules, ruletests
from detector.rules import loader as rule_loader
from detector.rules.cache import RuleCache
from detector.rules.routing import RuleRouter

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "rules"
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SOURCES = ROOT / "tests" / "fixtures" / "sources"
#: next to the project, or next to the directory of git worktrees it is checked out in
SIGMAHQ = next(
    (p / "sigmahq" for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared") if p.is_dir()),
    ROOT.parent / "shared" / "sigmahq",
)
SIGMAHQ_SETS = ("rules", "rules-emerging-threats", "rules-threat-hunting")


@pytest.fixture(scope="module")
def registry() -> SourceRegistry:
    return build_registry(SourcesSettings())


@pytest.fixture(scope="module")
def events(registry: SourceRegistry) -> list[Event]:
    """Every record of the JSON-lines fixtures, normalized."""
    found = []
    for path in sorted(FIXTURE_SOURCES.rglob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                normalizer = registry.detect(record)
                assert normalizer is not None, f"{path}: a record no source claims"
                found.append(normalizer.normalize(record))
    assert len(found) > 50
    return found


def keys(rules: Sequence[CompiledRule]) -> list[str]:
    return [rule.id or rule.title for rule in rules]


def observe(loaded: LoadResult, registry: SourceRegistry, events: list[Event]) -> dict[str, Any]:
    """What a load shows: metadata, errors, routing, every rule's compiled detection, the
    routed rules' pySigma rules, matches and explanations."""
    router = RuleRouter(loaded.rules, registry.routes())
    unrouted = {id(rule) for rule in router.unrouted}
    return {
        "rules": [
            (r.id, r.name, r.title, r.level, r.status, r.tags, r.logsource, r.source)
            for r in loaded.rules
        ],
        "errors": loaded.errors,
        "correlations": [(str(c.id), c.title, c.to_dict()) for c in loaded.correlations],
        "filters": [(f.id, f.title, f.rules, f.fields) for f in loaded.filters],
        "routes": {
            source: (
                keys(router.raw[source].rules),
                router.raw[source].fields,
                keys(router.normalized[source].rules),
                router.normalized[source].fields,
            )
            for source in router.routes
        },
        "unrouted": keys(router.unrouted),
        "detections": [
            (r.id, sorted(r.fields), r.keyword_search, list(r.identifiers), keys_of(r))
            for r in loaded.rules
        ],
        "pysigma": [r.rule.to_dict() for r in loaded.rules if id(r) not in unrouted],
        "matches": [keys(router.match(event)) for event in events],
        "explanations": list(explanations(router, events)),
    }


def keys_of(rule: CompiledRule) -> list[str]:
    return [f.id or f.title for f in rule.filters]


def explanations(router: RuleRouter, events: list[Event]) -> Iterator[Any]:
    """Each routed rule's explanation of each record of its source."""
    for event in events:
        raw = router.raw.get(event.event_source)
        if raw is not None and isinstance(event.raw, dict):
            yield [(rule.title, rule.explain(event.raw)) for rule in raw.rules]
        normalized = router.normalized.get(event.event_source)
        if normalized is not None:
            record = event.to_record()
            yield [(rule.title, rule.explain(record)) for rule in normalized.rules]


def three_loads(
    paths: list[Path],
    cache_dir: Path,
    registry: SourceRegistry,
    events: list[Event],
    monkeypatch: pytest.MonkeyPatch,
    *,
    observe_filling: bool = True,
) -> list[dict[str, Any]]:
    """What the loads show with the cache off, filling it (unless not `observe_filling`:
    then the filling load is not observed), and from it (no YAML parsed)."""
    cache = RuleCache(cache_dir)
    seen = [observe(load_rules(paths, cache=None), registry, events)]
    filled = load_rules(paths, cache=cache)
    if observe_filling:
        seen.append(observe(filled, registry, events))
    with monkeypatch.context() as patch:

        def refused(*args: object, **kwargs: object) -> None:
            raise AssertionError("YAML was parsed")

        patch.setattr(rule_loader.yaml, "load_all", refused)
        from_cache = load_rules(paths, cache=cache)
    seen.append(observe(from_cache, registry, events))
    return seen


@pytest.mark.parametrize("paths", [[PACK], [FIXTURE_RULES]], ids=["pack", "fixtures"])
def test_the_rule_sets_load_the_same_from_the_cache(
    paths: list[Path],
    tmp_path: Path,
    registry: SourceRegistry,
    events: list[Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off, filling, cached = three_loads(paths, tmp_path / "cache", registry, events, monkeypatch)
    assert filling == off
    assert cached == off
    assert off["rules"] and not off["errors"]
    assert any(off["matches"])  # the fixture records do meet rules


def test_the_pack_passes_its_rule_tests_the_same_from_the_cache(
    tmp_path: Path, registry: SourceRegistry
) -> None:
    cache = RuleCache(tmp_path / "cache")
    load_rules([PACK], cache=cache)  # fills it
    files = ruletests.test_files([PACK])
    off, cached = (
        list(ruletests.run_tests(files, load_rules([PACK], cache=chosen).rules, registry))
        for chosen in (None, cache)
    )
    assert cached == off
    assert len(off) > 500 and all(result.passed for result in off)


@pytest.mark.shared
def test_sigmahq_loads_the_same_from_the_cache(
    tmp_path: Path,
    registry: SourceRegistry,
    events: list[Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not (SIGMAHQ / "rules").is_dir():
        pytest.skip(f"the SigmaHQ rule set is not at {SIGMAHQ} (../shared absent)")
    paths = [SIGMAHQ / name for name in SIGMAHQ_SETS if (SIGMAHQ / name).is_dir()]
    off, cached = three_loads(
        paths, tmp_path / "cache", registry, events, monkeypatch, observe_filling=False
    )
    assert cached == off
    assert len(off["rules"]) > 3000
    assert off["errors"]  # the rules whose placeholders have no values
