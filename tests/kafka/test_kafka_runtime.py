"""The Kafka runtime end to end, through the command line, on the broker the session
started: `detector run --kafka` workers (real subprocesses) and `detector replay --kafka`
give the embedded replay's detections, byte for byte; a worker killed mid-stream changes
nothing; the workers' JSON-lines sink gets every detection once, also then; a dry-run
playbook plans on `detector.actions`; malformed records are dead-lettered and the stream
goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from jsonschema import Draft202012Validator

from detector.runtime.kafka.control import control_kind

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
LOGS = [str(path) for path in sorted((ROOT / "replay").glob("[0-9][0-9]-*/logs"))]
PARTITIONS = 4
REPLAY_DEADLINE = 240
#: seconds within which a started worker's alerts are to be in the sink
ALERTED_WITHIN = 100
BRANCH_PROTECTION_DELETED = "23eb6d19-5c2f-4f64-81f9-ebb4583d28b6"
#: what a worker's log lines must hold to be shown whole when a test fails
NOTABLE = ("ERROR", "WARNING", "Traceback", "rror:", "correlation state", "alerts of detections")
#: a single-event rule's playbook whose template needs the event behind the detection
PLAYBOOK = f"""
name: block-protection-deleter
description: Plan blocking whoever deleted a branch protection rule.
match:
  rules: [{BRANCH_PROTECTION_DELETED}]
actions:
  - action: github.block_user
    with: {{org: "{{{{ event.organization }}}}", username: "{{{{ actor }}}}"}}
    mode: dry_run
  - action: github.block_user
    with: {{org: "{{{{ event.organization }}}}", username: "{{{{ actor }}}}-again"}}
    mode: dry_run
"""


@dataclass
class Cluster:
    """Workers of one app (own topic prefix and group) on the session's broker."""

    bootstrap: str
    directory: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = self.directory / "config.yml"
        self.alerts = self.directory / "alerts.jsonl"
        self.settings: dict[str, Any] = {
            "kafka": {
                "app_id": self.name,
                "topic_prefix": f"{self.name}.",
                "partitions": PARTITIONS,
                # a killed worker's partitions move after this long
                "session_timeout_seconds": 10,
                "data_dir": str(self.directory / "data"),
            },
            "service": {
                "metrics_port": None,
                "log_level": "INFO",
                "dead_letter": str(self.directory / "worker.dead.jsonl"),
            },
            "sinks": {
                "outbox_dir": str(self.directory / "outbox"),
                "outputs": [{"type": "file", "name": "siem", "path": str(self.alerts)}],
            },
            "responders": {
                "playbooks": [str(self.directory / "playbook.yml")],
                "state": str(self.directory / "responder.sqlite3"),
                "audit": str(self.directory / "actions.jsonl"),
            },
        }
        (self.directory / "playbook.yml").write_text(PLAYBOOK)

    def written_config(self) -> str:
        """The configuration file, as `settings` are now."""
        self.config.write_text(yaml.safe_dump(self.settings))
        return str(self.config)

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = (self.directory / f"worker-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "detector", "run", "--config", self.written_config(),
             "--kafka", self.bootstrap],
            cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # a killed worker's log is whole
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def replay(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "detector", "replay", *LOGS, "--config", self.written_config(),
            "--kafka", self.bootstrap, "--dead-letter", str(self.directory / "replay.dead"),
            "--kafka-deadline", str(REPLAY_DEADLINE - 30),
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if wait:
            process.wait(timeout=REPLAY_DEADLINE)
        return process

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def alerted(self, expected: list[bytes]) -> list[bytes]:
        """The sink's lines once it has the `expected` detections' ids (within
        `ALERTED_WITHIN`: a worker's start and its group's first join took about a minute
        on a slow machine against Apache Kafka, the join alone 37 s)."""
        wanted = {orjson.loads(line)["id"] for line in expected}
        deadline = time.monotonic() + ALERTED_WITHIN
        while True:
            lines = self.alerts.read_bytes().splitlines() if self.alerts.exists() else []
            missing = wanted - {orjson.loads(line)["id"] for line in lines}
            if not missing:
                return sorted(lines)
            if time.monotonic() > deadline:
                where = asyncio.run(self.where(missing))
                pytest.fail(f"{len(lines)} of {len(wanted)} in the sink\n{where}\n{self.logs()}")
            time.sleep(0.2)

    async def where(self, missing: set[str]) -> str:
        """Where the missing detections are on `detector.detections` (partition: offsets),
        and the workers' committed offsets there: for a failure's message."""
        topic = f"{self.name}.detector.detections"
        partitions = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await reader.start()
        places: dict[int, list[int]] = {}
        try:
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            while batch := await reader.getmany(timeout_ms=2000):
                for record in (r for records in batch.values() for r in records):
                    if record.key is not None and record.key.decode() in missing:
                        places.setdefault(record.partition, []).append(record.offset)
        finally:
            await reader.stop()
        kept = await committed_offsets(self.bootstrap, self.name, partitions)
        committed = {tp.partition: offset for tp, offset in kept.items()}
        found = "; ".join(f"{p}: {offsets}" for p, offsets in sorted(places.items()))
        return f"missing at (partition: offsets) {found}; committed offsets {committed}"

    def logs(self) -> str:
        """Each worker's errors, warnings, correlation-state hand-overs and where it began
        alerting from each partition, whole, then the end of its log."""
        parts = []
        for path in sorted(self.directory.glob("worker-*.log")):
            text = path.read_text(errors="replace")
            notable = [line for line in text.splitlines() if any(word in line for word in NOTABLE)]
            parts.append(
                f"--- {path.name}\n" + "\n".join(notable[-200:]) + "\n...\n" + text[-3000:]
            )
        return "\n".join(parts)


@pytest.fixture
def cluster(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(kafka_bootstrap, tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The embedded replay's detections, in a canonical order."""
    directory = tmp_path_factory.mktemp("embedded")
    result = subprocess.run(
        [sys.executable, "-m", "detector", "replay", *LOGS,
         "--dead-letter", str(directory / "dead.jsonl")],
        cwd=ROOT, capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    lines = sorted(result.stdout.splitlines())
    assert len(lines) > 1000
    return lines


def differences(got: list[bytes], expected: list[bytes]) -> str:
    """Which detections are missing or extra, by rule and id (for the assertion)."""
    lines = []
    for name, items in (("missing", set(expected) - set(got)), ("extra", set(got) - set(expected))):
        for item in sorted(items)[:20]:
            detection = orjson.loads(item)
            lines.append(f"{name}: {detection['rule']['title']} {detection['id']}")
    return "\n".join(lines) or f"{len(got)} vs {len(expected)} detections"


def detections_of(process: subprocess.Popen[bytes], cluster: Cluster) -> list[bytes]:
    stdout, stderr = process.communicate(timeout=REPLAY_DEADLINE)
    assert process.returncode == 0, stderr.decode() + cluster.logs()
    return sorted(stdout.splitlines())


@pytest.mark.parametrize("workers", [1, 2])
def test_kafka_workers_give_the_embedded_detections(
    cluster: Cluster, embedded: list[bytes], workers: int
) -> None:
    for _ in range(workers):
        cluster.start_worker()
    got = detections_of(cluster.replay(wait=False), cluster)
    assert got == embedded, differences(got, embedded) + "\n" + cluster.logs()
    assert cluster.alerted(embedded) == embedded
    check_the_feed(cluster, len(embedded))
    protection = [
        d for d in map(orjson.loads, embedded) if d["rule"]["id"] == BRANCH_PROTECTION_DELETED
    ]
    actions = asyncio.run(
        wait_for_records(cluster.bootstrap, f"{cluster.name}.detector.actions", 2 * len(protection))
    )
    action_schema = Draft202012Validator(
        orjson.loads((ROOT / "schemas" / "action.schema.json").read_bytes())
    )
    for action in actions:
        action_schema.validate(orjson.loads(action))
    planned = sorted(
        (
            a["detection_id"],
            a["step"],
            a["status"],
            a["parameters"]["org"],
            a["parameters"]["username"],
        )
        for a in map(orjson.loads, actions)
    )
    expected = sorted(
        (
            d["id"],
            step,
            "planned",
            "octo-org",  # from the event: the detection does not carry it
            d["evidence"][-1]["actor"] + suffix,
        )
        for d in protection
        for step, suffix in ((0, ""), (1, "-again"))
    )
    assert planned == expected


def check_the_feed(cluster: Cluster, expected: int) -> None:
    """What a SIEM subscriber reads from detector.detections: JSON values valid against
    the published schema, keyed by detection id."""
    schema = Draft202012Validator(
        orjson.loads((ROOT / "schemas" / "detection.schema.json").read_bytes())
    )
    records = asyncio.run(
        read_records(
            cluster.bootstrap,
            f"{cluster.name}.detector.detections",
            lambda found: len({r.key for r in found}) >= expected,
        )
    )
    for record in records:
        assert record.value is not None and record.key is not None
        detection = orjson.loads(record.value)
        schema.validate(detection)
        assert record.key == detection["id"].encode()
        assert detection["schema_version"] == "1.0"


def test_a_worker_killed_mid_stream_changes_no_detection(
    cluster: Cluster, embedded: list[bytes]
) -> None:
    victim = cluster.start_worker()
    cluster.start_worker()
    replay = cluster.replay(wait=False)
    # mid-stream: once the workers have produced detections, and long before the end
    asyncio.run(wait_for_records(cluster.bootstrap, f"{cluster.name}.detector.detections", 50))
    assert replay.poll() is None, "the replay was over before the kill"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    cluster.start_worker()  # the partitions of the dead one move, then some come back
    got = detections_of(replay, cluster)
    assert got == embedded, differences(got, embedded) + "\n" + cluster.logs()
    # none lost; one the killed worker delivered but had not marked done in its outbox
    # comes again (delivery is at least once, under the same id)
    assert sorted(set(cluster.alerted(embedded))) == embedded


@pytest.mark.parametrize(
    ("committed", "stalled_after", "found_by"),
    [  # the watch waits past the test's deadline where the later record is to show it
        (
            12,
            2 * ALERTED_WITHIN,
            "given offset 12 while offset 5 was next; took the 7 records between",
        ),
        (13, 10, "offset 5 not given for 10 s; reading again from 5"),
    ],
    ids=["a later record shows it", "the last records: the watch finds them"],
)
def test_alerts_go_back_to_their_position_past_offsets_committed_too_far(
    cluster: Cluster, embedded: list[bytes], committed: int, stalled_after: int, found_by: str
) -> None:
    """What a consumer that skipped records and died leaves: the group's offset of a
    detections partition committed past detections no outbox has. The worker that gets
    the partition goes back to the outboxes' position, and alerts them: when a record
    past them comes, and when none does."""
    topic = TopicPartition(f"{cluster.name}.detector.detections", 0)
    detections = embedded[:13]  # at offsets 0 to 12
    asyncio.run(create_topic(cluster.bootstrap, topic.topic))
    asyncio.run(publish(cluster.bootstrap, topic.topic, detections, keyed=True))
    position = cluster.directory / "outbox" / "partition-0"
    position.mkdir(parents=True)
    (position / "position").write_bytes(b'{"next": 5}')  # 0 to 4 are in the outboxes
    asyncio.run(commit(cluster.bootstrap, cluster.name, topic, committed))  # 5 to 11 lost
    cluster.settings["kafka"]["stalled_after_seconds"] = stalled_after
    cluster.start_worker()
    assert cluster.alerted(detections[5:]) == sorted(detections[5:])
    assert found_by in cluster.logs()


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """Commit `offset` for `group`, which has no members yet. Without auto-commit: on
    stopping, an auto-committing consumer commits its own position over `offset`, the
    partition's end when it had looked its position up before the commit."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()
    # a setup that did not hold fails here, not as alerts missing at the test's deadline
    kept = await committed_offsets(bootstrap, group, [tp])
    assert kept[tp] == offset, f"{group} did not keep offset {offset}"


async def committed_offsets(
    bootstrap: str, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """`group`'s committed offset of each of `partitions`, read without joining it or
    committing anything."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        return {tp: await reader.committed(tp) for tp in partitions}
    finally:
        await reader.stop()


def test_malformed_records_are_dead_lettered_and_the_stream_goes_on(cluster: Cluster) -> None:
    cluster.start_worker()
    good = (ROOT / "samples").glob("github/*.jsonl")
    record = next(line for path in sorted(good) for line in path.read_bytes().splitlines() if line)
    asyncio.run(
        publish(
            cluster.bootstrap,
            f"{cluster.name}.audit.raw.github",
            [b"{not json", b'{"action": "repo.create"}', b"[1, 2]", record],
        )
    )
    letters = asyncio.run(
        wait_for_records(cluster.bootstrap, f"{cluster.name}.detector.deadletter", 3)
    )
    reasons = [orjson.loads(letter)["reason"] for letter in letters]
    assert any(reason.startswith("not JSON") for reason in reasons), reasons
    assert any("array" in reason for reason in reasons), reasons
    originals = {orjson.loads(letter)["original"] for letter in letters}
    assert "{not json" in originals
    events = asyncio.run(wait_for_records(cluster.bootstrap, f"{cluster.name}.audit.events", 1))
    assert orjson.loads(events[0])["event.source"] == "github"


async def publish(bootstrap: str, topic: str, values: list[bytes], *, keyed: bool = False) -> int:
    """`values` to partition 0 of `topic` (keyed by their detection id with `keyed`);
    the offset of the last."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    offset = -1
    try:
        for value in values:
            key = orjson.loads(value)["id"].encode() if keyed else None
            sent = await producer.send_and_wait(topic, value, key=key, partition=0)
            offset = sent.offset
    finally:
        await producer.stop()
    return offset


async def wait_for_records(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The first `count` data records' values of `topic` (control records aside)."""
    records = await read_records(bootstrap, topic, lambda found: len(found) >= count)
    return [record.value for record in records[:count] if record.value is not None]


async def read_records(
    bootstrap: str, topic: str, enough: Callable[[list[ConsumerRecord[bytes, bytes]]], bool]
) -> list[ConsumerRecord[bytes, bytes]]:
    """The data records of `topic` (control records aside) from its start, with a plain
    consumer, until `enough` of them are there (within 120 s)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + 120
    try:
        while not enough(found):
            assert time.monotonic() < deadline, f"{len(found)} records on {topic}"
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(r for r in records if control_kind(r.headers) is None)
    finally:
        await consumer.stop()
    return found
