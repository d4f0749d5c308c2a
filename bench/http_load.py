"""The load generator of bench/service_latency.py, in a process of its own.

The requests come ready (bodies serialized, signatures computed) in a pickle file, so
what this process does while the load runs is only HTTP: each request is posted at its
due time (at most `CONCURRENCY` in flight, a 429 posted again after its `Retry-After`),
and when each was due, how each was answered and the CPU this process used are written
to the result file. Its own process, so that it shares the cores with the service the
way any other sender would, and its event loop never delays the receiver's clock.

    python -m bench.http_load PLAN RESULT BASE_URL
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CONCURRENCY = 64  # posts in flight at most
ATTEMPTS = 5  # posts of one body, 429s included


@dataclass(frozen=True, slots=True)
class Request:
    """One post: when it is due (seconds after the start), where, what, and how many
    events it carries."""

    due: float
    route: str
    body: bytes
    headers: dict[str, str]
    events: int


@dataclass
class Sent:
    """What the load did: per request the time.monotonic() it was due (a system-wide
    clock, so the receiver's arrival times compare with it) and whether it was accepted."""

    due: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)  # seconds from due to the first post
    accepted: list[bool] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0  # from the start until the last answer
    cpu: float = 0.0  # CPU seconds of this process


async def send(base: str, requests: list[Request]) -> Sent:
    sent = Sent(late=[0.0] * len(requests), accepted=[False] * len(requests))
    slots = asyncio.Semaphore(CONCURRENCY)
    tasks: list[asyncio.Task[None]] = []
    cpu = time.process_time()

    async def post(client: aiohttp.ClientSession, index: int, request: Request) -> None:
        async with slots:
            sent.late[index] = time.monotonic() - sent.due[index]
            for _ in range(ATTEMPTS):
                async with client.post(
                    f"{base}/intake/{request.route}", data=request.body, headers=request.headers
                ) as answer:
                    await answer.read()
                    sent.statuses[answer.status] += 1
                    if answer.status != 429:
                        sent.accepted[index] = answer.status == 202
                        return
                    retry = float(answer.headers.get("Retry-After", "1"))
                await asyncio.sleep(retry)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as client:
        started = time.monotonic()
        for index, request in enumerate(requests):
            due = started + request.due
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of the load, not a synchronization
            sent.due.append(due)
            tasks.append(asyncio.create_task(post(client, index, request)))
        await asyncio.gather(*tasks)
        sent.seconds = time.monotonic() - started
    sent.cpu = time.process_time() - cpu
    return sent


def main() -> None:
    plan, result, base = sys.argv[1:4]
    requests: list[Request] = pickle.loads(Path(plan).read_bytes())
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        sent = asyncio.run(send(base, requests))
    else:
        sent = uvloop.run(send(base, requests))
    # builtins only: this module runs as __main__ here, its classes are not the reader's
    fields = (sent.due, sent.late, sent.accepted, dict(sent.statuses), sent.seconds, sent.cpu)
    Path(result).write_bytes(pickle.dumps(fields))


def read_result(path: Path) -> Sent:
    """The `Sent` that `main` wrote to `path`."""
    due, late, accepted, statuses, seconds, cpu = pickle.loads(path.read_bytes())
    return Sent(due, late, accepted, Counter(statuses), seconds, cpu)


if __name__ == "__main__":
    main()
