"""A compiled rule set: the configured rules and correlations, ready to run, built
the same way by the live service, its worker processes and the Kafka workers."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from detector.config import Settings
from detector.correlate import CorrelationEngine, EngineSettings, compile_correlations
from detector.normalize import SourceRegistry
from detector.pipeline import DetectionStage
from detector.rules import RuleSources, load_rules
from detector.rules.loader import RuleError
from detector.rules.routing import RuleRouter
from detector.runtime.errors import RulesNotLoadedError


@dataclass
class RuleSet:
    """A compiled rule set ready to run: the detection stage and which rules are staged."""

    stage: DetectionStage
    staged: frozenset[str]  # rule ids of `status: experimental` rules
    rules: int
    correlations: int
    #: a fresh engine of the same correlations (one per partition in the Kafka runtime)
    new_engine: Callable[[], CorrelationEngine]
    #: the rule files compiled, as they were read
    sources: RuleSources


def build_rule_set(settings: Settings, registry: SourceRegistry) -> RuleSet:
    """Load and compile the configured rules; any error refuses the whole set."""
    compiled = compile_rule_set(settings, registry)
    if isinstance(compiled, RuleSet):
        return compiled
    errors = [str(e) for e in compiled]
    raise RulesNotLoadedError("; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""))


def compile_rule_set(
    settings: Settings, registry: SourceRegistry, sources: RuleSources | None = None
) -> RuleSet | list[RuleError]:
    """The configured rules compiled (from `sources` when given: files read before), or
    every error that refuses them."""
    paths = settings.rules.paths if sources is None else sources
    loaded = load_rules(paths, settings.rules.placeholders or None)
    correlations = compile_correlations(loaded)
    if loaded.errors or correlations.errors:
        return [*loaded.errors, *correlations.errors]
    router = RuleRouter(loaded.rules, registry.routes())
    new_engine = partial(
        CorrelationEngine,
        correlations,
        EngineSettings(
            allowed_lateness=timedelta(seconds=settings.correlation.allowed_lateness_seconds),
            max_groups=settings.correlation.max_groups,
        ),
    )
    engine = new_engine()
    staged = {r.id for r in loaded.rules if r.id and r.status == "experimental"}
    staged |= {
        c.ref.id for c in correlations.rules if str(c.sigma.status or "").endswith("experimental")
    }
    stage = DetectionStage(router, engine)
    return RuleSet(
        stage,
        frozenset(staged),
        len(loaded.rules),
        len(correlations.rules),
        new_engine,
        loaded.sources,
    )


def freeze_heap() -> None:
    """Collect, then move every object left (most of the heap: the compiled rules) out of
    the collector's sight, so that a full collection walks only what came after: with the
    shipped pack one took ~160 ms on a loaded machine, a pause every record then waited
    out. Objects frozen are still freed by reference counting; only their cycles wait for
    the next `gc.unfreeze`."""
    gc.collect()
    gc.freeze()
