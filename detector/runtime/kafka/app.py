"""The Faust application of a worker: the stages of `stages` wired to topics and a table.

- `normalize_and_match` reads every `audit.raw.<source>` topic: events to
  `audit.events`, dead letters (with the reason) to `detector.deadletter`, single-event
  detections to `detector.detections`, correlation hits to `detector.hits` keyed by
  (correlation, group); after each batch, a tick with its partition's newest event time to
  every hits partition. Replay control records (start, end) are passed on.
- `correlate` reads `detector.hits`: one `PartitionCorrelator` per partition, its state
  saved after each batch in the table `correlation-state` (changelog-backed, compacted),
  in the changelog partition of the hits partition, so whichever worker gets the
  partition gets its state. Detections to `detector.detections`.
- `alert` reads `detector.detections`: each detection to the configured sinks' outboxes
  (one set per partition, see `alerts`) and to the responder, whose audit records also
  go to `detector.actions` keyed by detection id.

Normalizing and matching are stateless and run in one agent: a separate hop through
`audit.events` would add a network round trip and a second watermark merge for nothing.
`audit.events` is still written, for subscribers.

Delivery is at least once; the results are exactly once: every stage's output is a
function of its input, detection ids are deterministic, and each correlator skips what
it has already taken (hits offsets and upstream positions are in its saved state), so a
worker that dies and is replaced sends at most the same detections again. Readers
deduplicate by id (`detector replay --kafka` does). No record is skipped: each stage
keeps its own position in each partition and goes back when the consumer hands it
records past it, or went past records it never handed over (`positions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.types import TP, EventT

from detector.config import Settings
from detector.detections import Detection
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.respond.audit import ActionRecord
from detector.respond.factory import open_responder
from detector.respond.worker import ResponderWorker
from detector.runtime.ruleset import build_rule_set
from detector.sources.records import RawRecord

from .alerts import PartitionDispatchers, event_headers, event_of
from .control import END, IDLE, START, TICK, control_headers, control_kind, encode
from .positions import (
    KafkaProbeError,
    PartitionProbe,
    PositionHeld,
    Positions,
    Taken,
    admitted,
    rewind_stalled,
)
from .stages import PartitionCorrelator, RawOutput, RawStage
from .topics import STATE_TABLE, TopicNames, changelog_topic

log = logging.getLogger("detector.kafka")

#: how long a stage waits to fill a batch (s)
BATCH_WITHIN = 0.05


class Worker:
    """One worker process's Faust app and the stages it runs."""

    def __init__(self, settings: Settings) -> None:
        kafka = settings.kafka
        if kafka.bootstrap is None:
            raise ValueError("the Kafka runtime needs kafka.bootstrap")
        self.settings = settings
        self.names = TopicNames(kafka.topic_prefix)
        registry = build_registry(settings.sources)
        identities = settings.identities.load(registry.names)
        rule_set = build_rule_set(settings, registry)
        normalize = NormalizeStage(registry, identities=identities)
        self.raw_stage = RawStage(normalize, rule_set.stage, kafka.partitions)
        self.new_engine = rule_set.new_engine
        self.partitions = kafka.partitions
        self.raw_names = self.names.raws(registry.names)
        self.upstreams = len(self.raw_names) * kafka.partitions
        self.app = faust.App(
            kafka.app_id,
            broker=[f"kafka://{host}" for host in kafka.bootstrap.split(",")],
            store=kafka.store,
            datadir=kafka.data_dir,
            topic_partitions=kafka.partitions,
            topic_replication_factor=kafka.replication_factor,
            topic_disable_leader=True,
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            processing_guarantee="at_least_once",
            # Faust's check stops the worker when a store's persisted offset is past
            # the changelog's end: it guards a local RocksDB copy. The memory store
            # persists none and restores from the changelog's start, so the check could
            # only trip on a standby's read position against a broker whose end offset
            # lags the records it served (Tansu 0.6.0 reports its last batch's first)
            recovery_consistency_check=False,
            broker_session_timeout=kafka.session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, kafka.session_timeout_seconds / 3),
        )
        topic_options: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
            "partitions": kafka.partitions,
        }
        self.raw_topic = self.app.topic(*self.raw_names, **topic_options)
        self.events_topic = self.app.topic(self.names.events, **topic_options)
        self.hits_topic = self.app.topic(self.names.hits, **topic_options)
        self.detections_topic = self.app.topic(self.names.detections, **topic_options)
        self.deadletter_topic = self.app.topic(self.names.deadletter, **topic_options)
        self.actions_topic = self.app.topic(self.names.actions, **topic_options)
        self.table = self.app.Table(
            STATE_TABLE,
            partitions=kafka.partitions,
            key_type=bytes,
            value_type=bytes,
        )
        self.correlators: dict[int, tuple[PartitionCorrelator, bytes | None]] = {}
        #: raw partition -> (monotonic time of its last record, idle sent)
        self.activity: dict[TP, tuple[float, bool]] = {}
        #: the raw stage's and the correlator's positions (see `positions`; the alert
        #: stage's are its dispatchers')
        self.raw_positions = Positions()
        self.hits_positions = Positions()
        self.probe = PartitionProbe(kafka.bootstrap, kafka.app_id)
        self.app.agent(self.raw_topic, name="normalize-and-match")(self.normalize_and_match)
        self.app.agent(self.hits_topic, name="correlate")(self.correlate)
        self.dispatchers = PartitionDispatchers(settings.sinks, self.names.detections)
        self.responders: ResponderWorker | None = None
        if settings.responders.playbooks:
            responder = open_responder(settings.responders, publish=self._publish_action)
            self.responders = ResponderWorker(responder)
        self.app.agent(self.detections_topic, name="alert")(self.alert)
        # mode's handler type wants a bare function; bound coroutine methods work the same
        self.app.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
        self.app.on_before_shutdown.connect(self._shutdown)  # type: ignore[arg-type]
        self.app.timer(max(kafka.idle_after_seconds / 4, 0.5))(self.send_idle)
        self.app.timer(kafka.stalled_after_seconds / 2)(self.watch_positions)
        self.stalled_after = kafka.stalled_after_seconds
        self.batch = kafka.batch
        self.idle_after = kafka.idle_after_seconds

    # -- raw stage ---------------------------------------------------------------------

    async def normalize_and_match(self, stream: faust.StreamT[bytes]) -> None:
        async for batch in _batches(stream).take_events(self.batch, within=BATCH_WITHIN):
            await self._raw_batch(batch)

    async def _raw_batch(self, batch: Sequence[EventT[bytes]]) -> None:
        newest: dict[str, int] = {}
        now = time.monotonic()
        async for event in self._admitted(batch, "normalize-and-match"):
            message = event.message
            upstream = f"{message.topic}:{message.partition}"
            self.activity[message.tp] = (now, False)
            kind = control_kind(message.headers)
            if kind in (START, END):
                moment = newest.pop(upstream, None)
                if moment is not None:  # the tick of what came before, before the control
                    await self._to_every_hits_partition(TICK, encode({"u": upstream, "t": moment}))
                run = encode({"u": upstream, "run": _run_of(event.value)})
                await self._to_every_hits_partition(kind, run)
                if kind == END:
                    await self._end_marker(upstream, _run_of(event.value))
                continue
            if kind is not None:
                continue
            raw = RawRecord(
                event.value,
                f"{message.topic}:{message.partition}:{message.offset}",
                self.names.source_of(message.topic),
            )
            out = self.raw_stage.process(raw, upstream, message.offset)
            await self._send_raw_output(out)
            if out.newest is not None and out.newest > newest.get(upstream, out.newest - 1):
                newest[upstream] = out.newest
        for upstream, moment in newest.items():
            await self._to_every_hits_partition(TICK, encode({"u": upstream, "t": moment}))
        await self.app.producer.flush()
        for tp in {event.message.tp for event in batch}:  # after the output they stand for
            self._save_position(self.raw_positions, tp)

    def _admitted(self, batch: Sequence[EventT[bytes]], stage: str) -> AsyncIterator[Taken]:
        """The batch's records for `stage`, admitted against its positions (`admitted`)."""
        return admitted(batch, self._expected, self._took, self.probe, stage)

    def _took(self, tp: TP, offset: int) -> None:
        self._positions_of(tp).took(tp, offset)

    def _positions_of(self, tp: TP) -> Positions:
        """The positions of the stage that reads `tp`."""
        if tp.topic == self.names.detections:
            return self.dispatchers.positions
        return self.hits_positions if tp.topic == self.names.hits else self.raw_positions

    async def _expected(self, tp: TP) -> int:
        """The offset the stage reading `tp` expects next: as far as it has taken, else
        from its saved state (a partition just given to this worker), else where the
        group starts in it."""
        positions = self._positions_of(tp)
        if tp.topic == self.names.detections:
            await self.dispatchers.of(tp.partition)  # reads the saved position
        elif positions.expected(tp) is None:
            saved = self.table.data.get(_position_key(tp))
            if saved is not None:
                positions.start(tp, int(saved))
        expected = positions.expected(tp)
        if expected is None:
            expected = await self.probe.start_of(tp)
            if tp.topic == self.names.detections:
                self.dispatchers.begin(tp, expected)
            else:
                positions.start(tp, expected)
                self._save_position(positions, tp)
        return expected

    def _save_position(self, positions: Positions, tp: TP) -> None:
        """`tp`'s position to the table, in the changelog partition of its number."""
        key, value = _position_key(tp), b"%d" % cast(int, positions.expected(tp))
        self.table.data[key] = value
        self.table.send_changelog(tp.partition, key, value)

    async def _send_raw_output(self, out: RawOutput) -> None:
        for letter in out.dead_letters:
            await self.deadletter_topic.send(key=letter.origin.encode(), value=letter.to_json())
        for normalized in out.events:
            await self.events_topic.send(
                key=normalized.event_id.encode(), value=normalized.to_json()
            )
        behind = {event.event_id: event for event in out.events}
        for detection in out.detections:
            event = behind.get(detection.evidence[-1].id) if detection.evidence else None
            await self.detections_topic.send(
                key=detection.id.encode(),
                value=detection.to_json(),
                headers=None if event is None else event_headers(event),
            )
        for partition, value in out.hits:
            await self.hits_topic.send(value=value, partition=partition)

    async def _send_detections(self, detections: Iterable[Detection]) -> None:
        for detection in detections:
            await self.detections_topic.send(key=detection.id.encode(), value=detection.to_json())

    async def _to_every_hits_partition(self, kind: str, value: bytes) -> None:
        for partition in range(self.partitions):
            await self.hits_topic.send(
                value=value, partition=partition, headers=control_headers(kind)
            )

    async def _end_marker(self, sender: str, run: str) -> None:
        """Everything `sender` sends to the detections for `run` is before this."""
        value = encode({"u": sender, "run": run})
        for partition in range(self.partitions):
            await self.detections_topic.send(
                value=value, partition=partition, headers=control_headers(END)
            )

    async def send_idle(self) -> None:
        """Raw partitions of this worker without records for a while stop holding back
        the watermark."""
        now = time.monotonic()
        for tp in self.app.consumer.assignment():
            if tp.topic not in self.raw_names:
                continue
            last, sent = self.activity.setdefault(tp, (now, False))
            if not sent and now - last >= self.idle_after:
                self.activity[tp] = (last, True)
                upstream = f"{tp.topic}:{tp.partition}"
                await self._to_every_hits_partition(IDLE, encode({"u": upstream}))

    # -- correlation ---------------------------------------------------------------------

    async def correlate(self, stream: faust.StreamT[bytes]) -> None:
        async for batch in _batches(stream).take_events(self.batch, within=BATCH_WITHIN):
            touched: set[TP] = set()
            async for event in self._admitted(batch, "correlate"):
                message = event.message
                correlator = self._correlator(message.partition)
                decided = correlator.take(
                    message.offset, control_kind(message.headers), event.value
                )
                touched.add(message.tp)
                for letter in decided.dead_letters:
                    await self.deadletter_topic.send(
                        key=letter.origin.encode(), value=letter.to_json()
                    )
                await self._send_detections(decided.detections)
                if decided.finished_run is not None:
                    await self._end_marker(f"hits:{message.partition}", decided.finished_run)
            # The state says its detections were sent: it goes out only once they are,
            # or a worker dying between the two would leave its successor a state with
            # no detection left to send. It is out before the batch's offsets are
            # committed; were it not, the hits would be read again from its offset.
            await self.app.producer.flush()
            for tp in touched:  # the state, then the position it stands for
                self._save(tp.partition)
                self._save_position(self.hits_positions, tp)
            await self.app.producer.flush()

    # -- alerts and responses --------------------------------------------------------------

    async def alert(self, stream: faust.StreamT[bytes]) -> None:
        if self.responders is not None:
            self.responders.start()
        async for batch in _batches(stream).take_events(self.batch, within=BATCH_WITHIN):
            async for event in self._admitted(batch, "alert"):
                message = event.message
                dispatcher = await self.dispatchers.of(message.partition)
                if control_kind(message.headers) is not None or not event.value:
                    continue
                detection = Detection.model_validate_json(event.value)
                # durable before its position is saved; the outboxes know one taken before
                dispatcher.enqueue(detection)
                if self.responders is not None:
                    self.responders.submit(detection, event_of(message.headers))
            self.dispatchers.save_positions()

    def _publish_action(self, record: ActionRecord, line: bytes) -> None:
        self.actions_topic.send_soon(key=record.detection_id.encode(), value=line)

    async def _revoked(self, app: Any, *args: Any, **_: Any) -> None:
        """Partitions of `detector.detections` moving elsewhere free their outboxes."""
        revoked: set[TP] = args[0]
        partitions = [tp.partition for tp in revoked if tp.topic == self.names.detections]
        await self.dispatchers.close(partitions)

    async def _assigned(self, app: Any, *args: Any, **_: Any) -> None:
        """Raw and hits partitions kept through a rebalance keep their positions; the
        others come from the stages' saved state when next needed (`_expected`)."""
        assigned: set[TP] = args[0]
        self.raw_positions.keep_only(assigned)
        self.hits_positions.keep_only(assigned)

    async def watch_positions(self) -> None:
        """Partitions whose stage has been given nothing for `stalled_after` seconds though
        they hold records from the offset it expects: the consumer went past their last
        records (which no later record would show), so they are read again from there.
        The saved positions of partitions just given to this worker are read first."""
        if self.app.rebalancing or self.app.in_recovery:
            return
        try:
            await self._watch_positions()
        except (KafkaError, KafkaProbeError) as error:  # the next round tries again
            log.warning("watching the stages' positions: %s", error)

    async def _watch_positions(self) -> None:
        assignment = self.app.consumer.assignment()
        consumed = {*self.raw_names, self.names.hits, self.names.detections}
        for tp in assignment:
            if tp.topic in consumed:
                with contextlib.suppress(PositionHeld):  # the stage will say it, if it lasts
                    await self._expected(tp)
        stages = (
            ("normalize-and-match", self.raw_positions),
            ("correlate", self.hits_positions),
            ("alert", self.dispatchers.positions),
        )
        for stage, positions in stages:
            await rewind_stalled(
                stage, positions, assignment, self.probe, self.app.consumer, self.stalled_after
            )

    async def _shutdown(self, app: Any, *_: Any, **__: Any) -> None:
        if self.responders is not None:
            await self.responders.stop()
        await self.dispatchers.close()
        await self.probe.close()

    def _correlator(self, partition: int) -> PartitionCorrelator:
        """The partition's correlator, from the table when another worker had it since."""
        saved = self.table.data.get(_state_key(partition))
        cached = self.correlators.get(partition)
        if cached is not None and cached[1] == saved:
            return cached[0]
        correlator = PartitionCorrelator(self.new_engine, self.upstreams)
        if saved is not None:
            correlator.restore(saved)
        log.info(
            "correlation state of hits partition %d: %s",
            partition,
            "new" if saved is None else f"restored at offset {correlator.offset}",
        )
        self.correlators[partition] = (correlator, saved)
        return correlator

    def _save(self, partition: int) -> None:
        correlator, _ = self.correlators[partition]
        state = correlator.snapshot()
        key = _state_key(partition)
        self.table.data[key] = state
        self.table.send_changelog(partition, key, state)
        self.correlators[partition] = (correlator, state)


def _batches(stream: faust.StreamT[bytes]) -> faust.Stream[bytes]:
    """The agent's stream, whose type declares `take` but not `take_events`."""
    return cast(faust.Stream[bytes], stream)


def _state_key(partition: int) -> bytes:
    return b"hits-%d" % partition


def _position_key(tp: TP) -> bytes:
    """A stage's position of `tp` in the table: in the changelog partition of the same
    number, which the group gives to the worker that has `tp` (all topics have the same
    partition count, so Faust assigns them together)."""
    return f"position:{tp.topic}:{tp.partition}".encode()


def _run_of(value: bytes | None) -> str:
    import orjson

    body = orjson.loads(value or b"{}")
    return str(body.get("run", ""))


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT; any number of them share the work."""
    from .admin import ensure_topics

    worker = Worker(settings)
    asyncio.run(ensure_topics(settings, worker.raw_names, changelog_topic(settings.kafka.app_id)))
    faust.Worker(worker.app, loglevel=settings.service.log_level.lower()).execute_from_commandline()
