"""A drill: a shipped incident scenario sent to a running service as if it were happening
now, and which of its expected detections came out, and how fast."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import aiohttp

from detector.drill.client import IntakeClient
from detector.drill.scenario import Expected, Scenario, group_key
from detector.drill.shift import RecordShifter
from detector.drill.watch import OutputWatcher
from detector.pipeline import Pacer
from detector.timestamps import TimestampError, from_iso

#: how often the output files are read while waiting
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Arrival:
    expected: Expected
    #: seconds from the start of the drill
    after_start: float
    #: seconds from sending the record at the detection's event time (None: not sent here)
    latency: float | None


@dataclass
class DrillResult:
    shift: timedelta
    sent: int
    arrived: list[Arrival] = field(default_factory=list)
    missing: list[Expected] = field(default_factory=list)
    #: detections in the outputs that the scenario does not expect
    unexpected: Counter[str] = field(default_factory=Counter)


def shift_for(scenario: Scenario, now: datetime) -> timedelta:
    """How far the scenario moves so that its last record is at `now`, in whole seconds:
    some vendors write no fraction of a second (CloudTrail), so a finer shift could not
    be written back exactly."""
    return timedelta(seconds=int((now - scenario.end).total_seconds()))


async def run_drill(
    scenario: Scenario,
    base_url: str,
    secrets: Mapping[str, str],
    watch: Sequence[Path],
    deadline: float,
    speed: float | None = None,
    local: tzinfo = UTC,
    progress: Callable[[str], None] = lambda _line: None,
    tls: ssl.SSLContext | None = None,
) -> DrillResult:
    """Send every record of `scenario` (shifted to end now, paced at `speed` times real
    time or as fast as accepted), then wait up to `deadline` seconds after the last one
    for the expected detections to appear in the `watch` files."""
    watcher = OutputWatcher(watch)
    started = time.monotonic()
    delta = shift_for(scenario, datetime.now(UTC))
    result = DrillResult(delta, 0)
    sent_at: dict[datetime, float] = {}
    waiting = Counter(item.key for item in scenario.expected)
    by_key = {item.key: item for item in scenario.expected}

    def collect() -> None:
        now = time.monotonic()
        for detection in watcher.poll():
            key = (str(detection["rule"]["id"]), group_key(detection))
            if waiting[key] <= 0:
                result.unexpected[str(detection["rule"]["title"])] += 1
                continue
            waiting[key] -= 1
            when = _time(detection)
            sent = sent_at.get(when) if when is not None else None
            latency = None if sent is None else now - sent
            result.arrived.append(Arrival(by_key[key], now - started, latency))

    async def watching() -> None:
        while True:
            collect()
            await asyncio.sleep(POLL_SECONDS)

    watcher_task = asyncio.create_task(watching())
    session = aiohttp.ClientSession()
    try:
        client = IntakeClient(session, base_url, secrets, tls)
        await _send(client, scenario, speed, local, delta, sent_at, result, progress)
        progress(f"sent {result.sent} records; waiting up to {deadline:g}s for detections")
        end = time.monotonic() + deadline
        while sum(waiting.values()) > 0 and time.monotonic() < end:
            await asyncio.sleep(POLL_SECONDS)
    finally:
        watcher_task.cancel()
        await session.close()
    collect()
    result.missing = [by_key[key] for key, left in waiting.items() for _ in range(left)]
    return result


async def _send(
    client: IntakeClient,
    scenario: Scenario,
    speed: float | None,
    local: tzinfo,
    delta: timedelta,
    sent_at: dict[datetime, float],
    result: DrillResult,
    progress: Callable[[str], None],
) -> None:
    """Post every record, shifted by `delta`, noting when each event time was sent."""
    pacer = Pacer(speed) if speed is not None else None
    shifters: dict[str, RecordShifter] = {}
    for record in scenario.records:
        if pacer is not None:
            wait = pacer.delay(record.time)
            if wait > 0:
                await asyncio.sleep(wait)
        shifter = shifters.get(record.source)
        if shifter is None:
            shifter = shifters[record.source] = RecordShifter(record.source, delta, local)
        await client.send(record.source, shifter.shift(record.data))
        sent_at.setdefault(record.time + delta, time.monotonic())
        result.sent += 1
        if result.sent % 500 == 0:
            progress(f"sent {result.sent}/{len(scenario.records)} records")


def _time(detection: dict[str, object]) -> datetime | None:
    try:
        return from_iso(detection.get("@timestamp"))
    except TimestampError:
        return None
