"""End-to-end replay throughput, with the rule index on and off in one process, and
with worker processes.

Read + parse + normalize + match + correlate + serialize detections (to a discarded
sink) over a generated audit mix, against the audit rules of SigmaHQ (application and
cloud/aws) plus the project's rules. Prints a table and appends it, with the machine
and the command, to BENCHMARKS.md.

    python -m bench.replay_throughput --events 1000000 --workers 2
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    ROOT,
    SHARED,
    command,
    machine,
    record,
)
from bench.generate import mix_arguments, mix_file
from detector.config import SourcesSettings
from detector.correlate import CorrelationEngine, EngineSettings, compile_correlations
from detector.deadletter import DeadLetterFile
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.parallel import Workers, WorkerState, parallel_replay
from detector.pipeline import DetectionStage, RunCounts, replay_detections
from detector.rules import LoadResult, load_rules
from detector.rules.routing import RuleRouter

SHARED_RULES = SHARED / "sigmahq" / "rules"
PROJECT_RULES = [ROOT / "rules", ROOT / "tests" / "fixtures" / "rules"]


def rule_paths() -> list[Path]:
    """The audit rules of SigmaHQ when the shared checkout is there, and the project's."""
    paths = [p for p in PROJECT_RULES if p.exists()]
    if SHARED_RULES.is_dir():
        return [SHARED_RULES / "application", SHARED_RULES / "cloud" / "aws", *paths]
    print(f"{SHARED_RULES} is absent: only the project's rules are loaded", file=sys.stderr)
    return paths


#: The replay's lateness: records of a generated mix are in time order, and a bounded
#: lateness keeps the correlations' reorder buffer (and the memory) small.
LATENESS = timedelta(minutes=10)


@dataclass
class Run:
    """One replay of the whole file."""

    indexed: bool
    workers: int
    seconds: float
    #: CPU seconds of the replay's process and its workers
    cpu: float
    counts: RunCounts
    peak_rss_mib: float


def replay(data: Path, loaded: LoadResult, indexed: bool, workers: int = 1) -> Run:
    """Replay `data` as `detector replay [--workers N] --allowed-lateness 10m` does:
    read, parse, normalize, match, correlate (the rules' correlations), serialize the
    detections (into /dev/null)."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    router = RuleRouter(loaded.rules, stage.registry.routes(), indexed=indexed)
    engine = CorrelationEngine(compile_correlations(loaded), EngineSettings(LATENESS))
    counts = RunCounts()
    before = cpu_seconds()
    with (
        tempfile.TemporaryDirectory() as tmp,
        DeadLetterFile(Path(tmp) / "dead.jsonl") as letters,
        open(os.devnull, "wb") as sink,
    ):
        started = time.perf_counter()
        if workers > 1:
            with Workers(workers, WorkerState(stage, router, engine, None)) as pool:
                for line in parallel_replay(pool, [str(data)], stage, engine, letters, counts):
                    sink.write(line + b"\n")
        else:
            detector = DetectionStage(router, engine)
            for detection in replay_detections([str(data)], stage, detector, letters, counts):
                sink.write(detection.to_json() + b"\n")
        seconds = time.perf_counter() - started
    peak = max(
        resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return Run(indexed, workers, seconds, cpu_seconds() - before, counts, peak)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have exited."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def table(runs: list[Run], size: int) -> str:
    rows = [
        "| rule index | processes | events | dead letters | detections | seconds | events/s "
        "| MB/s | CPU seconds | events per CPU second | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        processes = "1" if run.workers == 1 else f"1 + {run.workers} workers"
        rows.append(
            f"| {'on' if run.indexed else 'off'} | {processes} | {run.counts.read:,} "
            f"| {run.counts.dead_lettered:,} | {run.counts.detections:,} | {run.seconds:.1f} "
            f"| {run.counts.read / run.seconds:,.0f} | {size / run.seconds / 1e6:.1f} "
            f"| {run.cpu:.1f} | {run.counts.read / run.cpu:,.0f} | {run.peak_rss_mib:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = mix_arguments(__doc__.split("\n", 1)[0], events=1_000_000, workers=True)
    data = mix_file(args)
    size = data.stat().st_size

    started = time.perf_counter()
    loaded = load_rules(rule_paths())
    load_seconds = time.perf_counter() - started
    routes = build_registry(SourcesSettings()).routes()
    router = RuleRouter(loaded.rules, routes)
    routed = len(router.rules) - len(router.unrouted)

    runs = [replay(data, loaded, indexed) for indexed in (True, False)]
    runs.append(replay(data, loaded, True, args.workers))
    on, off, pooled = runs
    assert on.counts.detections == off.counts.detections, "the index changed the detections"
    assert Counter(on.counts.by_rule) == Counter(off.counts.by_rule), "the index changed rules"
    assert Counter(pooled.counts.by_rule) == Counter(on.counts.by_rule), "the workers differ"

    now = datetime.now(UTC)
    fields = "; ".join(f"{s}: {', '.join(f)}" for s, f in router.index_fields().items())
    report = "\n".join(
        [
            f"## Replay throughput, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.replay_throughput')}`",
            f"- input: {on.counts.read:,} generated events, {size / 1e6:.1f} MB of JSON lines "
            f"(seed {args.seed}); by source {dict(Counter(on.counts.by_source).most_common())}",
            f"- rules: {len(loaded.rules)} loaded ({len(loaded.errors)} rejected), {routed} "
            f"routed to an audit source, loaded and compiled in {load_seconds:.1f} s",
            f"- index fields: {fields}",
            "- end to end as `detector replay --allowed-lateness 10m` (with `--workers "
            f"{args.workers}` in the last row): read, parse, normalize, match, correlate, "
            "serialize the detections (into /dev/null)",
            "- peak RSS: the high-water mark of the process (index off runs second), or of "
            "the largest worker when that is larger; CPU seconds: every process",
            "",
            table(runs, size),
            "",
            f"Index speed-up: {off.seconds / on.seconds:.2f}x; {on.counts.detections:,} "
            f"detections from {len(on.counts.by_rule)} rules, identical with the index off "
            f"and with {args.workers} workers ({on.seconds / pooled.seconds:.2f}x the "
            "one-process rate on the wall clock).",
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
