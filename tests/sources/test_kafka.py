"""The Kafka source against a real broker (tansu): batches, keys, offsets from the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.committer import Committer, until

from correlator.config import KafkaSource as KafkaConfig
from correlator.sources.base import Durable, Received
from correlator.sources.kafka import KafkaSource
from correlator.store.base import OffsetKey


async def _produce(bootstrap: str, topic: str, values: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n in values:
            await producer.send(topic, b'{"n": %d}' % n, key=b"k%d" % n, partition=n % 2)
        await producer.flush()
    finally:
        await producer.stop()


async def _create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()


def _config(bootstrap: str, topic: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers=bootstrap, topics=[topic], heartbeat_interval=0.1, session_timeout=1.0
    )


async def _consume(
    bootstrap: str, topic: str, offsets: Mapping[OffsetKey, int], expect: int
) -> Committer:
    pipeline = Committer()
    pipeline.offsets.update(offsets)
    source = KafkaSource("kafka", _config(bootstrap, topic))
    task = asyncio.create_task(source.run(pipeline.submit, offsets))
    try:
        await pipeline.wait_for(expect)
        assert source.connected
        await asyncio.sleep(0.5)  # nothing more arrives than expected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not source.connected
    return pipeline


def _numbers(pipeline: Committer) -> list[int]:
    return sorted(int(m.value[6:-1]) for m in pipeline.received)


async def test_a_restart_resumes_at_the_stored_offsets(kafka_bootstrap: str) -> None:
    """Every message once; after a restart only what came since, from the store's offsets."""
    await _create(kafka_bootstrap, "events")
    await _produce(kafka_bootstrap, "events", range(100))
    first = await _consume(kafka_bootstrap, "events", {}, 100)
    assert _numbers(first) == list(range(100))
    assert first.offsets == {("kafka", "events", 0): 50, ("kafka", "events", 1): 50}
    message = next(m for m in first.received if m.value == b'{"n": 7}')
    assert (message.key, message.offset_key, message.offset) == (
        b"k7",
        ("kafka", "events", 1),
        3,
    )
    await _produce(kafka_bootstrap, "events", range(100, 150))
    second = await _consume(kafka_bootstrap, "events", first.offsets, 50)
    assert _numbers(second) == list(range(100, 150))


async def test_the_store_wins_over_the_offsets_committed_to_kafka(kafka_bootstrap: str) -> None:
    """A crash after a Kafka commit but before the store's is impossible by design; the
    reverse (store ahead or behind Kafka's commit) must follow the store."""
    await _create(kafka_bootstrap, "replayed")
    await _produce(kafka_bootstrap, "replayed", range(20))
    await _consume(kafka_bootstrap, "replayed", {}, 20)  # commits 10/10 to Kafka
    stored = {("kafka", "replayed", 0): 6, ("kafka", "replayed", 1): 10}
    again = await _consume(kafka_bootstrap, "replayed", stored, 4)
    assert _numbers(again) == [12, 14, 16, 18]  # partition 0 holds the even numbers


async def test_lag_is_what_the_partitions_still_hold(kafka_bootstrap: str) -> None:
    """Messages behind each partition's high watermark, as of the last batch; 0 at the end."""
    await _create(kafka_bootstrap, "lagging")
    await _produce(kafka_bootstrap, "lagging", range(100))
    source = KafkaSource("kafka", _config(kafka_bootstrap, "lagging"), max_batch=10)
    seen: list[int] = []
    pipeline = Committer()

    async def submit(batch: list[Received]) -> Durable:
        seen.append(source.lag())
        return await pipeline.submit(batch)

    task = asyncio.create_task(source.run(submit, {}))
    try:
        await pipeline.wait_for(100)
        await until(lambda: source.lag() == 0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert max(seen) >= 40  # a partition of 50 read 10 at a time: 40 behind after the first


async def test_a_failed_commit_ends_the_source_with_its_error(kafka_bootstrap: str) -> None:
    """Batches are read ahead of the previous one's commit; a commit that fails still ends
    `run` with that error (nothing more is acknowledged)."""
    await _create(kafka_bootstrap, "failing")
    await _produce(kafka_bootstrap, "failing", range(10))
    pipeline = Committer()
    pipeline.fail_next = True
    source = KafkaSource("kafka", _config(kafka_bootstrap, "failing"))
    with pytest.raises(OSError, match="disk full"):
        async with asyncio.timeout(20):
            await source.run(pipeline.submit, {})
    assert source.consumer is None and not source.connected
