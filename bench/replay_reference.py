"""The replay engine against two references, on the same generated events in one run.

- engine: `detector replay`'s path (read, parse, normalize, match, build and serialize
  detections), as `bench.replay_throughput` runs it, with the index on;
- orjson: reading the lines and `orjson.loads` alone, the ceiling of any Python engine
  that parses JSON;
- SQLite: pySigma's SQLite backend, the way Zircolite runs Sigma rules: parse each
  record, find its source, load the fields the rules read into one table per source
  (one column per field, `COLLATE NOCASE`), then run each rule's converted query.

The engine-against-SQLite comparison uses the same single-event rules on both sides: the
raw-record rules (SigmaHQ's audit rules and the pack's vendor rules) that the backend
converts; `product: cicd` rules read normalized events, which the SQLite path does not
build, and rules the backend cannot convert are left out of both. The engine is also
timed with every rule. Prints one table and appends it to BENCHMARKS.md.

    python -m bench.replay_reference --events 1000000 --workers 2
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sigma.exceptions import SigmaError

from bench.common import command, machine, record
from bench.generate import mix_arguments, mix_file
from bench.replay_throughput import replay, rule_paths
from detector.config import SourcesSettings
from detector.normalize import SourceRegistry
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, LoadResult, load_rules
from detector.rules.routing import RuleRouter
from tests.rules.differential_sqlite import TABLE, backend, column_value, connect, row_query


@dataclass
class Timing:
    """One way through the events."""

    name: str
    events: int
    seconds: float
    matches: int | None
    rules: int | None
    note: str = ""
    #: wall-clock seconds, for the runs on several processes
    wall: float | None = None


@dataclass
class SourceRules:
    """The converted rules of one source and the columns their queries read."""

    rules: list[CompiledRule]
    queries: list[str]
    columns: list[str]


def orjson_only(data: Path) -> Timing:
    """Read the file line by line and parse each line: nothing else."""
    started = time.process_time()
    count = 0
    with data.open("rb") as lines:
        for line in lines:
            orjson.loads(line)
            count += 1
    return Timing("orjson.loads only (ceiling)", count, time.process_time() - started, None, None)


def converted(router: RuleRouter) -> tuple[dict[str, SourceRules], int]:
    """Per raw source, the rules the SQLite backend converts (and how many it refused)."""
    converter = backend()
    refused = 0
    result: dict[str, SourceRules] = {}
    for source, index in router.raw.items():
        rules, queries = [], []
        for rule in index.rules:
            try:
                queries.append(row_query(rule.rule, converter).replace(TABLE, _table(source)))
            except (SigmaError, NotImplementedError, AssertionError):
                refused += 1
                continue
            rules.append(rule)
        if rules:
            columns = sorted(set().union(*(rule.fields for rule in rules)))
            result[source] = SourceRules(rules, queries, columns)
    return result, refused


def _table(source: str) -> str:
    return f"{TABLE}_{source}"


def _records(data: Path, registry: SourceRegistry) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, raw record) of each line, envelopes split as the engine splits them."""
    with data.open("rb") as lines:
        for line in lines:
            document = orjson.loads(line)
            items = [document]
            for normalizer in registry.unwrapping:
                unwrapped = normalizer.unwrap(document)
                if unwrapped is not None:
                    items = list(unwrapped)
                    break
            for item in items:
                found = registry.detect(item) if isinstance(item, dict) else None
                if found is not None:
                    yield found.name, item


def sqlite_path(data: Path, by_source: dict[str, SourceRules]) -> tuple[Timing, Timing, Timing]:
    """Load the events into SQLite, then run every query: (load, queries, both)."""
    registry = build_registry(SourcesSettings())
    database = connect()
    inserts: dict[str, str] = {}
    for source, rules in by_source.items():
        columns = "".join(f", `{name}` TEXT COLLATE NOCASE" for name in rules.columns)
        database.execute(f"CREATE TABLE {_table(source)} (rid INTEGER{columns})")
        names = "".join(f", `{name}`" for name in rules.columns)
        marks = ", ?" * len(rules.columns)
        inserts[source] = f"INSERT INTO {_table(source)} (rid{names}) VALUES (?{marks})"
    started = time.process_time()
    rows: dict[str, list[list[Any]]] = {source: [] for source in by_source}
    count = 0
    for source, item in _records(data, registry):
        count += 1
        table_rows = rows.get(source)
        if table_rows is not None:
            flat = _flatten(item, "", {})
            table_rows.append([count, *(flat.get(name) for name in by_source[source].columns)])
    for source, table_rows in rows.items():
        database.executemany(inserts[source], table_rows)
    database.commit()
    loaded = time.process_time() - started
    rules_run = sum(len(r.rules) for r in by_source.values())
    started = time.process_time()
    matches = 0
    for rules in by_source.values():
        for query in rules.queries:
            matches += len(database.execute(query).fetchall())
    queried = time.process_time() - started
    note = "one table per source, no index"
    return (
        Timing("SQLite: load (parse, find source, insert)", count, loaded, None, None, note),
        Timing("SQLite: converted queries", count, queried, matches, rules_run),
        Timing("SQLite: load + queries", count, loaded + queried, matches, rules_run),
    )


def _flatten(members: dict[str, Any], prefix: str, flat: dict[str, Any]) -> dict[str, Any]:
    """Every scalar of a record under its dotted path, as the table stores it; lists and
    objects are left NULL (the backend's queries compare scalars)."""
    for key, value in members.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}{key}.", flat)
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = column_value(value)
    return flat


def engine(data: Path, loaded: LoadResult, name: str, workers: int = 1) -> Timing:
    """`bench.replay_throughput`'s replay (index on), with `workers` worker processes; CPU
    time of every process, and the wall time for the runs with workers."""
    run = replay(data, loaded, indexed=True, workers=workers)
    wall = run.seconds if workers > 1 else None
    rules = len(loaded.rules)
    return Timing(name, run.counts.read, run.cpu, run.counts.detections, rules, wall=wall)


def table(timings: list[Timing]) -> str:
    rows = [
        "| path | events | rules | matches | CPU seconds | events per CPU second "
        "| wall seconds | events per wall second |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        rules = f"{t.rules:,}" if t.rules is not None else ""
        matches = f"{t.matches:,}" if t.matches is not None else ""
        wall = f"{t.wall:.1f} | {t.events / t.wall:,.0f}" if t.wall is not None else " | "
        rows.append(
            f"| {t.name} | {t.events:,} | {rules} | {matches} | {t.seconds:.1f} "
            f"| {t.events / t.seconds:,.0f} | {wall} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = mix_arguments(__doc__.split("\n", 1)[0], events=1_000_000, workers=True)
    data = mix_file(args)
    loaded = load_rules(rule_paths())
    router = RuleRouter(loaded.rules, build_registry(SourcesSettings()).routes())
    by_source, refused = converted(router)
    comparable = [rule for rules in by_source.values() for rule in rules.rules]
    # the single-event rules alone: no correlations (which would also silence rules)
    same_rules = replace(loaded, rules=comparable, correlations=[])

    timings = [orjson_only(data)]
    timings.append(engine(data, loaded, "engine, every rule"))
    timings.append(engine(data, same_rules, "engine, the SQLite rules"))
    timings.extend(sqlite_path(data, by_source))
    ceiling, everything, same, *_, sqlite_total = timings
    workers = args.workers
    timings.append(engine(data, loaded, f"engine, every rule, {workers} workers", workers))
    timings.append(
        engine(data, same_rules, f"engine, the SQLite rules, {workers} workers", workers)
    )
    pooled_same = timings[-1]
    assert pooled_same.wall is not None

    sources = Counter({source: len(rules.rules) for source, rules in by_source.items()})
    now = datetime.now(UTC)
    report = "\n".join(
        [
            f"## Replay against orjson and SQLite, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.replay_reference')}`",
            f"- input: {ceiling.events:,} generated events (seed {args.seed}), "
            f"{data.stat().st_size / 1e6:.1f} MB of JSON lines",
            f"- rules: {len(loaded.rules)} loaded; the SQLite rules are the {len(comparable)} "
            f"raw-record rules pySigma's SQLite backend converts ({refused} refused), by "
            f"source {dict(sources.most_common())}",
            "- engine: `detector replay --allowed-lateness 10m`'s path: read, parse, normalize, "
            "match, correlate, build and serialize detections (into /dev/null); matches are "
            "detections (every rule: the pack's correlations too, which silence the rules "
            "they reference with `generate: false`). SQLite: matches are result rows",
            "- time is the process's CPU time (one thread), so other jobs on the machine "
            "weigh less than on the wall clock; the runs with workers give the CPU time of "
            "every process and the wall time",
            "",
            table(timings),
            "",
            f"Engine, every rule, against the orjson ceiling: "
            f"{ceiling.seconds / everything.seconds:.2f} of its rate. Engine against SQLite "
            f"on the same rules: {sqlite_total.seconds / same.seconds:.1f}x as fast in CPU "
            f"time; with {args.workers} workers (`replay --workers`), "
            f"{sqlite_total.seconds / pooled_same.wall:.1f}x as fast in wall time "
            "(SQLite's path is one thread: its wall time is its CPU time on an idle core).",
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
