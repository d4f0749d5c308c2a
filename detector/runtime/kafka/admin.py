"""Topics before a worker starts: create the missing ones, refuse mismatched ones.

Every topic has `kafka.partitions` partitions: the correlation state table is partitioned
like `detector.hits`, and a group must keep its partition, so a topic with another count
is an error to fix by hand (or with another `topic_prefix`), never something to change
under running workers. The state changelog is compacted: only the newest state of each
partition matters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from detector.config import Settings

from .topics import TopicNames


class KafkaSetupError(RuntimeError):
    """The brokers cannot be reached or a topic does not fit the configuration."""


def wanted_topics(
    settings: Settings, raw_topics: Sequence[str], changelog: str
) -> dict[str, dict[str, str]]:
    """Topic name -> its configs."""
    names = TopicNames(settings.kafka.topic_prefix)
    topics: dict[str, dict[str, str]] = {name: {} for name in raw_topics}
    for name in (names.events, names.hits, names.detections, names.deadletter):
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
