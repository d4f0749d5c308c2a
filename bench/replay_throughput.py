"""End-to-end replay throughput, with the rule index on and off, in one process.

Read + parse + normalize + match + build detections + serialize (to a discarded
sink) over a generated audit mix, against the audit rules of SigmaHQ (application and
cloud/aws) plus the project's rules. Prints a table and appends it, with the machine
and the command, to BENCHMARKS.md.

    python -m bench.replay_throughput --events 200000
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
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
from detector.deadletter import DeadLetterFile
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import RunCounts, SingleEventMatcher, normalized_events
from detector.rules import LoadResult, load_rules
from detector.rules.routing import RuleRouter

SHARED_RULES = SHARED / "sigmahq" / "rules"
PROJECT_RULES = [ROOT / "rules", ROOT / "tests" / "fixtures" / "rules"]


@dataclass
class Run:
    """One replay of the whole file."""

    indexed: bool
    seconds: float
    counts: RunCounts
    peak_rss_mib: float


def rule_paths() -> list[Path]:
    """The audit rules of SigmaHQ when the shared checkout is there, and the project's."""
    paths = [p for p in PROJECT_RULES if p.exists()]
    if SHARED_RULES.is_dir():
        return [SHARED_RULES / "application", SHARED_RULES / "cloud" / "aws", *paths]
    print(f"{SHARED_RULES} is absent: only the project's rules are loaded", file=sys.stderr)
    return paths


def replay(data: Path, loaded: LoadResult, indexed: bool) -> Run:
    """Replay `data` as `detector replay` does, detections serialized into /dev/null."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    matcher = SingleEventMatcher(RuleRouter(loaded.rules, stage.registry.routes(), indexed=indexed))
    counts = RunCounts()
    with (
        tempfile.TemporaryDirectory() as tmp,
        DeadLetterFile(Path(tmp) / "dead.jsonl") as letters,
        open(os.devnull, "wb") as sink,
    ):
        started = time.perf_counter()
        for event in normalized_events([str(data)], stage, letters, counts):
            for detection in matcher.detections(event):
                counts.by_rule[detection.rule.id] += 1
                sink.write(detection.to_json() + b"\n")
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Run(indexed, seconds, counts, peak)


def table(runs: list[Run], size: int) -> str:
    rows = [
        "| rule index | events | dead letters | detections | seconds | events/s | MB/s"
        " | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        rows.append(
            f"| {'on' if run.indexed else 'off'} | {run.counts.read:,} "
            f"| {run.counts.dead_lettered:,} | {run.counts.detections:,} | {run.seconds:.1f} "
            f"| {run.counts.read / run.seconds:,.0f} | {size / run.seconds / 1e6:.1f} "
            f"| {run.peak_rss_mib:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    args = mix_arguments(__doc__.split("\n", 1)[0], events=200_000)
    data = mix_file(args)
    size = data.stat().st_size

    started = time.perf_counter()
    loaded = load_rules(rule_paths())
    load_seconds = time.perf_counter() - started
    routes = build_registry(SourcesSettings()).routes()
    router = RuleRouter(loaded.rules, routes)
    routed = len(router.rules) - len(router.unrouted)

    runs = [replay(data, loaded, indexed) for indexed in (True, False)]
    on, off = runs
    assert on.counts.detections == off.counts.detections, "the index changed the detections"
    assert Counter(on.counts.by_rule) == Counter(off.counts.by_rule), "the index changed rules"

    now = datetime.now(UTC)
    fields = ", ".join(f"{s}: {f}" for s, f in router.index_fields().items())
    report = "\n".join(
        [
            f"## Replay throughput, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.replay_throughput')}`",
            f"- input: {on.counts.read:,} generated events, {size / 1e6:.1f} MB of JSON lines "
            f"(seed {args.seed}); by source {dict(on.counts.by_source.most_common())}",
            f"- rules: {len(loaded.rules)} loaded ({len(loaded.errors)} rejected), {routed} "
            f"routed to an audit source, loaded and compiled in {load_seconds:.1f} s",
            f"- index fields: {fields}",
            "- peak RSS is the process's high-water mark after the run (index off runs second)",
            "",
            table(runs, size),
            "",
            f"Index speed-up: {off.seconds / on.seconds:.2f}x; {on.counts.detections:,} "
            f"detections from {len(on.counts.by_rule)} rules, identical with the index off.",
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
