"""How often the shipped rule pack fires on benign traffic: the alert noise of a quiet day.

Generates a day of routine organisation traffic (`bench.generate --benign`: 200,000
records by default, spread over 24 hours of event time, no security-relevant template),
replays it through rules/ and nothing else, exactly as `detector replay` does
(single-event rules and correlations), and prints the detections of each rule that
fired, with the share of the events it sees (the events of the sources routed to it).
Appends the table, with the machine and the command, to BENCHMARKS.md.

    python -m bench.rule_noise --events 200000 --hours 24
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    ROOT,
    command,
    machine,
    record,
)
from bench.generate import generate
from detector.config import SourcesSettings
from detector.correlate import CorrelationEngine, EngineSettings, compile_correlations
from detector.deadletter import DeadLetterFile
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import DetectionStage, RunCounts, replay_detections, rule_ref
from detector.rules import load_rules
from detector.rules.routing import RuleRouter
from detector.sources.records import RawRecord

RULES = ROOT / "rules"


def event_time(stage: NormalizeStage, line: bytes) -> datetime:
    """The event time of one generated record."""
    results = list(stage.process(RawRecord(line, "span")))
    if not results or not isinstance(results[0], Event):
        raise ValueError(f"a generated record does not normalize: {line[:200]!r}")
    return results[0].timestamp


def span(stage: NormalizeStage, data: Path) -> tuple[datetime, datetime]:
    """First and last event time (the generator writes records in event-time order)."""
    with data.open("rb") as handle:
        first = handle.readline()
        handle.seek(max(data.stat().st_size - 65536, 0))
        last = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return event_time(stage, first), event_time(stage, last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    stage = NormalizeStage(build_registry(SourcesSettings()))
    loaded = load_rules([RULES])
    correlations = compile_correlations(loaded)
    router = RuleRouter(loaded.rules, stage.registry.routes())
    #: rule id -> the sources whose events the rule is checked against
    feeds: dict[str, set[str]] = {}
    for routes in (router.raw, router.normalized):
        for source, index in routes.items():
            for rule in index.rules:
                feeds.setdefault(rule_ref(rule).id, set()).add(source)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "benign.jsonl"
        generate(data, args.events, args.seed, benign=True, span=timedelta(hours=args.hours))
        size = data.stat().st_size
        start, end = span(stage, data)
        counts = RunCounts()
        fired: Counter[str] = Counter()
        titles: dict[str, tuple[str, str]] = {}
        engine = CorrelationEngine(correlations, EngineSettings())
        started = time.perf_counter()
        with DeadLetterFile(Path(tmp) / "dead.jsonl") as letters:
            detections = replay_detections(
                [str(data)], stage, DetectionStage(router, engine), letters, counts
            )
            for detection in detections:
                fired[detection.rule.id] += 1
                titles[detection.rule.id] = (detection.rule.title, detection.rule.level or "-")
        seconds = time.perf_counter() - started

    rows = [
        "| rule | level | checked on | detections | share of the events it sees |",
        "|---|---|---|---:|---:|",
    ]
    for rule_id, number in sorted(fired.items(), key=lambda item: (-item[1], titles[item[0]])):
        title, level = titles[rule_id]
        sources = sorted(feeds.get(rule_id) or counts.by_source)  # correlations: every source
        seen = sum(counts.by_source.get(s, 0) for s in sources)
        share = f"{number / seen:.2%}" if seen else "-"
        rows.append(f"| {title} | {level} | {', '.join(sources)} | {number:,} | {share} |")
    total = sum(fired.values())
    unfed = [
        r
        for r in loaded.rules
        if not any(counts.by_source.get(s, 0) for s in feeds.get(rule_ref(r).id, ()))
    ]
    unfed_sources = sorted({s for r in unfed for s in feeds.get(rule_ref(r).id, ())})
    rows.append(f"| **total** | | | **{total:,}** | {total / max(counts.read, 1):.2%} of all |")

    now = datetime.now(UTC)
    report = "\n".join(
        [
            f"## Rule noise on benign traffic, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.rule_noise')}`",
            f"- input: {counts.read:,} generated benign events (`bench.generate --benign`: "
            f"routine templates only, images pushed by the CI identity, pulls authenticated; "
            f"seed {args.seed}), {size / 1e6:.1f} MB, event time "
            f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
            f"({(end - start) / timedelta(hours=1):.1f} h); by source "
            f"{dict(Counter(counts.by_source).most_common())}",
            f"- rules: the shipped pack only (rules/): {len(loaded.rules)} rules and "
            f"{len(correlations.rules)} correlations loaded, {len(loaded.errors)} rejected",
            f"- replay: {seconds:.1f} s, {counts.dead_lettered} dead letters, "
            f"{counts.late} late events",
            f"- not exercised: {len(unfed)} rules see none of these events (their sources: "
            f"{', '.join(unfed_sources) or '-'})",
            "",
            *rows,
            "",
            f"{total:,} detections from {len(fired)} of "
            f"{len(loaded.rules) + len(correlations.rules)} rules; the others stayed silent.",
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
