"""The test broker is a real Kafka: topics, keyed partitioning, consumer groups."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.kafka


async def test_records_round_trip_through_a_consumer_group(kafka_bootstrap: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = {}
        for index in range(30):
            meta = await producer.send_and_wait(topic, b"%d" % index, key=b"k%d" % (index % 5))
            sent[index] = meta.partition
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=topic, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: dict[int, int] = {}
        while len(seen) < 30:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "the broker delivered nothing within 10s"
            for tp, messages in batch.items():
                for message in messages:
                    assert message.value is not None
                    seen[int(message.value)] = tp.partition
    finally:
        await consumer.stop()
    assert seen == sent
    # one key, one partition
    for index in range(5, 30):
        assert sent[index] == sent[index - 5]
