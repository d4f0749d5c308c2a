"""Correlation throughput and state size over ~100,000 live groups.

Generates normalized events in memory (GitHub Git and pull-request activity of a large
enterprise, and container-registry pulls and pushes), in increasing event time with a
few percent out of order within the allowed lateness, and runs them through the
correlation engine: once per correlation type, then all correlations together. Each
scenario runs in a fresh process, so its peak RSS is its own. The single-event rules are
matched with `RuleRouter` outside the timed loop (the result is cached per event kind,
checked against the router on the first chunk), so events/s is the engine alone:
`CorrelationEngine.process` on every event, then `flush`. The state's size is the
tracemalloc count of an engine restored from the checkpoint taken after the last event
(tracing the whole run is several times slower; `--trace-live` compares the two on a
smaller run). Prints a table and appends it, with the machine and the command, to
BENCHMARKS.md.

    python -m bench.correlation_throughput --events 1000000
    python -m bench.correlation_throughput --events 100000 --profile all
    python -m bench.correlation_throughput --events 100000 --trace-live all
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import multiprocessing
import os
import pstats
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from bisect import bisect
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

from bench.common import command, machine, record
from detector.config import SourcesSettings
from detector.correlate import CorrelationEngine, CorrelationSet, EngineSettings, checkpoint
from detector.correlate import compile_correlations as compile_set
from detector.correlate.engine import microseconds, to_datetime
from detector.detections import Detection
from detector.events import Event
from detector.normalize.builtin import build_registry
from detector.normalize.github import classify
from detector.rules import CompiledRule, load_rules
from detector.rules.routing import RuleRouter
from detector.timestamps import EPOCH

START = datetime(2025, 3, 3, 8, tzinfo=UTC)
MEAN_GAP_US = 18_000  # ~55 events/s: 1M events span ~5 h of event time
LATENESS = timedelta(minutes=2)
OUT_OF_ORDER = 0.03  # share of events delayed by up to DELAY_US
DELAY_US = 90_000_000
CHUNK = 10_000
#: live groups per correlation before eviction: above what the run reaches, so that
#: nothing is evicted and the state is the whole of it
MAX_GROUPS = 250_000

ORGS = ["octo-org", "octo-platform", "octo-data"]
AREAS = ["payments", "checkout", "search", "auth", "billing", "gateway", "ledger", "infra"]
KINDS = ["api", "service", "worker", "ui", "lib", "infra", "docs", "tools"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
TEAMS = 2_000
TEAM_SIZE = 10
TEAM_REPOS = 15
BOTS = 40
GIT_AGENTS = ["git/2.45.1", "git/2.43.0", "JGit/6.9.0", "GitHub Desktop/3.3.12 git/2.44.0"]
REGISTRY_AGENTS = ["containerd/1.7.13", "docker/26.1.3 go/go1.21.10", "buildkit/v0.13"]
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: (source, action, weight): the event mix
MIX = [
    ("github", "git.fetch", 0.34),
    ("github", "git.clone", 0.20),
    ("github", "git.push", 0.10),
    ("github", "pull_request.create", 0.03),
    ("github", "pull_request_review.submit", 0.05),
    ("github", "pull_request.merge", 0.02),
    ("github", "protected_branch.destroy", 0.0005),
    ("github", "protected_branch.create", 0.0005),
    ("registry", "pull", 0.22),
    ("registry", "push", 0.039),
]

#: the single-event rules the correlations reference (`product: cicd`)
BASE_RULES = """
title: Git operation
id: 6a1d0c3e-0000-4000-8000-000000000001
name: git_operation
logsource: {product: cicd, service: github}
detection: {selection: {event.action: [git.clone, git.fetch, git.push]}, condition: selection}
---
title: Repository cloned
id: 6a1d0c3e-0000-4000-8000-000000000002
name: git_clone
logsource: {product: cicd, service: github}
detection: {selection: {event.action: git.clone}, condition: selection}
---
title: Pushed to a repository
id: 6a1d0c3e-0000-4000-8000-000000000003
name: git_push
logsource: {product: cicd}
detection: {selection: {event.action: git.push}, condition: selection}
---
title: Branch protection removed
id: 6a1d0c3e-0000-4000-8000-000000000004
name: protection_removed
logsource: {product: cicd}
detection: {selection: {event.action: protected_branch.destroy}, condition: selection}
---
title: Branch protection added
id: 6a1d0c3e-0000-4000-8000-000000000005
name: protection_added
logsource: {product: cicd}
detection: {selection: {event.action: protected_branch.create}, condition: selection}
---
title: Image layer pulled
id: 6a1d0c3e-0000-4000-8000-000000000006
name: layer_pulled
logsource: {product: cicd, service: registry}
detection: {selection: {event.action: pull, resource.kind: blob}, condition: selection}
---
title: Image layer pushed
id: 6a1d0c3e-0000-4000-8000-000000000007
name: layer_pushed
logsource: {product: cicd, service: registry}
detection: {selection: {event.action: push, resource.kind: blob}, condition: selection}
"""

#: scenario -> correlation rule; "all" runs every one of them together
CORRELATIONS = {
    "event_count": """
title: Burst of Git operations on one repository
id: 6a1d0c3e-1111-4000-8000-000000000001
correlation:
  type: event_count
  rules: [git_operation]
  group-by: [user.name, repository]
  timespan: 1h
  condition: {gte: 400}
""",
    "value_count": """
title: Many repositories cloned by one user
id: 6a1d0c3e-1111-4000-8000-000000000002
correlation:
  type: value_count
  rules: [git_clone]
  group-by: [user.name]
  timespan: 1h
  condition: {gte: 60, field: repository}
""",
    "temporal_ordered": """
title: Push while branch protection was off
id: 6a1d0c3e-1111-4000-8000-000000000003
correlation:
  type: temporal_ordered
  rules: [protection_removed, git_push, protection_added]
  group-by: [user.name, repository]
  timespan: 1h
""",
    "value_sum": """
title: Large volume of image layers pulled
id: 6a1d0c3e-1111-4000-8000-000000000004
correlation:
  type: value_sum
  rules: [layer_pulled]
  group-by: [user.name]
  timespan: 1h
  condition: {gte: 30000000000, field: raw.target.size}
""",
    "value_avg": """
title: Unusually large image layers pushed
id: 6a1d0c3e-1111-4000-8000-000000000005
correlation:
  type: value_avg
  rules: [layer_pushed]
  group-by: [user.name]
  timespan: 1h
  condition: {gt: 1500000000, field: raw.target.size}
""",
    "first_seen": """
title: Git access from a new address
id: 6a1d0c3e-1111-4000-8000-000000000006
correlation:
  type: first_seen
  rules: [git_operation]
  group-by: [user.name]
  timespan: 7d
  learn: 1h
  condition: {field: source.ip}
""",
}
SCENARIOS = [*CORRELATIONS, "all"]


class Population:
    """Who acts on what: teams of people with their repositories, CI bots on every repository."""

    def __init__(self, rng: random.Random) -> None:
        self.repos = [
            f"{ORGS[n % len(ORGS)]}/{AREAS[n % len(AREAS)]}-{KINDS[n // len(AREAS) % len(KINDS)]}"
            f"-{n:05d}"
            for n in range(TEAMS * TEAM_REPOS)
        ]
        people = TEAMS * TEAM_SIZE
        # activity is heavy-tailed: a few people do much of the work
        weights = [rng.paretovariate(1.2) for _ in range(people)]
        bot_share = 0.35  # CI fetches and clones are a large part of Git traffic
        scale = sum(weights) * bot_share / (1 - bot_share) / BOTS
        weights += [scale * rng.uniform(0.5, 1.5) for _ in range(BOTS)]
        self.actors = people + BOTS
        self.cumulative = list(accumulate(weights))
        # each person works from one to three usual addresses
        self.addresses = [
            [_address(rng) for _ in range(rng.choice((1, 1, 2, 3)))] for _ in range(self.actors)
        ]

    def actor(self, rng: random.Random) -> int:
        return bisect(self.cumulative, rng.random() * self.cumulative[-1])

    @staticmethod
    def is_bot(actor: int) -> bool:
        return actor >= TEAMS * TEAM_SIZE

    @staticmethod
    def name(actor: int) -> str:
        """A new string per event, as every parsed record has its own."""
        if actor >= TEAMS * TEAM_SIZE:
            return f"ci-runner-{actor - TEAMS * TEAM_SIZE:02d}[bot]"
        return f"{FIRST[actor % len(FIRST)]}-{actor:05d}"

    def repo(self, rng: random.Random, actor: int) -> str:
        if self.is_bot(actor) or rng.random() < 0.25:
            return self.repos[int(rng.random() * len(self.repos))]
        team = actor // TEAM_SIZE
        return self.repos[team * TEAM_REPOS + int(rng.random() * TEAM_REPOS)]

    def address(self, rng: random.Random, actor: int) -> str:
        if rng.random() < 0.002:  # travelling, a new network
            return _address(rng)
        usual = self.addresses[actor]
        return usual[int(rng.random() * len(usual))]


def _address(rng: random.Random) -> str:
    network = rng.choice((81, 93, 145, 176, 203))
    return f"{network}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


class EventStream:
    """Deterministic normalized events, built as the GitHub and registry normalizers build
    them from their raw records (`check` proves it on a sample)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.population = Population(self.rng)
        self.kinds = [(source, action) for source, action, _ in MIX]
        self.mix = list(accumulate(weight for _, _, weight in MIX))
        self.clock = microseconds(START)
        self.sequence = 0

    def chunk(self, size: int) -> list[Event]:
        return [self._event() for _ in range(size)]

    def _event(self) -> Event:
        rng = self.rng
        self.clock += int(rng.expovariate(1 / MEAN_GAP_US)) + 1
        moment = self.clock
        if rng.random() < OUT_OF_ORDER:
            moment -= rng.randrange(DELAY_US)
        self.sequence += 1
        source, action = self.kinds[bisect(self.mix, rng.random() * self.mix[-1])]
        action = action.encode().decode()  # a string of its own, as in a parsed record
        actor = self.population.actor(rng)
        if source == "github":
            return self._github(moment // 1000, action, actor)
        return self._registry(moment, action, actor)

    def _github(self, millis: int, action: str, actor: int) -> Event:
        rng, population = self.rng, self.population
        name = population.name(actor)
        repo = population.repo(rng, actor)
        org = repo.split("/", 1)[0]
        document_id = base64.urlsafe_b64encode(self.sequence.to_bytes(16, "big")).decode()[:22]
        raw: dict[str, object] = {
            "@timestamp": millis,
            "_document_id": document_id,
            "action": action,
            "actor": name,
            "actor_id": 1_000_000 + actor,
            "actor_is_bot": population.is_bot(actor),
            "business": "octo-corp",
            "created_at": millis,
            "org": org,
            "repo": repo,
        }
        git = action.startswith("git.")
        address = population.address(rng, actor) if git else None
        agent = GIT_AGENTS[actor % len(GIT_AGENTS)] if git else None
        if git:
            raw.update(
                actor_ip=address,
                repository=repo,
                repository_public=False,
                transport_protocol=1,
                transport_protocol_name="http",
                user_agent=agent,
            )
        branch = None
        if action.startswith("protected_branch."):
            branch = raw["name"] = "main"
        categories, types = classify(action)
        return Event(
            timestamp=EPOCH + timedelta(milliseconds=millis),
            event_id=document_id,
            event_source="github",
            event_action=action,
            event_category=list(categories),
            event_type=list(types),
            user_name=name,
            user_id=str(1_000_000 + actor),
            user_type="bot" if population.is_bot(actor) else "human",
            source_ip=address,
            user_agent=agent,
            repository=repo,
            organization=org,
            branch=branch,
            raw=raw,
        )

    def _registry(self, micros: int, action: str, actor: int) -> Event:
        rng, population = self.rng, self.population
        moment = to_datetime(micros)
        name = population.name(actor)
        address = population.address(rng, actor)
        agent = REGISTRY_AGENTS[actor % len(REGISTRY_AGENTS)]
        image = population.repo(rng, actor).replace("octo-", "", 1)
        digest = f"sha256:{rng.getrandbits(256):064x}"
        size = min(int(rng.lognormvariate(16, 2)), 4_000_000_000)  # median ~9 MB
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        raw = {
            "id": event_id,
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
            "action": action,
            "target": {
                "mediaType": LAYER,
                "digest": digest,
                "size": size,
                "length": size,
                "repository": image,
                "url": f"https://registry.octo.internal/v2/{image}/blobs/{digest}",
            },
            "request": {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "addr": f"{address}:{rng.randrange(32768, 61000)}",
                "host": "registry.octo.internal",
                "method": "GET" if action == "pull" else "PUT",
                "useragent": agent,
            },
            "actor": {"name": name},
            "source": {"addr": "registry-0:5000", "instanceID": "0b1d5c4e-9a77-4f55-9e1f"},
        }
        return Event(
            timestamp=moment,
            event_id=event_id,
            event_source="registry",
            event_action=action,
            event_category=["api"],
            event_type=["access" if action == "pull" else "creation"],
            event_outcome="success",
            user_name=name,
            source_ip=address,
            user_agent=agent,
            resource_kind="blob",
            resource_name=digest,
            image_name=image,
            image_digest=digest,
            raw=raw,
        )


# --- one scenario ---------------------------------------------------------------------


@dataclass
class Result:
    """What one scenario measured."""

    scenario: str
    events: int
    #: events that matched a rule one of the scenario's correlations references
    used: int
    hours: float
    seconds: float
    #: of `seconds`, the pauses of the cyclic garbage collector
    gc_seconds: float
    detections: int
    late: int
    evicted: int
    live_groups: int
    #: ru_maxrss before the first event, after the last one, and after the checkpoint
    rss_start_mib: float
    rss_run_mib: float
    rss_checkpoint_mib: float
    state_bytes: int
    checkpoint_bytes: int
    save_seconds: float
    load_seconds: float


class Matcher:
    """The rules an event matches, from the router, cached per event kind: the rules only
    read event.source, event.action and resource.kind."""

    def __init__(self, router: RuleRouter, referenced: set[int]) -> None:
        self.router = router
        self.referenced = referenced
        self.cache: dict[tuple[str, str | None, str | None], list[CompiledRule]] = {}

    def __call__(self, event: Event) -> list[CompiledRule]:
        kind = (event.event_source, event.event_action, event.resource_kind)
        found = self.cache.get(kind)
        if found is None:
            found = self.cache[kind] = self.router.match(event)
        return found

    def used(self, matched: Sequence[CompiledRule]) -> bool:
        return any(id(rule) in self.referenced for rule in matched)


@dataclass
class Setup:
    """One scenario's compiled rules, engine and matcher."""

    correlations: CorrelationSet
    settings: EngineSettings
    engine: CorrelationEngine
    matcher: Matcher

    @classmethod
    def of(cls, scenario: str, directory: Path) -> Setup:
        """The base rules and the scenario's correlations, written as YAML and loaded."""
        chosen = CORRELATIONS.values() if scenario == "all" else [CORRELATIONS[scenario]]
        (directory / "base.yml").write_text(BASE_RULES, encoding="utf-8")
        (directory / "correlations.yml").write_text("\n---\n".join(chosen), encoding="utf-8")
        loaded = load_rules([directory])
        assert not loaded.errors, loaded.errors
        correlations = compile_set(loaded)
        assert not correlations.errors, correlations.errors
        router = RuleRouter(loaded.rules, build_registry(SourcesSettings()).routes())
        referenced = {id(slot.target) for rule in correlations.rules for slot in rule.slots}
        settings = EngineSettings(allowed_lateness=LATENESS, max_groups=MAX_GROUPS)
        engine = CorrelationEngine(correlations, settings)
        return cls(correlations, settings, engine, Matcher(router, referenced))

    def batches(self, stream: EventStream, count: int) -> Iterator[list[Batch]]:
        """`count` events with their matched rules, CHUNK at a time; the first is checked."""
        remaining = count
        while remaining:
            events = stream.chunk(min(CHUNK, remaining))
            if remaining == count:
                check(events, self.matcher)
            remaining -= len(events)
            yield [(event, self.matcher(event)) for event in events]


Batch = tuple[Event, list[CompiledRule]]


def check(events: Sequence[Event], matcher: Matcher) -> None:
    """The events are what the normalizers make of their raw records, and the cache
    gives what the router gives."""
    normalizers = build_registry(SourcesSettings()).by_name
    for event in events[:500]:
        normalized = normalizers[event.event_source].normalize(event.raw)
        assert normalized == event, (normalized, event)
    for event in events:
        assert matcher(event) == matcher.router.match(event), event


class GcClock:
    """The time the cyclic garbage collector spends while `running` (a gc callback)."""

    def __init__(self) -> None:
        self.running = False
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.running:
            self.seconds += time.perf_counter() - self._started


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def live_groups(state: dict[str, object]) -> int:
    """Groups in an engine snapshot (first_seen and absence wrap theirs in a mapping)."""
    aggregators = state["aggregators"]
    assert isinstance(aggregators, list)
    return sum(len(a["groups"] if isinstance(a, dict) else a) for a in aggregators)


def run_scenario(scenario: str, count: int, seed: int) -> Result:
    """Generate `count` events and correlate them; measure time, state and checkpoints."""
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup.of(scenario, Path(tmp))
        engine, stream = setup.engine, EventStream(seed)
        process = engine.process
        used = detections = 0
        seconds = 0.0
        rss_start = 0.0
        collector = GcClock()
        gc.callbacks.append(collector)
        for batch in setup.batches(stream, count):
            rss_start = rss_start or peak_rss_mib()
            used += sum(1 for _, matched in batch if setup.matcher.used(matched))
            collector.running = True
            started = time.perf_counter()
            for event, matched in batch:
                for item in process(event, matched):
                    detections += isinstance(item, Detection)
            seconds += time.perf_counter() - started
            collector.running = False
        del batch
        gc.collect()
        rss_run = peak_rss_mib()

        path = Path(tmp) / "correlation.checkpoint"
        started = time.perf_counter()
        state = engine.snapshot()
        checkpoint.save(path, checkpoint.Checkpoint(count, [], state))
        save_seconds = time.perf_counter() - started
        groups = live_groups(state)
        del state
        started = time.perf_counter()
        resumed = CorrelationEngine(setup.correlations, setup.settings)
        resumed.restore(checkpoint.load(path).engine)
        load_seconds = time.perf_counter() - started
        del resumed
        rss_checkpoint = peak_rss_mib()
        gc.collect()
        state_bytes = restored_bytes(path, setup)

        collector.running = True
        started = time.perf_counter()
        detections += len(engine.flush())
        seconds += time.perf_counter() - started
        collector.running = False
        return Result(
            scenario=scenario,
            events=count,
            used=used,
            hours=(stream.clock - microseconds(START)) / 3.6e9,
            seconds=seconds,
            gc_seconds=collector.seconds,
            detections=detections,
            late=engine.stats.late,
            evicted=engine.stats.evicted_groups,
            live_groups=groups,
            rss_start_mib=rss_start,
            rss_run_mib=rss_run,
            rss_checkpoint_mib=rss_checkpoint,
            state_bytes=state_bytes,
            checkpoint_bytes=path.stat().st_size,
            save_seconds=save_seconds,
            load_seconds=load_seconds,
        )


def restored_bytes(path: Path, setup: Setup) -> int:
    """Bytes (tracemalloc) held by an engine restored from the checkpoint: the state of the
    run, rebuilt object by object, without the cost of tracing the whole run."""
    tracemalloc.start()
    try:
        engine = CorrelationEngine(setup.correlations, setup.settings)
        engine.restore(checkpoint.load(path).engine)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        del engine
        return held
    finally:
        tracemalloc.stop()


def trace_live(scenario: str, count: int, seed: int) -> None:
    """The live state traced during a whole run (several times slower), beside the
    restored state's bytes that the table reports."""
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup.of(scenario, Path(tmp))
        tracemalloc.start()
        for batch in setup.batches(EventStream(seed), count):
            for event, matched in batch:
                setup.engine.process(event, matched)
        del batch
        gc.collect()
        live = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        path = Path(tmp) / "correlation.checkpoint"
        checkpoint.save(path, checkpoint.Checkpoint(count, [], setup.engine.snapshot()))
        restored = restored_bytes(path, setup)
    print(
        f"{scenario}, {count:,} events: live state {live:,} bytes (traced during the run), "
        f"restored from its checkpoint {restored:,} bytes ({restored / live - 1:+.0%})"
    )


def profile(scenario: str, count: int, seed: int, top: int) -> None:
    """cProfile of the engine alone (process and flush) on `count` events."""
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup.of(scenario, Path(tmp))
        batches = list(setup.batches(EventStream(seed), count))
    process = setup.engine.process
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        for event, matched in batch:
            process(event, matched)
    setup.engine.flush()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# --- report ---------------------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    rows = [
        "| scenario | events used | seconds | of which GC | events/s | detections | live groups "
        "| state MiB | bytes/group | peak RSS MiB: start, run, +checkpoint "
        "| checkpoint MB | save s | load s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        per_group = f"{r.state_bytes / r.live_groups:,.0f}" if r.live_groups else "-"
        rows.append(
            f"| {r.scenario} | {r.used:,} | {r.seconds:.1f} | {r.gc_seconds / r.seconds:.0%} "
            f"| {r.events / r.seconds:,.0f} "
            f"| {r.detections:,} | {r.live_groups:,} | {r.state_bytes / 2**20:,.1f} "
            f"| {per_group} | {r.rss_start_mib:.0f}, {r.rss_run_mib:.0f}, "
            f"{r.rss_checkpoint_mib:.0f} | {r.checkpoint_bytes / 1e6:.1f} "
            f"| {r.save_seconds:.2f} | {r.load_seconds:.2f} |"
        )
    return "\n".join(rows)


def rules_text() -> str:
    """Each correlation as `name: type by group-by within timespan`."""
    parts = []
    for name, text in CORRELATIONS.items():
        fields = dict(
            line.strip().split(": ", 1) for line in text.splitlines() if ": " in line.strip()
        )
        parts.append(
            f"{name} by {fields['group-by']} within {fields['timespan']} over {fields['rules']}"
        )
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, dest="scenarios")
    parser.add_argument("--profile", choices=SCENARIOS, help="cProfile the engine, no table")
    parser.add_argument(
        "--trace-live", choices=SCENARIOS, help="trace the live state during the run, no table"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.events, args.seed, top=25)
        return
    if args.trace_live:
        trace_live(args.trace_live, args.events, args.seed)
        return

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results = []
    spawn = multiprocessing.get_context("spawn")
    for scenario in args.scenarios or SCENARIOS:
        # a fresh process per scenario: its peak RSS is its own
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            result = pool.submit(run_scenario, scenario, args.events, args.seed).result()
        print(f"{scenario}: {result.seconds:.1f} s", file=sys.stderr)
        results.append(result)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    first = results[0]
    share: dict[str, float] = {}
    for source, _, weight in MIX:
        share[source] = share.get(source, 0) + weight
    sources = ", ".join(f"{s} {w / sum(share.values()):.0%}" for s, w in share.items())
    now = datetime.now(UTC)
    report = "\n".join(
        [
            f"## Correlation throughput and state, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.correlation_throughput')}`",
            f"- load average (1 min) {load_before:.2f} before, {load_after:.2f} after; "
            f"{wall / 60:.1f} min in all",
            f"- input: {first.events:,} normalized events generated in memory (seed "
            f"{args.seed}) over {first.hours:.1f} h of event time: GitHub Git and pull-request "
            f"activity and registry layer pulls and pushes ({sources}), "
            f"{TEAMS * TEAM_SIZE:,} people in {TEAMS:,} teams and {BOTS} CI bots over "
            f"{TEAMS * TEAM_REPOS:,} repositories; {OUT_OF_ORDER:.0%} of events up to "
            f"{DELAY_US // 1_000_000} s out of order, allowed lateness {LATENESS}",
            f"- correlations: {rules_text()}; max_groups {MAX_GROUPS:,}",
            "- events/s: `CorrelationEngine.process` on every event plus the final `flush`, "
            "with the matched rules given (the router's result, cached per event kind); "
            "each scenario in a fresh process",
            "- live groups: in the checkpoint taken after the last event, before the flush; "
            "state: tracemalloc bytes of an engine restored from that checkpoint; "
            "save: snapshot, encode, write and fsync; load: read, decode, restore",
            "",
            table(results),
            "",
            f"Late events: {sum(r.late for r in results)}; evicted groups: "
            f"{sum(r.evicted for r in results)}.",
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
