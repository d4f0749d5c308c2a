"""Throughput and end-to-end latency of the Kafka runtime, with 1 and with 2 workers.

A Tansu broker (the tests' broker, `tests/kafka/brokers.py`) on 127.0.0.1, and
`detector run --kafka` workers as subprocesses with the shipped rule pack. For each
worker count, on fresh topics:

- warm-up: a one-scenario replay, so the workers have joined and own their partitions;
- throughput: the input (default: all shipped scenarios, in event-time order) published
  as fast as possible and collected until every end marker is in (`detector replay
  --kafka`'s notion of done): events / seconds from the first record sent to done;
- latency: the input again at a steady `--rate`, on other topics; for each single-event
  detection, the time from sending its event to its arrival on `detector.detections`.
  (Correlation detections are decided when the watermark passes, so their latency is
  the window, not the pipeline's.)

    python -m bench.kafka_throughput --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import yaml

from bench.common import ROOT, command, machine, percentile, record
from detector.config import load_settings
from detector.deadletter import DeadLetterFile
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import RunCounts, normalized_events
from detector.runtime.kafka.replay import KafkaReplay
from detector.runtime.kafka.topics import TopicNames
from detector.sources.files import expand_paths
from tests.kafka.brokers import running_broker

SCENARIOS = sorted(str(path) for path in (ROOT / "replay").glob("[0-9][0-9]-*/logs"))
PARTITIONS = 4


def load_events(paths: list[str], directory: Path) -> list[Event]:
    registry = build_registry(load_settings(None).sources)
    with DeadLetterFile(directory / "dead.jsonl") as letters:
        return list(
            normalized_events(
                expand_paths(paths), NormalizeStage(registry), letters, RunCounts(), merged=True
            )
        )


@contextmanager
def workers(bootstrap: str, count: int, directory: Path, name: str) -> Iterator[Path]:
    """`count` workers on topics of their own; yields their config file."""
    config = directory / f"{name}.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "app_id": name,
                    "topic_prefix": f"{name}.",
                    "partitions": PARTITIONS,
                    "data_dir": str(directory / name),
                },
                "service": {"metrics_port": None, "log_level": "WARNING"},
            }
        )
    )
    arguments = ["-m", "detector", "run", "--config", str(config), "--kafka", bootstrap]
    processes = [
        subprocess.Popen(
            [sys.executable, *arguments],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield config
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def run(
    bootstrap: str, name: str, events: list[Event], rate: float | None
) -> tuple[KafkaReplay, list[bytes], float]:
    sources = build_registry(load_settings(None).sources).names
    replay = KafkaReplay(bootstrap, TopicNames(f"{name}."), sources, PARTITIONS, rate=rate)
    started = time.monotonic()
    detections = asyncio.run(replay(events))
    return replay, detections, time.monotonic() - started


def latencies(replay: KafkaReplay) -> list[float]:
    """Seconds from sending the event to the arrival of its single-event detection."""
    result = []
    for value, arrived in replay.arrived.items():
        detection = orjson.loads(value)
        if "window" in detection:
            continue
        sent = replay.sent.get(detection["evidence"][0]["id"])
        if sent is not None:
            result.append(arrived - sent)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("paths", nargs="*", default=SCENARIOS, help="input (default: scenarios)")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s of the latency run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with (
        tempfile.TemporaryDirectory() as temporary,
        running_broker("tansu", Path(temporary) / "broker") as bootstrap,
    ):
        directory = Path(temporary)
        events = load_events(args.paths, directory)
        warm_up = load_events(SCENARIOS[:1], directory)
        for count in args.workers:
            name = f"bench{uuid.uuid4().hex[:6]}"
            with workers(bootstrap, count, directory, name):
                run(bootstrap, name, warm_up, None)
                _, found, seconds = run(bootstrap, name, events, None)
            name = f"bench{uuid.uuid4().hex[:6]}"
            with workers(bootstrap, count, directory, name):
                run(bootstrap, name, warm_up, None)
                paced, _, _ = run(bootstrap, name, events, args.rate)
            waits = latencies(paced)
            rows.append(
                f"| {count} | {len(events):,} | {len(found):,} | {seconds:.1f} | "
                f"{len(events) / seconds:,.0f} | {args.rate:,.0f} | "
                f"{statistics.median(waits) * 1000:.0f} | {percentile(waits, 0.95) * 1000:.0f} | "
                f"{percentile(waits, 0.99) * 1000:.0f} | {len(waits):,} |"
            )
            print(rows[-1], file=sys.stderr)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join(
        [
            f"## Kafka runtime throughput and latency, {now}",
            "",
            machine(),
            f"- command: `{command('bench.kafka_throughput')}`",
            f"- broker: Tansu (in-memory storage) on 127.0.0.1; {PARTITIONS} partitions per "
            "topic; workers are `detector run --kafka` processes with the shipped rule pack",
            f"- input: {', '.join(Path(p).parent.name for p in args.paths)}",
            "- throughput: first record sent to the last end marker collected; latency: "
            "event sent to its single-event detection collected, input paced at the rate",
            "",
            "| workers | events | detections | seconds | events/s | paced at events/s | "
            "latency p50 ms | p95 ms | p99 ms | detections timed |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(report)
    if not args.no_record:
        record(report)


if __name__ == "__main__":
    main()
