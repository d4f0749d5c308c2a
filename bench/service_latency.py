"""Detection latency of the live service: `detector run` under a steady load over HTTP.

`detector run` runs as a subprocess with the shipped rule pack and one signed webhook
sink; the sink's endpoint is a receiver in this process that verifies every signature.
Everything listens on 127.0.0.1. A generated audit mix (`bench.generate`) is posted at
a steady rate for a bounded time, each record the way its sender posts it: Kubernetes
events as one `EventList` per tick (the API server's webhook backend batches), GitHub
Actions deliveries signed with `X-Hub-Signature-256`, GitLab stream events with the
verification token, and the audit records of GitHub, the registry and CloudTrail as
Standard Webhooks posts to `/intake/generic/<source>` (a log forwarder). A 429 is posted
again after its `Retry-After`, and counted.

Latency runs from the start of the post that carries an event to the arrival of its
first detection at the receiver, for every event that makes one; the sustained rate is
the events the service normalized over the time from the first post until it had them
all. Appends a dated section to BENCHMARKS.md.

    python -m bench.service_latency --rate 1000 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import command, machine, record
from bench.generate import generate
from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.sources.records import RawRecord
from tests.e2e.service_helpers import (
    ROUTES,
    DetectorService,
    Metrics,
    Receiver,
    gitlab_headers,
    kubernetes_headers,
    post,
    service_config,
    wait_for,
    webhook_output,
)
from tests.intake.support import github_headers, standard_headers

#: Standard Webhooks secret of the forwarder's generic routes.
FORWARDER_WHSEC = "whsec_" + base64.b64encode(b"bench-forwarder-signing-key-01").decode()
FORWARDED = ("github", "registry", "cloudtrail")
TICK = 0.02  # seconds between two rounds of posts
CONCURRENCY = 64  # posts in flight at most
ATTEMPTS = 5  # posts of one body, 429s included


@dataclass(frozen=True, slots=True)
class Planned:
    """One generated record: its source, its event id and its JSON."""

    source: str
    event_id: str
    data: bytes


def plan(events: int, seed: int, directory: Path) -> list[Planned]:
    """`events` generated records, each with the source and id the service will see."""
    path = directory / "mix.jsonl"
    generate(path, events, seed)
    stage = NormalizeStage(build_registry(SourcesSettings()))
    planned: list[Planned] = []
    for number, line in enumerate(path.read_bytes().splitlines()):
        [event] = stage.process(RawRecord(line, f"mix:{number}"))
        assert isinstance(event, Event), event
        planned.append(Planned(event.event_source, event.event_id, line))
    return planned


def request(items: Sequence[Planned]) -> tuple[str, bytes, dict[str, str]]:
    """The route, body and headers its sender would post `items` with (one source)."""
    first = items[0]
    if first.source == "kubernetes":
        body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
        body += b",".join(item.data for item in items) + b"]}"
        return "kubernetes", body, kubernetes_headers()
    assert len(items) == 1, "only the Kubernetes webhook batches"
    if first.source == "gitlab":
        return "gitlab", first.data, gitlab_headers(first.data)
    if first.source == "github_actions":
        kind = "workflow_job" if "workflow_job" in orjson.loads(first.data) else "workflow_run"
        return "github", first.data, github_headers(first.data, kind, str(uuid.uuid4()))
    assert first.source in FORWARDED, first.source
    headers = standard_headers(first.data, FORWARDER_WHSEC, f"msg_{uuid.uuid4().hex}")
    return f"generic/{first.source}", first.data, headers


@dataclass
class Sender:
    """Posts at the planned pace; remembers when each event was first posted."""

    client: aiohttp.ClientSession
    service: DetectorService
    posted: dict[str, float] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    lost: int = 0  # events whose post never got a 202
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def send(self, items: Sequence[Planned]) -> None:
        async with self._slots:
            route, body, headers = request(items)
            started = time.monotonic()
            for item in items:
                self.posted[item.event_id] = started
            for _ in range(ATTEMPTS):
                answer = await post(self.client, self.service.url(route), body, headers)
                self.statuses[answer.status] += 1
                if answer.status != 429:
                    break
                await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
            if answer.status != 202:
                self.lost += len(items)

    async def run(self, planned: Sequence[Planned], rate: float, limit: float) -> int:
        """Post `planned` at `rate` events/s, for `limit` seconds at most; how many went."""
        started = time.monotonic()
        sent = 0
        while sent < len(planned) and time.monotonic() - started < limit:
            due = min(len(planned), int((time.monotonic() - started) * rate) + 1)
            batch, sent = planned[sent:due], due
            kubernetes = [item for item in batch if item.source == "kubernetes"]
            if kubernetes:
                self.spawn(self.send(kubernetes))
            for item in batch:
                if item.source != "kubernetes":
                    self.spawn(self.send([item]))
            await asyncio.sleep(TICK)  # the pace of the load, not a synchronization
        await asyncio.gather(*self._tasks)
        return sent


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    """What one run measured."""

    sent: int
    by_source: Counter[str]
    send_seconds: float
    processed_seconds: float
    statuses: Counter[int]
    lost: int
    latencies: list[float]  # seconds, one per event that made a single-event detection
    alerts: int
    correlation_alerts: int
    service_cpu: float
    bench_cpu: float
    load: float  # the machine's 1-minute load average when the load started
    service_latency_mean: float


async def measure(args: argparse.Namespace, directory: Path) -> Result:
    planned = plan(int(args.rate * args.seconds), args.seed, directory)
    receiver = Receiver()
    await receiver.start()
    generic = {source: {"secret": {"env": "FORWARDER_WHSEC"}} for source in FORWARDED}
    intake = {**ROUTES, "generic": {**ROUTES["generic"], **generic}}
    config = service_config(directory, [webhook_output("bench", receiver.url("/alerts"))], intake)
    service = DetectorService(config, directory, {"FORWARDER_WHSEC": FORWARDER_WHSEC})
    service.start()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY)
        ) as client:
            await service.ready(client)
            assert service.process is not None
            load = os.getloadavg()[0]
            cpu_before = cpu_seconds(service.process.pid), time.process_time()
            sender = Sender(client, service)
            started = time.monotonic()
            sent = await sender.run(planned, args.rate, 2 * args.seconds)
            send_seconds = time.monotonic() - started

            async def processed() -> bool:
                # every accepted request is one record; each is counted in when processed
                metrics = await service.metrics(client)
                accepted = metrics.value("detector_intake_records_total")
                read = metrics.value("detector_events_in_total")
                return accepted == read == sender.statuses[202]

            await wait_for(processed, 120, "the service to process every accepted record")
            processed_seconds = time.monotonic() - started
            service_cpu = cpu_seconds(service.process.pid) - cpu_before[0]
            bench_cpu = time.process_time() - cpu_before[1]

            async def delivered() -> bool:
                metrics = await service.metrics(client)
                alerts = metrics.value("detector_detections_total", staged="false")
                return (
                    metrics.value("detector_sink_outbox_depth") == 0
                    and metrics.value("detector_sink_deliveries_total") == alerts
                )

            await wait_for(delivered, 120, "every detection to reach the receiver")
            metrics: Metrics = await service.metrics(client)
    finally:
        code = await service.stop()
        await receiver.stop()
    assert code == 0, service.output()
    assert receiver.forged == 0, "every alert carried a valid signature"
    first: dict[str, float] = {}
    correlations = 0
    for arrival in receiver.arrivals:
        if "window" in arrival.detection:  # a correlation's: decided by later events
            correlations += 1
            continue
        [evidence] = arrival.detection["evidence"]
        first[evidence["id"]] = min(arrival.at, first.get(evidence["id"], arrival.at))
    count = metrics.value("detector_detection_latency_seconds_count")
    return Result(
        sent=sent,
        by_source=Counter(item.source for item in planned[:sent]),
        send_seconds=send_seconds,
        processed_seconds=processed_seconds,
        statuses=sender.statuses,
        lost=sender.lost,
        latencies=[at - sender.posted[event] for event, at in first.items()],
        alerts=len(receiver.arrivals),
        correlation_alerts=correlations,
        service_cpu=service_cpu,
        bench_cpu=bench_cpu,
        load=load,
        service_latency_mean=metrics.value("detector_detection_latency_seconds_sum") / count,
    )


def report(args: argparse.Namespace, result: Result) -> str:
    ms = [value * 1000 for value in result.latencies]
    requests = sum(result.statuses.values())
    sustained = (result.sent - result.lost) / result.processed_seconds
    rows = [
        "| offered events/s | events posted | requests | 429s | sustained events/s "
        "| events with a detection | alerts (correlations) | p50 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {args.rate:,.0f} | {result.sent:,} | {requests:,} | {result.statuses[429]:,} "
        f"| {sustained:,.0f} | {len(ms):,} | {result.alerts:,} ({result.correlation_alerts:,}) "
        f"| {percentile(ms, 0.5):.1f} | {percentile(ms, 0.99):.1f} | {max(ms):.1f} |",
    ]
    now = datetime.now(UTC)
    return "\n".join(
        [
            f"## Live service detection latency, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.service_latency')}`",
            "- service: `detector run` (subprocess, uvloop, log level INFO) with the shipped "
            "rule pack and one signed webhook sink (durable outbox) to a receiver in the "
            "benchmark process that verifies each signature; all on 127.0.0.1, the load "
            f"generator sharing the cores (1-minute load average at the start: {result.load:.2f})",
            f"- load: a generated mix (seed {args.seed}) posted over {result.send_seconds:.1f} s; "
            f"by source {dict(result.by_source.most_common())}; the Kubernetes events of each "
            f"{TICK * 1000:.0f} ms tick as one EventList, every other record its own request "
            f"(at most {CONCURRENCY} in flight); answers {dict(sorted(result.statuses.items()))}; "
            f"{result.lost:,} events never accepted",
            "- latency: start of the post carrying an event → arrival of its first single-event "
            "detection at the receiver (correlation alerts wait for later events and are left "
            "out); sustained: accepted events ÷ time from the first post until the service "
            "had read them all",
            f"- CPU: service {result.service_cpu:.1f} s "
            f"({result.service_cpu / result.sent * 1e6:,.0f} µs per event), load generator and "
            f"receiver {result.bench_cpu:.1f} s; the service's own "
            "`detector_detection_latency_seconds` (acceptance → handed to the sinks) mean "
            f"{result.service_latency_mean * 1000:.2f} ms",
            "",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second offered")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as directory:
        result = asyncio.run(measure(args, Path(directory)))
    text = report(args, result)
    print(text)
    if not args.no_record:
        record(text)


if __name__ == "__main__":
    main()
