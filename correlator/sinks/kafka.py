"""Kafka sink: one message per change, keyed by identifier (a row's changes stay in order)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from correlator.config import KafkaSink as KafkaConfig
from correlator.sinks.base import Record


class KafkaSink:
    def __init__(self, name: str, config: KafkaConfig) -> None:
        self.name = name
        self.config = config
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # acks=all and no idempotence: the test broker has no InitProducerId, and
        # duplicates after a retry are what `seq` is for
        producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers, acks="all", linger_ms=5
        )
        await producer.start()
        self._producer = producer

    async def publish(self, records: list[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the Kafka sink is not started")
        topic = self.config.topic
        sent = [await producer.send(topic, r.payload, key=r.identifier.encode()) for r in records]
        await asyncio.gather(*sent)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
