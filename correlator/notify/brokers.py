"""Receivers that publish to a broker (`kafka_configs`, `mqtt_configs`).

The message is the webhook payload (Alertmanager's JSON, version 4): on Kafka
keyed by the group key, so one group's notifications stay in order on one
partition; on MQTT at QoS 1, not retained. The producer or client is
connected on first use and kept; a broker that is away fails the attempt,
which the outbox retries.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from correlator.notify.webhook import payload
from correlator.sinks.mqtt import MqttConnection


class KafkaReceiver:
    kind = "kafka"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        self.bootstrap = str(config.get("bootstrap_servers") or "")
        self.topic = str(config.get("topic") or "")
        if not self.bootstrap or not self.topic:
            raise ValueError("kafka_configs: bootstrap_servers and topic are required")
        self.external_url = external_url
        self._producer: AIOKafkaProducer | None = None

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = payload(notification, self.external_url)
        await self.publish(orjson.dumps(body), str(body["groupKey"]).encode())

    async def publish(self, value: bytes, key: bytes) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            await producer.start()
            self._producer = producer
        await self._producer.send_and_wait(self.topic, value, key=key)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):  # closing: a broker gone is not an error
                await producer.stop()


class MqttReceiver:
    kind = "mqtt"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        url, self.topic = str(config.get("url") or ""), str(config.get("topic") or "")
        if not url or not self.topic:
            raise ValueError("mqtt_configs: url and topic are required")
        self.external_url = external_url
        self._connection = MqttConnection(url)  # connected on first use, again after a failure

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        await self.publish(orjson.dumps(payload(notification, self.external_url)))

    async def publish(self, body: bytes) -> None:
        await self._connection.publish([(self.topic, body, False)])

    async def close(self) -> None:
        await self._connection.close()


class PolicyPublish:
    """A policy's `publish` action: the alert's JSON to the topic it names."""

    kind = "publish"

    def __init__(self) -> None:
        self._kafka: dict[tuple[str, str], KafkaReceiver] = {}
        self._mqtt: dict[tuple[str, str], MqttReceiver] = {}

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        ((kind, target),) = notification["request"].items()
        (row,) = notification["alerts"]
        body = orjson.dumps(row)
        where = (str(target.get("bootstrap_servers") or target.get("url")), str(target["topic"]))
        if kind == "kafka":
            producer = self._kafka.get(where) or self._kafka.setdefault(
                where, KafkaReceiver(dict(target), "")
            )
            await producer.publish(body, str(row["identifier"]).encode())
        else:
            mqtt = self._mqtt.get(where) or self._mqtt.setdefault(
                where, MqttReceiver(dict(target), "")
            )
            await mqtt.publish(body)

    async def close(self) -> None:
        for producer in self._kafka.values():
            await producer.close()
        for mqtt in self._mqtt.values():
            await mqtt.close()
