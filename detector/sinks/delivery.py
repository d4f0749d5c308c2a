"""The delivery worker of one sink: from its outbox to its endpoint, until delivered or
dead-lettered.

One worker per sink, each its own asyncio task, so a slow or dead endpoint only delays
its own sink; `enqueue` and `submit` only write the local outbox: `enqueue` returns once
the detection is on disk, `submit` at once, and the worker's committer task makes what
was submitted durable with one fsync in a thread for all of it (group commit), the event
loop going on meanwhile. A detection is sent while that sync runs (the outbox says why
that loses nothing); `committed` waits for it. One attempt runs at a time, for one
detection or, for a sink with a bulk API, up to its `batch_size` with an outcome for
each. After a retryable failure the sink pauses (jittered exponential
backoff over its consecutive failures, or the endpoint's `Retry-After` when that is
longer) and the failed detection moves behind the others, so one detection the endpoint
keeps failing on does not hold up the rest. A rejection goes to the dead letters at
once; so does every detection still pending `deadline` seconds after it was enqueued
(the clock runs across restarts: the enqueue time is in the outbox).

What a sink is handed is redacted first, like everything the engine writes out.

`stop` takes no new attempt, lets the one in flight finish within a timeout (or cuts
it off: it stays pending and is sent again after a restart), and closes the outbox
with whatever is pending still in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from pathlib import Path
from typing import Literal

from detector.detections import Detection
from detector.redact import redact
from detector.sinks.base import Delivered, Outcome, Rejected, Retry, Sink
from detector.sinks.deadletters import SinkDeadLetters
from detector.sinks.metrics import SinkMetrics
from detector.sinks.outbox import Outbox, Pending
from detector.sinks.settings import RetryPolicy

log = logging.getLogger(__name__)

DEAD_LETTERS = "deadletter.jsonl"
#: seconds between two attempts to sync an outbox whose fsync failed
COMMIT_RETRY_SECONDS = 1.0


def backoff(policy: RetryPolicy, failures: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after `failures` failures in a row: the exponential
    step (capped) jittered into its upper half, or `retry_after` when that is longer."""
    step = min(policy.cap, policy.base * 2.0 ** min(failures - 1, 64))
    delay = random.uniform(step / 2, step)
    return delay if retry_after is None else max(delay, retry_after)


def redacted(detection: Detection) -> Detection:
    """`detection` with secrets masked: its message, evidence and group quote the logs,
    and what the engine writes out (outbox, endpoints, dead letters) is redacted."""
    return Detection.model_validate(redact(detection.to_dict()))


class DeliveryWorker:
    """Delivers `sink`'s outbox in `directory` (created if needed)."""

    def __init__(
        self,
        sink: Sink,
        directory: Path,
        policy: RetryPolicy,
        metrics: SinkMetrics,
        remember: float,
    ) -> None:
        self.sink = sink
        self.policy = policy
        self.outbox = Outbox(directory, remember)
        self.dead_letters = SinkDeadLetters(directory / DEAD_LETTERS)
        self._metrics = metrics
        self._failures = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()  # lines wait for the committer
        self._committed = asyncio.Event()  # pulsed after each commit
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self._depth = metrics.outbox_depth.labels(self.name)
        self._delivered = metrics.deliveries.labels(self.name)
        self._show_depth()

    @property
    def name(self) -> str:
        return self.sink.name

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def enqueue(self, detection: Detection) -> bool:
        """Hand `detection` over (durable on return); False if this sink already has it.
        Call it from the event loop's thread."""
        if self._closed:
            raise RuntimeError(f"sink {self.name} is stopped")
        added = self.outbox.add(redacted(detection))
        if added:
            self._show_depth()
            self._wake.set()
        return added

    def submit(self, detection: Detection) -> bool:
        """Hand `detection` over without waiting for the disk: sent at once, durable with
        the next group commit (`committed` waits for it). False if this sink already has
        it. Call it from the event loop's thread."""
        if self._closed:
            raise RuntimeError(f"sink {self.name} is stopped")
        added = self.outbox.put(redacted(detection))
        if added:
            self._show_depth()
            self._dirty.set()
            self._wake.set()
        return added

    async def committed(self) -> None:
        """Return once everything handed over so far is on disk."""
        target = self.outbox.written
        while self.outbox.synced < target:
            if self._committer is None or self._committer.done():
                self.outbox.sync()  # no committer (not started, or failed): sync here
                return
            self._dirty.set()
            await self._committed.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sink {self.name}")
            self._task.add_done_callback(self._ended)
            self._committer = asyncio.create_task(self._commit(), name=f"outbox {self.name}")
            self._committer.add_done_callback(self._ended)

    async def _commit(self) -> None:
        """Group commit: while lines wait, one fsync (in a thread) for all of them; ends
        with the stop once nothing waits."""
        while True:
            if not self.outbox.dirty:
                if self.stopping:
                    return
                self._dirty.clear()
                await self._dirty.wait()
                continue
            try:
                await self.outbox.commit()
            except OSError as exc:  # the disk may come back; `committed` waits meanwhile
                log.error("sink %s: outbox not synced, trying again: %s", self.name, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), COMMIT_RETRY_SECONDS)
                if self.stopping:
                    return
                continue
            self._committed.set()
            self._committed.clear()

    def _ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("sink %s stopped delivering: %s", self.name, self.sink.scrub(repr(error)))

    async def stop(self, timeout: float) -> None:
        """Stop after the attempt in flight, waiting at most `timeout` seconds for it;
        then the committer ends and what it had not synced is synced on close."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        self._dirty.set()
        try:
            if self._task is not None:
                done, _ = await asyncio.wait({self._task}, timeout=timeout)
                if not done:
                    log.warning("sink %s: attempt in flight cut off by the stop", self.name)
                    self._task.cancel()
                # A worker that failed has been logged by `_ended` already.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            if self._committer is not None:
                self._dirty.set()
                # Not cancelled: the outbox must stay open until its fsync is over.
                with contextlib.suppress(Exception):
                    await self._committer
        finally:
            self._closed = True
            await self.sink.close()
            self.outbox.close()
            self.dead_letters.close()

    async def _run(self) -> None:
        while not self.stopping:
            batch = self._next()
            if not batch:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._settle_batch(batch, await self._attempt(batch))
            if delay is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    def _next(self) -> list[Pending]:
        """The next detections to try (up to the sink's batch size), after dead-lettering
        those past their deadline."""
        for pending in self.outbox.enqueued_before(time.time() - self.policy.deadline):
            self._dead_letter(pending, self._late(pending), "deadline")
        return self.outbox.head(self.sink.batch_size)

    def _late(self, pending: Pending) -> str:
        return (
            f"not delivered within the deadline of {self.policy.deadline:g}s"
            f" ({pending.attempts} attempts; last error: {pending.last_error or 'none'})"
        )

    async def _attempt(self, batch: list[Pending]) -> list[Outcome]:
        for pending in batch:
            pending.attempts += 1
        detections = [pending.detection for pending in batch]
        try:
            outcomes = await asyncio.wait_for(self.sink.send_batch(detections), self.policy.timeout)
        except TimeoutError:
            return [Retry(f"no answer within {self.policy.timeout:g}s")] * len(batch)
        except Exception as exc:  # a faulty sink must not end deliveries; retried like a failure
            reason = self.sink.scrub(f"{type(exc).__name__}: {exc}")
            # The frames without the message, which the sink's secrets could be part of.
            trace = "".join(traceback.format_tb(exc.__traceback__))
            log.error("sink %s: sending failed unexpectedly: %s\n%s", self.name, reason, trace)
            return [Retry(reason)] * len(batch)
        if len(outcomes) != len(batch):
            reason = f"the sink answered {len(outcomes)} outcomes for {len(batch)} detections"
            log.error("sink %s: %s", self.name, reason)
            return [Retry(reason)] * len(batch)
        return outcomes

    def _settle_batch(self, batch: list[Pending], outcomes: list[Outcome]) -> float | None:
        """Record each outcome; the pause before the next attempt, if any is to be retried.
        A batch counts as one failure for the backoff, however many of it failed."""
        retried = [
            (pending, outcome)
            for pending, outcome in zip(batch, outcomes, strict=True)
            if self._settle(pending, outcome)
        ]
        if not retried:
            if any(not isinstance(outcome, Retry) for outcome in outcomes):
                self._failures = 0
            return None
        self._failures += 1
        afters = [o.after for _, o in retried if isinstance(o, Retry) and o.after is not None]
        delay = backoff(self.policy, self._failures, max(afters, default=None))
        for pending, outcome in retried:
            log.warning(
                "sink %s: attempt %d for %s failed (%s); next attempt in %.2fs",
                self.name,
                pending.attempts,
                pending.id,
                outcome.reason if isinstance(outcome, Retry) else "",
                delay,
            )
        return delay

    def _settle(self, pending: Pending, outcome: Outcome) -> bool:
        """Record `outcome`; True when the detection is to be tried again."""
        if isinstance(outcome, Delivered):
            self.outbox.settle(pending.id, "delivered")
            self._delivered.inc()
            self._dirty.set()
            self._show_depth()
            log.debug("sink %s: delivered %s", self.name, pending.id)
            return False
        self._metrics.failures.labels(self.name).inc()
        if isinstance(outcome, Rejected):
            self._dead_letter(pending, outcome.reason, "rejected")
            return False
        pending.last_error = outcome.reason
        if pending.enqueued_at < time.time() - self.policy.deadline:
            self._dead_letter(pending, self._late(pending), "deadline")
            return False
        self.outbox.to_back(pending.id)
        self._metrics.retries.labels(self.name).inc()
        return True

    def _dead_letter(
        self, pending: Pending, reason: str, kind: Literal["rejected", "deadline"]
    ) -> None:
        self.dead_letters.write(self.name, pending, reason, time.time())
        self.outbox.settle(pending.id, "dead_letter")
        self._dirty.set()
        self._metrics.dead_letters.labels(self.name, kind).inc()
        self._show_depth()
        log.error("sink %s: %s dead-lettered: %s", self.name, pending.id, reason)

    def _show_depth(self) -> None:
        self._depth.set(len(self.outbox))
