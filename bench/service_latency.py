"""Detection latency of the live service: `detector run` under a steady load over HTTP.

`detector run` runs as a subprocess with the shipped rule pack and one signed webhook
sink; the sink's endpoint is a receiver in this process that verifies every signature.
Everything listens on 127.0.0.1. A generated audit mix (`bench.generate`) is posted at
each offered rate in turn (a fresh service for each) for a bounded time, each record the
way its sender posts it: Kubernetes events as one `EventList` per tick (the API server's
webhook backend batches), GitHub Actions deliveries signed with `X-Hub-Signature-256`
and GitLab stream events with the verification token, one request each, and the audit
records of GitHub, the registry and CloudTrail as Standard Webhooks posts to
`/intake/generic/<source>` from a log forwarder: JSON lines, the records of one tick in
one post (`--forwarder batched`, the default: forwarders batch) or one post per record
(`--forwarder per-record`). The bodies and signatures are made before the load starts
and posted by `bench.http_load` in a process of its own. A 429 is posted again after
its `Retry-After`, and counted.

Latency runs from the time a post was due (the tick its records belong to) to the
arrival of the first detection of an event at the receiver, for every event that makes
one; the sustained rate is the events the service read over the time from the first
post until it had them all. A rate is kept up with when every post was accepted and
the service had read everything within `KEPT_UP_SECONDS` of the last answer (its queue
did not grow). Appends a dated section to BENCHMARKS.md.

    python -m bench.service_latency --rate 2000,5000,10000,20000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import pickle
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

from bench.common import command, filesystem_of, machine, record
from bench.generate import generate
from bench.http_load import CONCURRENCY, Request, read_result
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
    service_config,
    wait_for,
    webhook_output,
)
from tests.intake.support import github_headers, standard_headers

#: Standard Webhooks secret of the forwarder's generic routes.
FORWARDER_WHSEC = "whsec_" + base64.b64encode(b"bench-forwarder-signing-key-01").decode()
FORWARDED = ("github", "registry", "cloudtrail")
TICK = 0.02  # seconds between two rounds of posts
#: a rate is kept up with when the service has read everything this soon after the load
KEPT_UP_SECONDS = 1.0
#: seconds between two looks at the queue during the load (each costs the service a
#: /metrics page, which Prometheus would ask for every 15 s or so) ...
SCRAPE_EVERY = 2.0
#: ... and at the end, waiting for it to finish
DRAIN_POLL = 0.1
WATCHED = (
    "detector_intake_queue_records",
    "detector_intake_records_total",
    "detector_events_in_total",
    "detector_detections_total",
    "detector_sink_outbox_depth",
    "detector_sink_deliveries_total",
)


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
    if first.source in FORWARDED:  # JSON lines from a log forwarder
        body = b"\n".join(item.data for item in items) + b"\n"
        headers = standard_headers(body, FORWARDER_WHSEC, f"msg_{uuid.uuid4().hex}")
        return f"generic/{first.source}", body, headers
    assert len(items) == 1, "GitLab and GitHub post one event per request"
    if first.source == "gitlab":
        return "gitlab", first.data, gitlab_headers(first.data)
    assert first.source == "github_actions", first.source
    kind = "workflow_job" if "workflow_job" in orjson.loads(first.data) else "workflow_run"
    return "github", first.data, github_headers(first.data, kind, str(uuid.uuid4()))


def schedule(
    planned: Sequence[Planned], rate: float, batched: bool
) -> tuple[list[Request], list[list[str]]]:
    """The posts of `planned` at `rate` events/s, tick by tick, and the event ids of each:
    a tick's Kubernetes events in one `EventList`, its records of each forwarded source
    in one body when `batched`, every other record on its own."""
    requests: list[Request] = []
    ids: list[list[str]] = []
    per_tick = rate * TICK
    tick = 0
    while int(tick * per_tick) < len(planned):
        due = planned[int(tick * per_tick) : int((tick + 1) * per_tick)]
        groups: dict[str, list[Planned]] = {}
        for item in due:
            together = item.source == "kubernetes" or (batched and item.source in FORWARDED)
            if together:
                groups.setdefault(item.source, []).append(item)
            else:
                groups[item.event_id] = [item]
        for items in groups.values():
            route, body, headers = request(items)
            requests.append(Request(tick * TICK, route, body, headers, len(items)))
            ids.append([item.event_id for item in items])
        tick += 1
    return requests, ids


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def scrape(service: DetectorService, client: aiohttp.ClientSession) -> dict[str, float]:
    """The few values the load watches, by a scan of the /metrics lines: the full parser
    took ~30 ms a scrape of the receiver's event loop, where alerts arrive and are timed.
    `detector_detections_total` counts unstaged detections only."""
    async with client.get(service.metrics_url) as response:
        text = await response.text()
    values = dict.fromkeys(WATCHED, 0.0)
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        name = key.partition("{")[0]
        if name in values and 'staged="true"' not in key:
            values[name] += float(value)
    return values


def bucket_percentile(metrics: Metrics, histogram: str, share: float) -> float:
    """The upper bound of the first bucket of `histogram` holding `share` of its samples."""
    buckets = sorted(
        (float(labels["le"]), value)
        for name, labels, value in metrics.samples
        if name == f"{histogram}_bucket"
    )
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= share * total)


def bound(seconds: float) -> str:
    """A histogram bucket's upper bound in ms, as a table shows it."""
    return "over 5 s" if seconds == float("inf") else f"≤ {seconds * 1000:,.0f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process `pid` and of its live children (the
    service's worker processes), from Linux /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that just ended
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or its parent
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    """What one offered rate measured."""

    rate: float
    events: int
    requests: int
    by_source: Counter[str]
    send_seconds: float
    processed_seconds: float
    statuses: Counter[int]
    lost: int  # events whose post never got a 202
    peak_queue: int  # records waiting in the intake queue, highest sample
    latencies: list[float]  # seconds, one per event that made a single-event detection
    sender_late: list[float]  # seconds from each post's due time to its start
    alerts: int
    correlation_alerts: int
    service_cpu: float
    sender_cpu: float
    load: float  # the machine's 1-minute load average when the load started
    service_latency_mean: float
    service_latency_p99: float  # the upper bound of the histogram bucket holding the p99

    @property
    def sustained(self) -> float:
        return (self.events - self.lost) / self.processed_seconds

    @property
    def kept_up(self) -> bool:
        drained = self.processed_seconds - self.send_seconds <= KEPT_UP_SECONDS
        return drained and self.lost == 0 and not self.statuses[429]


async def measure(
    rate: float, planned: Sequence[Planned], batched: bool, workers: int, directory: Path
) -> Result:
    requests, ids = schedule(planned, rate, batched)
    plan_path, result_path = directory / "requests.pickle", directory / "sent.pickle"
    plan_path.write_bytes(pickle.dumps(requests))
    # What this benchmark wrote (the generated mix, the plan: hundreds of MB) on disk
    # before the load, not written back during it, slowing the outbox's syncs down.
    os.sync()
    receiver = Receiver()
    await receiver.start()
    generic = {source: {"secret": {"env": "FORWARDER_WHSEC"}} for source in FORWARDED}
    intake = {**ROUTES, "generic": {**ROUTES["generic"], **generic}}
    config = service_config(directory, [webhook_output("bench", receiver.url("/alerts"))], intake)
    config["service"]["workers"] = workers
    service = DetectorService(config, directory, {"FORWARDER_WHSEC": FORWARDER_WHSEC})
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)
            assert service.process is not None
            load = os.getloadavg()[0]
            cpu_before = cpu_seconds(service.process.pid)
            sender = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.http_load", str(plan_path), str(result_path),
                service.base,
            )  # fmt: skip
            peak_queue = 0
            while sender.returncode is None:
                queued = (await scrape(service, client))["detector_intake_queue_records"]
                peak_queue = max(peak_queue, int(queued))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sender.wait(), SCRAPE_EVERY)
            assert sender.returncode == 0, "the load generator failed"
            sent = read_result(result_path)
            accepted = sum(r.events for r, ok in zip(requests, sent.accepted, strict=True) if ok)
            started = sent.due[0]

            async def processed() -> bool:
                values = await scrape(service, client)
                # the sender is done: every record the intake accepted is counted in
                accepted = values["detector_intake_records_total"]
                return values["detector_events_in_total"] == accepted

            await wait_for(processed, 600, "the service to process every record", DRAIN_POLL)
            processed_seconds = time.monotonic() - started
            service_cpu = cpu_seconds(service.process.pid) - cpu_before

            async def delivered() -> bool:
                values = await scrape(service, client)
                return (
                    values["detector_sink_outbox_depth"] == 0
                    and values["detector_sink_deliveries_total"]
                    == values["detector_detections_total"]
                )

            await wait_for(delivered, 300, "every detection to reach the receiver", DRAIN_POLL)
            metrics = await service.metrics(client)
    finally:
        code = await service.stop()
        await receiver.stop()
    assert code == 0, service.output()
    assert receiver.forged == 0, "every alert carried a valid signature"
    due = {event: at for at, events in zip(sent.due, ids, strict=True) for event in events}
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
        rate=rate,
        events=len(planned),
        requests=len(requests),
        by_source=Counter(item.source for item in planned),
        send_seconds=sent.seconds,
        processed_seconds=processed_seconds,
        statuses=sent.statuses,
        lost=len(planned) - accepted,
        peak_queue=peak_queue,
        latencies=[at - due[event] for event, at in first.items()],
        sender_late=sent.late,
        alerts=len(receiver.arrivals),
        correlation_alerts=correlations,
        service_cpu=service_cpu,
        sender_cpu=sent.cpu,
        load=load,
        service_latency_mean=metrics.value("detector_detection_latency_seconds_sum") / count,
        service_latency_p99=bucket_percentile(metrics, "detector_detection_latency_seconds", 0.99),
    )


def report(args: argparse.Namespace, results: Sequence[Result]) -> str:
    rows = [
        "| offered events/s | events | requests | 429s | posted over s | sustained events/s "
        "| read within s of the load | peak queue records | kept up | events with a "
        "detection | alerts (correlations) | p50 ms | p99 ms | max ms | service CPU µs/event "
        "| sender CPU µs/event | sender late p99 ms | service's own latency mean ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        ms = [value * 1000 for value in result.latencies] or [float("nan")]
        rows.append(
            f"| {result.rate:,.0f} | {result.events:,} | {result.requests:,} "
            f"| {result.statuses[429]:,} | {result.send_seconds:.1f} | {result.sustained:,.0f} "
            f"| {result.processed_seconds - result.send_seconds:.1f} | {result.peak_queue:,} "
            f"| {'yes' if result.kept_up else 'no'} | {len(result.latencies):,} "
            f"| {result.alerts:,} ({result.correlation_alerts:,}) "
            f"| {percentile(ms, 0.5):.1f} | {percentile(ms, 0.99):.1f} | {max(ms):.1f} "
            f"| {result.service_cpu / result.events * 1e6:,.0f} "
            f"| {result.sender_cpu / result.events * 1e6:,.0f} "
            f"| {percentile(result.sender_late, 0.99) * 1000:.1f} "
            f"| {result.service_latency_mean * 1000:.2f} "
            f"| {bound(result.service_latency_p99)} |"
        )
    kept = [result.rate for result in results if result.kept_up]
    highest = f"{max(kept):,.0f} events/s" if kept else "none of the offered rates"
    forwarder = (
        f"the records of each source per {TICK * 1000:.0f} ms tick as one JSON-lines body"
        if args.forwarder == "batched"
        else "one record per request"
    )
    now = datetime.now(UTC)
    return "\n".join(
        [
            f"## Live service detection latency, {now:%Y-%m-%d %H:%M} UTC",
            "",
            machine(),
            f"- command: `{command('bench.service_latency')}`",
            "- service: `detector run` (subprocess, uvloop, log level INFO"
            + (
                f"; {args.workers} worker processes normalize and match, its own process "
                "serves the intake, correlates and alerts"
                if args.workers > 1
                else "; one process"
            )
            + ") with the shipped rule pack and one signed webhook sink (outbox with group "
            f"commit, fsynced on {args.filesystem}) to a receiver in the benchmark process "
            "that verifies each signature; a fresh service for each rate; all on 127.0.0.1, "
            "the load generator (`bench.http_load`, "
            "its own process, bodies and signatures made before the load) and the receiver "
            "sharing the two cores with it; 1-minute load average at the start of each rate: "
            + ", ".join(f"{result.load:.2f}" for result in results),
            f"- load: a generated mix (seed {args.seed}), {args.seconds:g} s per rate; by "
            f"source {dict(results[-1].by_source.most_common())} at the highest rate; the "
            f"Kubernetes events of each {TICK * 1000:.0f} ms tick as one EventList, GitLab "
            "and GitHub Actions one event per request, the forwarded sources (GitHub audit, "
            f"registry, CloudTrail) {forwarder}; at most {CONCURRENCY} posts in flight",
            "- latency: the tick a post was due → arrival of the first single-event "
            "detection of each of its events at the receiver (correlation alerts wait for "
            "later events and are left out); sustained: accepted events ÷ time from the first "
            "post until the service had read them all; kept up: every post accepted (no 429) "
            f"and everything read within {KEPT_UP_SECONDS:g} s of the last answer",
            "- sender late: from a post's due time until the load generator started it (its "
            "own CPU, or all its connections busy); part of the latency, not the service's; "
            "CPU per event: user + system seconds of the process (with its workers) over the "
            "load ÷ events; "
            "the service's own `detector_detection_latency_seconds`: acceptance → handed to "
            "the sinks (its p99: the bucket bound that holds it)",
            f"- highest offered rate kept up with: {highest}",
            "",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rate",
        type=lambda text: [float(rate) for rate in text.split(",")],
        default=[1000.0],
        help="events per second offered, comma-separated for several runs",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each load lasts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--forwarder",
        choices=("batched", "per-record"),
        default="batched",
        help="how the log forwarder posts the GitHub, registry and CloudTrail records",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the service's `service.workers`: above 1, worker processes normalize and match",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the service's outboxes and checkpoint go (default: the temporary "
        "directory); the sink's latency includes this file system's fsync",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-service-", dir=args.state_dir) as directory:
        args.filesystem = filesystem_of(Path(directory))
        planned = plan(int(max(args.rate) * args.seconds), args.seed, Path(directory))
        for rate in args.rate:
            run = Path(directory) / f"rate-{rate:g}"
            run.mkdir()
            events = planned[: int(rate * args.seconds)]
            batched = args.forwarder == "batched"
            result = asyncio.run(measure(rate, events, batched, args.workers, run))
            print(f"{rate:,.0f} events/s offered: {result.sustained:,.0f} sustained", flush=True)
            results.append(result)
    text = report(args, results)
    print(text)
    if not args.no_record:
        record(text)


if __name__ == "__main__":
    main()
