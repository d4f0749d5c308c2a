"""`detector run`: the embedded runtime as a long-running service.

One asyncio process: the HTTP intake puts accepted records on a byte-bounded queue; a
consumer normalizes, matches and correlates them; detections go to the sinks' durable
outboxes (or, for rules with `status: experimental`, to the staging file only). SIGTERM
or SIGINT stops it gracefully: the intake answers 503 and stops, the queue drains, the
correlation state is checkpointed, the sinks finish their attempts in flight. SIGHUP
reloads the rules: the new set is compiled and checked first and swapped in only if it
loads without errors; the correlation state of the old set goes with it.

A record whose processing fails unexpectedly (a bug, an unwritable staging file) is
dead-lettered with the error and the stream goes on. If even that fails, the service
stops as on SIGTERM and exits with an error instead of accepting records it cannot
process. The correlation state is also saved every `checkpoint_every_seconds`, so a
crash loses at most that much of it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detector.config import Settings
from detector.correlate import CorrelationEngine, EngineSettings, checkpoint, compile_correlations
from detector.deadletter import DeadLetter, DeadLetterFile
from detector.detections import Detection
from detector.events import Event
from detector.intake import IntakeServer, RecordQueue
from detector.normalize import NormalizeStage, SourceRegistry
from detector.normalize.builtin import build_registry
from detector.pipeline import DetectionStage
from detector.rules import load_rules
from detector.rules.routing import RuleRouter
from detector.runtime.errors import PipelineFailedError, RulesNotLoadedError
from detector.runtime.logs import configure_logging
from detector.runtime.metrics import PipelineMetrics, reason_label
from detector.runtime.queue import ArrivalQueue
from detector.sinks import build_dispatcher
from detector.sinks.dispatcher import Dispatcher
from detector.sources.records import RawRecord

log = logging.getLogger("detector.service")


@dataclass
class RuleSet:
    """A compiled rule set ready to run: the detection stage and which rules are staged."""

    stage: DetectionStage
    staged: frozenset[str]  # rule ids of `status: experimental` rules
    rules: int
    correlations: int


def build_rule_set(settings: Settings, registry: SourceRegistry) -> RuleSet:
    """Load and compile the configured rules; any error refuses the whole set."""
    loaded = load_rules(settings.rules.paths, settings.rules.placeholders or None)
    correlations = compile_correlations(loaded)
    errors = [str(e) for e in loaded.errors] + [str(e) for e in correlations.errors]
    if errors:
        raise RulesNotLoadedError("; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""))
    router = RuleRouter(loaded.rules, registry.routes())
    engine = CorrelationEngine(
        correlations,
        EngineSettings(
            allowed_lateness=timedelta(seconds=settings.correlation.allowed_lateness_seconds),
            max_groups=settings.correlation.max_groups,
        ),
    )
    staged = {r.id for r in loaded.rules if r.id and r.status == "experimental"}
    staged |= {
        c.ref.id for c in correlations.rules if str(c.sigma.status or "").endswith("experimental")
    }
    stage = DetectionStage(router, engine)
    return RuleSet(stage, frozenset(staged), len(loaded.rules), len(correlations.rules))


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
        self.letters = DeadLetterFile(settings.service.dead_letter)
        self._staging: IO[bytes] | None = None
        self._stopping = asyncio.Event()
        self._metrics_runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or the pipeline fails); then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
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
        await self.stop(consumer)

    async def start(self) -> None:
        self.dispatcher.start()
        await self.intake.start()
        await self._start_metrics()

    async def stop(self, consumer: asyncio.Task[None]) -> None:
        """Stop intake, drain the queue, checkpoint, flush the sinks. `PipelineFailedError`
        after all that if the consumer failed."""
        log.info("stopping")
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
        self._save_checkpoint()
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

    def reload(self) -> None:
        """Compile the configured rules again; swap them in only if they all load."""
        try:
            rules = build_rule_set(self.settings, self.registry)
        except RulesNotLoadedError as exc:
            log.error("rules not reloaded, the running set stays: %s", exc)
            return
        self.rules = rules
        log.info("rules reloaded: %d rules, %d correlations", rules.rules, rules.correlations)

    # -- the pipeline ----------------------------------------------------------------

    async def consume(self) -> None:
        """Take records off the queue until it is closed and empty. A record that fails is
        dead-lettered; an error writing that dead letter ends the consumer."""
        async for raw, arrived in self.queue.arrivals():
            try:
                self.handle(raw, arrived)
            except Exception as exc:  # the next records must not pay for this one
                log.exception("record %s could not be processed", raw.origin)
                reason = f"internal error: {type(exc).__name__}: {exc}"
                self._dead_letter(DeadLetter(reason, raw.origin, raw.data, raw.source))
            await asyncio.sleep(0)  # let the intake and the sinks run between records

    def handle(self, raw: RawRecord, arrived: float) -> None:
        source = raw.source or "detected"
        self.metrics.events_in.labels(source).inc()
        for result in self.normalize.process(raw):
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
                continue
            self.metrics.normalized.labels(result.event_source).inc()
            self._detect(result)
        self.metrics.latency.observe(time.monotonic() - arrived)

    def _detect(self, event: Event) -> None:
        for result in self.rules.stage.process(event):
            if isinstance(result, DeadLetter):
                self._dead_letter(result)
            else:
                self._emit(result)
        stats = self.rules.stage.engine.stats
        self.metrics.late.set(stats.late)
        self.metrics.evicted_groups.set(stats.evicted_groups)

    def _emit(self, detection: Detection) -> None:
        staged = detection.rule.id in self.rules.staged
        self.metrics.detections.labels(detection.rule.id, str(staged).lower()).inc()
        if staged:
            self._staging_file().write(detection.to_json() + b"\n")
            self._staging_file().flush()
        else:
            self.dispatcher.enqueue(detection)

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.letters.write(letter)
        self.metrics.dead_lettered.labels(reason_label(letter.reason)).inc()

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
                await asyncio.to_thread(checkpoint.save, path, self._state())
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
    from detector.intake import create_app
    from detector.sinks import build_sink

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
