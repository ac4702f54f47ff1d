"""Reading back what a test wrote to a Kafka topic: every partition, from the beginning."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

Message = tuple[bytes | None, Any]  # key, value parsed as JSON


async def read_topic(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Message]], bool],
    *,
    linger: float = 0.0,
    max_bytes: int = 1_048_576,
) -> list[Message]:
    """The topic's messages, read until `done` says enough (then for `linger` seconds more,
    for any that should not be there); `max_bytes` per partition fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, max_partition_fetch_bytes=max_bytes)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got: list[Message] = []
        async with asyncio.timeout(20):
            while not done(got):
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    got += [(m.key, orjson.loads(m.value)) for m in messages]
        if linger:
            for messages in (await consumer.getmany(timeout_ms=int(linger * 1000))).values():
                got += [(m.key, orjson.loads(m.value)) for m in messages]
        return got
    finally:
        await consumer.stop()
