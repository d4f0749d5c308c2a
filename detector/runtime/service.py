"""`detector run`: the embedded runtime as a long-running service.

One asyncio process: the HTTP intake puts accepted records on a byte-bounded queue; a
consumer normalizes, matches and correlates them; detections go to the sinks' durable
outboxes (or, for rules with `status: experimental`, to the staging file only). SIGTERM
or SIGINT stops it gracefully: the intake answers 503 and stops, the queue drains, the
correlation state is checkpointed, the sinks finish their attempts in flight. SIGHUP,
and any change of a file under the rule paths (watched, debounced), reloads the rules: the
new set is compiled off the event loop and swapped in between two records only if it
loads without errors, taking over the correlation state of every correlation whose
definition is unchanged (`CorrelationEngine.adopt`); a set with errors is logged, rule by
rule, and the running set stays.

A record whose processing fails unexpectedly (a bug, an unwritable staging file) is
dead-lettered with the error and the stream goes on. If even that fails, the service
stops as on SIGTERM and exits with an error instead of accepting records it cannot
process. The correlation state is also saved every `checkpoint_every_seconds`, so a
crash loses at most that much of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from watchfiles import Change, DefaultFilter, awatch

from detector.config import ConfigError, Settings
from detector.correlate import checkpoint
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.detections import Detection
from detector.events import Event
from detector.intake.queue import QueueClosedError, RecordQueue
from detector.intake.server import IntakeServer
from detector.normalize import NormalizeStage, SourceRegistry
from detector.normalize.builtin import build_registry
from detector.parallel import Results, correlate
from detector.respond.factory import describe_responders, open_responder
from detector.respond.http import add_action_routes
from detector.respond.worker import ResponderWorker
from detector.runtime.errors import PipelineFailedError
from detector.runtime.logs import configure_logging
from detector.runtime.metrics import PipelineMetrics, reason_label
from detector.runtime.queue import ArrivalQueue
from detector.runtime.ruleset import RuleSet, build_rule_set, compile_rule_set, freeze_heap
from detector.runtime.workers import TASK_BYTES, TASK_RECORDS, LiveWorkers
from detector.sinks.dispatcher import Dispatcher
from detector.sinks.factory import build_dispatcher
from detector.sources.follow import Follower, Positions
from detector.sources.records import RawRecord

log = logging.getLogger("detector.service")

#: records the consumer takes off the queue in one step, at most, and their footprint
#: (or one record's): memory held beside the queue's own bound
CONSUME_BATCH = 4096
CONSUME_BYTES = 1 << 20
#: processing time after which the consumer lets the event loop run the intake and sinks
CONSUME_SLICE_SECONDS = 0.002
#: rule file changes are taken together until the paths are quiet this long (ms) ...
WATCH_QUIET_MS = 300
#: ... or for at most this long, so a checkout of many files is one reload
WATCH_DEBOUNCE_MS = 1600


class Service:
    """The live service: intake → normalize → detect → sinks, with metrics and health."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.metrics_registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.metrics_registry)
        self.registry = build_registry(settings.sources)
        identities = settings.identities.load(self.registry.names)
        self.normalize = NormalizeStage(self.registry, identities=identities)
        self.rules = build_rule_set(settings, self.registry)
        self._restore_checkpoint()
        self.queue = ArrivalQueue(settings.intake.queue_capacity_bytes)
        self.intake = IntakeServer(
            settings.intake,
            self.queue,
            sources=self.registry.names,
            registry=self.metrics_registry,
            environ=environ,
        )
        self.dispatcher: Dispatcher = build_dispatcher(settings.sinks, self.metrics_registry)
        self.responders = self._responders(environ)
        self.letters = DeadLetterFile(settings.service.dead_letter)
        self.followers = self._followers()
        self._following: list[asyncio.Task[None]] = []
        self._staging: IO[bytes] | None = None
        self._stopping = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._metrics_runner: web.AppRunner | None = None
        #: the worker processes (`service.workers` above 1), started by `run`
        self.workers: LiveWorkers | None = None
        #: a reloaded rule set with its workers, for the consumer to swap in between tasks
        #: (it sets the third once it has); a new future after each swap
        self._reloaded: asyncio.Future[tuple[RuleSet, LiveWorkers, asyncio.Future[None]]]
        #: workers of rule sets reloaded away, shutting down
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or the pipeline fails); then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        watcher = asyncio.create_task(self._watch_rules())
        reloader = asyncio.create_task(self._reload_on_request())
        await asyncio.sleep(0)  # the watcher's first step sets it up: before any record
        freeze_heap()
        await self.start()
        consumer = asyncio.create_task(self.consume())
        checkpoints = asyncio.create_task(self._checkpoint_periodically())
        log.info(
            "serving",
            extra={"port": self.intake.port, "rules": self.rules.rules},
        )
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait((stopping, consumer), return_when=asyncio.FIRST_COMPLETED)
        self._stopping.set()  # also when the consumer ended: no periodic save after the last
        await checkpoints
        reloader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloader
        await watcher  # it stops with `_stopping`
        await self.stop(consumer)

    async def start(self) -> None:
        await self._start_workers()  # before the intake opens
        self.dispatcher.start()
        if self.responders is not None:
            self.responders.start()
        await self.intake.start()
        self._following = [asyncio.create_task(f.run()) for f in self.followers]
        await self._start_metrics()

    async def stop(self, consumer: asyncio.Task[None]) -> None:
        """Stop intake, drain the queue, checkpoint, flush the sinks. `PipelineFailedError`
        after all that if the consumer failed."""
        log.info("stopping")
        await self._stop_following()
        await self.intake.stop()
        self.queue.close()
        failure = None
        try:
            await consumer
        except Exception as exc:
            failure = exc
            log.critical(
                "the pipeline failed: %d accepted records were not processed",
                len(self.queue),
                exc_info=exc,
            )
        if self.workers is not None:
            unused = [self._reloaded.result()[1]] if self._reloaded.done() else []
            await asyncio.gather(
                *(workers.shutdown() for workers in [self.workers, *unused]), *self._retiring
            )
        await self.dispatcher.committed()  # the detections the checkpoint has made
        self._save_checkpoint()
        if self.responders is not None:
            await self.responders.stop()
        await self.dispatcher.stop()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        self.letters.close()
        if self._staging is not None:
            self._staging.close()
        log.info("stopped")
        if failure is not None:
            reason = f"{type(failure).__name__}: {failure}"
            raise PipelineFailedError(f"the pipeline failed: {reason}") from failure

    def request_stop(self) -> None:
        self._stopping.set()

    def _responders(self, environ: Mapping[str, str] | None) -> ResponderWorker | None:
        """The responder when playbooks are configured, with its `/actions` routes on the
        intake's listener when approvers are."""
        settings = self.settings.responders
        if not settings.playbooks:
            return None
        responder = open_responder(settings)
        if settings.approvers:
            add_action_routes(self.intake.app, responder, settings, environ)
        return ResponderWorker(responder)

    def _followers(self) -> list[Follower]:
        """One follower per `sources.follow` file, each feeding the intake's queue."""
        followed = self.settings.sources.follow
        try:
            positions = Positions(follow_state_path(self.settings) if followed else None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        join = self.normalize.join_continuation_lines
        return [Follower(entry, self.queue, positions, join) for entry in followed]

    async def _stop_following(self) -> None:
        """Followers stop before the queue closes: each saves the position of the last
        line the queue accepted."""
        for follower in self.followers:
            follower.stop()
        for result in await asyncio.gather(*self._following, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("a follower failed", exc_info=result)

    def request_reload(self) -> None:
        """Reload the rules soon (SIGHUP, a changed rule file); requests that come while a
        reload runs make one more reload after it."""
        self._reload_requested.set()

    async def reload(self) -> None:
        """Compile the configured rules again, in a thread so records keep flowing; swap them
        in only if they all load, between two records, with the state of every unchanged
        correlation. With worker processes, new ones start with the new rules first, and
        the swap waits until the old ones' outcomes are taken."""
        try:
            compiled = await asyncio.to_thread(compile_rule_set, self.settings, self.registry)
        except Exception:
            log.exception("rules not reloaded, the running set stays")
            return
        if not isinstance(compiled, RuleSet):
            for error in compiled:
                log.error(
                    "rule not loaded: %s",
                    error,
                    extra={
                        "path": str(error.path),
                        "rule_id": error.rule_id,
                        "rule_title": error.title,
                        "kind": error.kind,
                        "reason": error.reason,
                    },
                )
            log.error("rules not reloaded, the running set stays", extra={"errors": len(compiled)})
            return
        if self.workers is None:
            self._adopt(compiled)
            return
        try:
            workers = await asyncio.to_thread(self._new_workers, compiled)  # spawning blocks
            await workers.started()
        except Exception:
            log.exception("rules not reloaded: workers with them did not start")
            return
        swapped = asyncio.get_running_loop().create_future()
        self._reloaded.set_result((compiled, workers, swapped))
        await swapped

    def _adopt(self, compiled: RuleSet) -> None:
        """Run `compiled` from now on, with the state of every unchanged correlation."""
        adoption = compiled.stage.engine.adopt(self.rules.stage.engine)
        self.rules = compiled
        if gc.get_freeze_count():  # `run` froze the heap: the old set's cycles are
            gc.unfreeze()  # collected now (one pause), and the new set is frozen
            freeze_heap()
        log.info(
            "rules reloaded: %d rules, %d correlations",
            compiled.rules,
            compiled.correlations,
            extra={
                "kept": list(adoption.kept),
                "changed": list(adoption.changed),
                "added": list(adoption.added),
                "removed": list(adoption.removed),
            },
        )
        for key in adoption.changed:
            log.info(
                "correlation %s changed: its state starts empty", key, extra={"correlation": key}
            )
        for key in adoption.removed:
            log.info(
                "correlation %s removed: its state is dropped", key, extra={"correlation": key}
            )

    async def _reload_on_request(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    async def _watch_rules(self) -> None:
        """Request a reload whenever a file under the rule paths changes, until the service
        stops. If watching fails the service goes on, and SIGHUP still reloads."""
        if not self.settings.rules.watch:
            return
        paths, accept = _watched(self.settings.rules.paths)
        try:
            async for changes in awatch(
                *paths,
                watch_filter=accept,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_QUIET_MS,
                stop_event=self._stopping,
            ):
                log.info("rule files changed", extra={"files": sorted(p for _, p in changes)})
                self.request_reload()
        except Exception:
            log.exception("rule files are not watched any more")

    # -- the pipeline ----------------------------------------------------------------

    async def consume(self) -> None:
        """Take records off the queue until it is closed and empty: what has come in, in
        one step, processed in order, the event loop let go to the intake and the sinks
        every `CONSUME_SLICE_SECONDS` of work rather than after each record. A record that
        fails is dead-lettered; an error writing that dead letter ends the consumer."""
        if self.workers is not None:
            await self._consume_through_workers()
            return
        while True:
            try:
                batch = await self.queue.take_arrivals(CONSUME_BATCH, CONSUME_BYTES)
            except QueueClosedError:
                return
            slice_end = time.monotonic() + CONSUME_SLICE_SECONDS
            for raw, arrived in batch:
                try:
                    self.handle(raw, arrived)
                except Exception as exc:  # the next records must not pay for this one
                    self._failed(raw, exc)
                if time.monotonic() > slice_end:
                    self._publish_engine_stats()
                    await asyncio.sleep(0)
                    slice_end = time.monotonic() + CONSUME_SLICE_SECONDS
            self._publish_engine_stats()
            await asyncio.sleep(0)  # the intake and the sinks run between two batches

    def handle(self, raw: RawRecord, arrived: float) -> None:
        metrics = self.metrics
        metrics.events_in_for(raw.source or "detected").inc()
        for result in self.normalize.process(raw):
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
                continue
            metrics.normalized_for(result.event_source).inc()
            self._detect(result)
        metrics.latency.observe(time.monotonic() - arrived)

    async def _consume_through_workers(self) -> None:
        """`consume` with the work per record done by the worker processes: the records
        taken off the queue go to them in tasks, a few tasks in flight, and their
        outcomes are taken here in the order the records came, until the queue is closed
        and empty. A reloaded rule set is swapped in once every task given to the old
        workers is taken."""
        in_flight: deque[tuple[asyncio.Future[list[Results]], list[tuple[RawRecord, float]]]] = (
            deque()
        )
        taking: asyncio.Future[list[tuple[RawRecord, float]]] | None = None
        closed = False
        while not closed or in_flight:
            workers, reloaded = self.workers, self._reloaded
            assert workers is not None
            if reloaded.done() and not in_flight:
                self._swap_in(*reloaded.result())
                continue
            if (
                taking is None
                and not closed
                and not reloaded.done()
                and len(in_flight) < workers.window
            ):
                taking = asyncio.ensure_future(self.queue.take_arrivals(TASK_RECORDS, TASK_BYTES))
            waiting: set[asyncio.Future[Any]] = {future for future, _ in islice(in_flight, 1)}
            waiting.update(f for f in (taking, reloaded) if f is not None and not f.done())
            assert workers.failed is not None
            waiting.add(workers.failed)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if workers.failed.done():  # a worker died: no need to wait for a record to see it
                workers.failed.result()
            if taking is not None and taking.done():
                try:
                    batch = taking.result()
                except QueueClosedError:
                    closed = True
                else:
                    in_flight.append((workers.submit([raw for raw, _ in batch]), batch))
                taking = None
            while in_flight and in_flight[0][0].done():
                future, batch = in_flight.popleft()
                for (raw, arrived), results in zip(batch, future.result(), strict=True):
                    self.metrics.events_in_for(raw.source or "detected").inc()
                    try:
                        self._take_outcomes(results)
                    except Exception as exc:  # as `consume` does
                        self._failed(raw, exc)
                    self.metrics.latency.observe(time.monotonic() - arrived)
                self._publish_engine_stats()

    def _swap_in(
        self, compiled: RuleSet, workers: LiveWorkers, swapped: asyncio.Future[None]
    ) -> None:
        """The reloaded rules and their workers in; the old workers shut down."""
        assert self.workers is not None
        self._adopt(compiled)
        old, self.workers = self.workers, workers
        retiring = asyncio.create_task(old.shutdown())
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        self._reloaded = asyncio.get_running_loop().create_future()
        swapped.set_result(None)

    def _take_outcomes(self, results: Results) -> None:
        """What a worker made of a record: dead letters, single-event detections, the
        correlations' hits (decided here, in order)."""
        engine = self.rules.stage.engine
        for result in results:
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
                continue
            source, detections, kept = result[1], result[3], result[8]
            self.metrics.normalized_for(source).inc()
            if kept is not None and self.responders is not None:
                self.responders.seen(Event.model_validate_json(kept))
            for _, line in detections or ():
                self._emit(Detection.model_validate_json(line))
            for item in correlate(engine, result):
                if isinstance(item, DeadLetter):
                    self._dead_letter(item)
                else:
                    self._emit(item)

    async def _start_workers(self) -> None:
        """The worker processes, when configured, started before the intake opens."""
        self._reloaded = asyncio.get_running_loop().create_future()
        if self.settings.service.workers > 1:
            self.workers = self._new_workers(self.rules)
            await self.workers.started()
            log.info("worker processes started", extra={"workers": self.workers.count})

    def _new_workers(self, rules: RuleSet) -> LiveWorkers:
        keep_events = self.responders is not None
        return LiveWorkers(self.settings.service.workers, self.settings, rules.sources, keep_events)

    def _failed(self, raw: RawRecord, exc: Exception) -> None:
        """A record whose processing failed: dead-lettered with the error."""
        log.exception("record %s could not be processed", raw.origin, exc_info=exc)
        self._dead_letter(DeadLetter.of_failure(raw, exc))

    def _detect(self, event: Event) -> None:
        if self.responders is not None:
            self.responders.seen(event)
        for result in self.rules.stage.process(event):
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
            else:
                self._emit(result)

    def _publish_engine_stats(self) -> None:
        stats = self.rules.stage.engine.stats
        self.metrics.late.set(stats.late)
        self.metrics.evicted_groups.set(stats.evicted_groups)

    def _emit(self, detection: Detection) -> None:
        """To the sinks (durable with their next group commit) and the responders; a
        staged rule's only to the staging file."""
        staged = detection.rule.id in self.rules.staged
        self.metrics.detections_for(detection.rule.id, "true" if staged else "false").inc()
        if staged:
            self._staging_file().write(detection.to_json() + b"\n")
            self._staging_file().flush()
        else:
            self.dispatcher.submit(detection)
            if self.responders is not None:
                self.responders.submit(detection)

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.letters.write(letter)
        self.metrics.dead_lettered_for(reason_label(letter.reason)).inc()

    def _staging_file(self) -> IO[bytes]:
        if self._staging is None:
            path = self.settings.service.staging_output
            path.parent.mkdir(parents=True, exist_ok=True)
            self._staging = path.open("ab")
        return self._staging

    # -- state -----------------------------------------------------------------------

    def _restore_checkpoint(self) -> None:
        path = self.settings.correlation.checkpoint
        if path is None or not path.exists():
            return
        saved = checkpoint.load(path)
        self.rules.stage.engine.restore(saved.engine)
        log.info("correlation state restored from %s", path)

    def _state(self) -> checkpoint.Checkpoint:
        """The correlation state now: taken between records, so it is whole."""
        return checkpoint.Checkpoint(0, ["http"], self.rules.stage.engine.snapshot())

    def _save_checkpoint(self) -> None:
        path = self.settings.correlation.checkpoint
        if path is None:
            return
        checkpoint.save(path, self._state())
        log.info("correlation state saved to %s", path)

    async def _checkpoint_periodically(self) -> None:
        """Until the service stops: the state is copied on the loop, and encoded and written
        in a thread, so the intake and the pipeline go on meanwhile."""
        path = self.settings.correlation.checkpoint
        if path is None:
            return
        while True:
            try:
                every = self.settings.correlation.checkpoint_every_seconds
                await asyncio.wait_for(self._stopping.wait(), every)
                return
            except TimeoutError:
                pass
            try:
                state = self._state()
                # A restored state never makes the detections it has made again: they must
                # be on disk before it is.
                await self.dispatcher.committed()
                await asyncio.to_thread(checkpoint.save, path, state)
            except Exception:  # the service goes on; the next save, or the one on stop, may work
                log.exception("correlation state not saved")
            else:
                log.debug("correlation state saved to %s", path)

    # -- metrics ---------------------------------------------------------------------

    async def _start_metrics(self) -> None:
        settings = self.settings.service
        if settings.metrics_port is None:
            return

        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self.metrics_registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._metrics_runner = web.AppRunner(app)
        await self._metrics_runner.setup()
        await web.TCPSite(
            self._metrics_runner, settings.metrics_host, settings.metrics_port
        ).start()


def _watched(paths: Sequence[Path]) -> tuple[list[Path], Callable[[Change, str], bool]]:
    """What to watch for `paths`, and which changes count: directories as they are, a file
    through its directory, since editors replace a file by renaming a new one over it;
    editors' swap and backup files never count."""
    files = {path.resolve() for path in paths if path.is_file()}
    directories = [path.resolve() for path in paths if not path.is_file()]
    default = DefaultFilter()

    def accept(change: Change, changed: str) -> bool:
        path = Path(changed)
        return default(change, changed) and (
            path in files or any(path.is_relative_to(d) for d in directories)
        )

    return sorted({*directories, *(file.parent for file in files)}), accept


def describe(settings: Settings) -> str:
    """What `detector run` will do with `settings`: rules, routes, sinks. Reads every
    secret (so a missing one is reported) but prints none."""
    registry = build_registry(settings.sources)
    rules = build_rule_set(settings, registry)
    build_app_check(settings, registry)
    identities = settings.identities.load(registry.names)
    intake = settings.intake
    scheme = "https" if intake.tls else "http"
    lines = [
        f"rules: {rules.rules} rules and {rules.correlations} correlations from "
        + ", ".join(str(p) for p in settings.rules.paths)
        + f" ({len(rules.staged)} experimental, staged to {settings.service.staging_output})",
        f"intake: {scheme}://{intake.host}:{intake.port}",
    ]
    for name, route in intake.routes().items():
        state = "enabled" if route.enabled else "disabled"
        lines.append(f"  /intake/{name}: {state}, secret from the {route.secret.where()}")
    if not intake.routes():
        lines.append("  no route configured: nothing can be posted")
    lines.append(f"sinks (outboxes in {settings.sinks.outbox_dir}):")
    for output in settings.sinks.outputs:
        lines.append(f"  {output.name}: {output.type}")
    if not settings.sinks.outputs:
        lines.append("  none: detections go to the staging file only if experimental, else nowhere")
    for followed in settings.sources.follow:
        lines.append(
            f"follows {followed.path} ({followed.source or 'source detected per record'}), "
            f"positions in {follow_state_path(settings) or 'memory only'}"
        )
    lines.extend(describe_responders(settings.responders))
    workers = settings.service.workers
    lines.append(
        f"processes: {workers} workers parse, normalize and match; this one serves the "
        "intake, correlates and alerts"
        if workers > 1
        else "processes: one does everything (service.workers: 1)"
    )
    lines.append(f"dead letters: {settings.service.dead_letter}")
    lines.append(
        f"identities: {len(identities)} mapped from {settings.identities.map_file}"
        if settings.identities.map_file
        else "identities: no map (each user.name is its own user.identity)"
    )
    correlation = settings.correlation
    saved = (
        f"checkpoint {correlation.checkpoint} every {correlation.checkpoint_every_seconds:g}s"
        if correlation.checkpoint
        else "no checkpoint (state is lost on restart)"
    )
    lines.append(
        f"correlation: allowed lateness {correlation.allowed_lateness_seconds:g}s, {saved}"
    )
    port = settings.service.metrics_port
    metrics = f"http://{settings.service.metrics_host}:{port}/metrics" if port else "off"
    lines.append(f"metrics: {metrics}")
    return "\n".join(lines)


def build_app_check(settings: Settings, registry: SourceRegistry) -> None:
    """Build the intake application and the sinks once, so every secret is read."""
    from detector.intake.app import create_app
    from detector.sinks.factory import build_sink

    create_app(
        settings.intake,
        RecordQueue(settings.intake.queue_capacity_bytes),
        sources=registry.names,
        registry=CollectorRegistry(),
    )
    for output in settings.sinks.outputs:
        build_sink(output)


def serve(settings: Settings) -> None:
    """Run the service until a stop signal; uvloop where available."""
    configure_logging(settings.service.log_level)
    service = Service(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(service.run())
    else:
        uvloop.run(service.run())


def follow_state_path(settings: Settings) -> Path | None:
    """Where followed files' positions are saved: `sources.follow_state`, else beside
    the correlation checkpoint (`state.json` → `state.follow.json`), else nowhere."""
    if settings.sources.follow_state is not None:
        return settings.sources.follow_state
    checkpoint_path = settings.correlation.checkpoint
    return None if checkpoint_path is None else checkpoint_path.with_suffix(".follow.json")
