"""Kafka and MQTT sinks against real brokers: keys, order, retained state, deletions."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import socket

import aiomqtt
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from support.topics import read_topic

from correlator.config import KafkaSink as KafkaConfig
from correlator.config import MqttSink as MqttConfig
from correlator.model import CREATED, DELETED, UPDATED
from correlator.sinks.base import Record
from correlator.sinks.dead_letter import DeadLetter, DeadLetterKafka
from correlator.sinks.kafka import BATCH_BYTES, KafkaSink, murmur2
from correlator.sinks.mqtt import MqttSink, alert_topic

_ids = itertools.count()


def _record(seq: int, identifier: str, kind: str) -> Record:
    body = {"seq": seq, "at": 100.0 + seq, "kind": kind, "alert": {"identifier": identifier}}
    return Record(seq, identifier, kind, orjson.dumps(body))


async def test_kafka_sink_keys_each_change_by_identifier(kafka_bootstrap: str) -> None:
    """Every record arrives, keyed by identifier, in `seq` order per identifier."""
    sink = KafkaSink("kafka", KafkaConfig(bootstrap_servers=kafka_bootstrap, topic="alerts"))
    await sink.start()
    try:
        kinds = [CREATED, UPDATED, UPDATED]
        batch = [_record(n + 1, f"n{n % 3}:Down::", kinds[n // 3]) for n in range(9)]
        await sink.publish(batch[:4])
        await sink.publish(batch[4:])
    finally:
        await sink.stop()
    got = [
        (key, value["seq"])
        for key, value in await read_topic(kafka_bootstrap, "alerts", lambda got: len(got) >= 9)
    ]
    for n in range(3):
        seqs = [seq for key, seq in got if key == f"n{n}:Down::".encode()]
        assert seqs == [n + 1, n + 4, n + 7]


def test_murmur2_is_kafkas() -> None:
    """The word-at-a-time murmur2 gives aiokafka's (the Java client's) hash for any key."""
    rng = random.Random(7)
    for length in range(200):
        for _ in range(5):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data)


async def test_kafka_sink_batches_follow_the_default_partitioner(kafka_bootstrap: str) -> None:
    """Several batches' worth of records over three partitions: each record once, on the
    partition Kafka's default partitioner gives its key, in `seq` order per key."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("spread", num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    sink = KafkaSink("kafka", KafkaConfig(bootstrap_servers=kafka_bootstrap, topic="spread"))
    filler = "x" * 1000
    records = [
        Record(seq, f"node-{seq % 50}:Down::", UPDATED, orjson.dumps({"seq": seq, "f": filler}))
        for seq in range(1, 3 * BATCH_BYTES // 1000)
    ]
    await sink.start()
    try:
        await sink.publish(records)
    finally:
        await sink.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition("spread", p) for p in range(3)]
        consumer.assign(partitions)
        got: list[tuple[int, bytes, int]] = []
        async with asyncio.timeout(20):
            while len(got) < len(records):
                for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                    got += [(tp.partition, m.key, orjson.loads(m.value)["seq"]) for m in messages]
    finally:
        await consumer.stop()
    assert sorted(seq for _, _, seq in got) == [r.seq for r in records]
    for partition, key, _ in got:
        assert partition == DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2])
    for key in {key for _, key, _ in got}:
        seqs = [seq for _, k, seq in got if k == key]
        assert seqs == sorted(seqs)


async def test_mqtt_sink_keeps_the_live_table_retained(mqtt_port: int) -> None:
    """A late subscriber sees each alert's last change; a deletion removes the alert."""
    prefix = f"correlator/alerts{next(_ids)}"
    sink = MqttSink("mqtt", MqttConfig(url=f"mqtt://127.0.0.1:{mqtt_port}", prefix=prefix))
    await sink.start()
    try:
        await sink.publish(
            [
                _record(1, "a:Down::", CREATED),
                _record(2, "b/c+#:Down::", CREATED),
                _record(3, "a:Down::", UPDATED),
                _record(4, "gone:Down::", CREATED),
            ]
        )
        await sink.publish([_record(5, "gone:Down::", DELETED)])
    finally:
        await sink.stop()
    retained: dict[str, int] = {}
    async with aiomqtt.Client("127.0.0.1", mqtt_port) as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        with contextlib.suppress(TimeoutError):  # retained messages come at once; then quiet
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    payload = message.payload
                    assert isinstance(payload, bytes) and payload  # empty ones are not retained
                    retained[str(message.topic)] = orjson.loads(payload)["seq"]
    assert retained == {
        alert_topic(prefix, "a:Down::"): 3,
        f"{prefix}/b%2Fc%2B%23:Down::": 2,
    }


async def test_kafka_dead_letters_connect_on_the_first_letter(kafka_bootstrap: str) -> None:
    """The Kafka dead-letter sink starts without its broker (it connects on the first
    letter); a letter written while the broker is away raises (the pipeline retries); with
    the broker there, the letters land keyed by source."""
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    nowhere = f"127.0.0.1:{free.getsockname()[1]}"
    free.close()
    away = DeadLetterKafka(nowhere, "dead")
    async with asyncio.timeout(1):
        await away.start()
    letter = DeadLetter(1.0, "http", "invalid", "missing field", b'{"node": "x"}')
    with pytest.raises(KafkaError):
        await away.write([letter])
    await away.stop()
    sink = DeadLetterKafka(kafka_bootstrap, "dead")
    await sink.start()
    try:
        await sink.write([letter, dataclasses.replace(letter, source="mqtt-0")])
    finally:
        await sink.stop()
    got = [
        (key, value["reason"])
        for key, value in await read_topic(kafka_bootstrap, "dead", lambda got: len(got) >= 2)
    ]
    assert sorted(got) == [(b"http", "invalid"), (b"mqtt-0", "invalid")]
