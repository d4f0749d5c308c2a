"""Topics before a worker starts: create the missing ones, refuse mismatched ones.

Every topic has `kafka.partitions` partitions: the correlation state table is partitioned
like `detector.hits`, and a group must keep its partition, so a topic with another count
is an error to fix by hand (or with another `topic_prefix`), never something to change
under running workers. The state changelog is compacted: only the newest state of each
partition matters.

Every partition of a new topic the workers consume starts with a no-op control record,
and the workers' group starts there with offset 1 committed: Faust refuses to commit
past a gap at the head of what it has acknowledged only when a committed offset above
zero exists, so without one a rebalance in the first seconds could commit past records
nobody processed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from detector.config import Settings

from .control import NOOP, control_headers
from .topics import TopicNames


class KafkaSetupError(RuntimeError):
    """The brokers cannot be reached or a topic does not fit the configuration."""


def wanted_topics(
    settings: Settings, raw_topics: Sequence[str], changelog: str
) -> dict[str, dict[str, str]]:
    """Topic name -> its configs."""
    names = TopicNames(settings.kafka.topic_prefix)
    topics: dict[str, dict[str, str]] = {name: {} for name in raw_topics}
    for name in (names.events, names.hits, names.detections, names.actions, names.deadletter):
        topics[name] = {}
    topics[changelog] = {"cleanup.policy": "compact"}
    return topics


async def ensure_topics(settings: Settings, raw_topics: Sequence[str], changelog: str) -> None:
    kafka = settings.kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=15_000)
    try:
        await admin.start()
        wanted = wanted_topics(settings, raw_topics, changelog)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, kafka.partitions, kafka.replication_factor, topic_configs=configs)
            for name, configs in wanted.items()
            if name not in existing
        ]
        if missing:
            # another worker may create them at the same time
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
                names = TopicNames(kafka.topic_prefix)
                consumed = [*raw_topics, names.hits, names.detections]
                await _start_group([t.name for t in missing if t.name in consumed], settings)
        present = sorted(name for name in wanted if name in existing)
        if present:
            wrong = []
            for described in await admin.describe_topics(present):
                count = len(described["partitions"])
                if count != kafka.partitions:
                    wrong.append(f"{described['topic']} has {count}")
            if wrong:
                raise KafkaSetupError(
                    f"topics with another partition count than kafka.partitions="
                    f"{kafka.partitions}: {', '.join(wrong)}; use another kafka.topic_prefix "
                    "or recreate them"
                )
    except KafkaError as exc:
        raise KafkaSetupError(f"Kafka at {kafka.bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def _start_group(topics: Sequence[str], settings: Settings) -> None:
    """A no-op record at the start of every partition of `topics`, and offset 1 committed
    for the workers' group (which has no members yet: the topics are new) where it is
    at offset 0."""
    kafka = settings.kafka
    if not topics:
        return
    tps = [TopicPartition(topic, p) for topic in topics for p in range(kafka.partitions)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        headers = control_headers(NOOP)
        sent = [
            await producer.send(tp.topic, b"{}", partition=tp.partition, headers=headers)
            for tp in tps
        ]
        # a producer may have been first: never commit past a record of someone else
        first = [tp for tp, future in zip(tps, sent, strict=True) if (await future).offset == 0]
    finally:
        await producer.stop()
    if not first:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=kafka.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(first)
        await consumer.commit(dict.fromkeys(first, 1))
    finally:
        await consumer.stop()
