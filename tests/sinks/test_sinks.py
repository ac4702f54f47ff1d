"""Kafka and MQTT sinks against real brokers: keys, order, retained state, deletions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import aiomqtt
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from correlator.config import KafkaSink as KafkaConfig
from correlator.config import MqttSink as MqttConfig
from correlator.model import CREATED, DELETED, UPDATED
from correlator.sinks.base import Record
from correlator.sinks.kafka import KafkaSink
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
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition("alerts", p) for p in consumer.partitions_for_topic("alerts")]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got: list[tuple[bytes, int]] = []
        async with asyncio.timeout(20):
            while len(got) < 9:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    got += [(m.key, orjson.loads(m.value)["seq"]) for m in messages]
    finally:
        await consumer.stop()
    for n in range(3):
        seqs = [seq for key, seq in got if key == f"n{n}:Down::".encode()]
        assert seqs == [n + 1, n + 4, n + 7]


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
