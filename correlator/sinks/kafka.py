"""Kafka sink: one message per change, keyed by identifier (a row's changes stay in order).

A published batch is split by partition and each part goes to the producer
as whole record batches (`create_batch`/`send_batch`). One `send` per record
cost more than the engine (a future, the accumulator, aiokafka's pure-Python
murmur2 per key), and its 16 KiB batches let the producer move only a few
dozen records per turn of a busy event loop: the sink fell behind its input.
Records go to the partition Kafka's default partitioner would choose for the
key (murmur2, as the Java client), so other producers keyed alike agree.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

from aiokafka import AIOKafkaProducer

from correlator.config import KafkaSink as KafkaConfig
from correlator.sinks.base import Record

# one produce request per batch: large, yet under the brokers' default 1 MB message limit
BATCH_BYTES = 512 * 1024
PARTITION_CACHE = 100_000  # identifiers whose partition is remembered (then forgotten at once)

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`Utils.murmur2` of the Java client), a 32-bit word at a time."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail:
        h = ((h ^ data[whole]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


class KafkaSink:
    def __init__(self, name: str, config: KafkaConfig) -> None:
        self.name = name
        self.config = config
        self._producer: AIOKafkaProducer | None = None
        self._partitions: list[int] = []  # the topic's, sorted: what the cache was built for
        self._partition_of: dict[str, int] = {}

    async def start(self) -> None:
        # acks=all and no idempotence: the test broker has no InitProducerId, and
        # duplicates after a retry are what `seq` is for
        producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers,
            acks="all",
            max_batch_size=BATCH_BYTES,
        )
        await producer.start()
        self._producer = producer

    async def publish(self, records: list[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the Kafka sink is not started")
        topic = self.config.topic
        sent: list[asyncio.Future[object]] = []
        parts = self._split(records, sorted(await producer.partitions_for(topic)))
        for partition, part in parts.items():
            batches = self._batches(producer, part)
            sent += [await producer.send_batch(b, topic, partition=partition) for b in batches]
        await asyncio.gather(*sent)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def _split(self, records: list[Record], partitions: list[int]) -> dict[int, list[Record]]:
        """The records of each partition, in order."""
        if partitions != self._partitions:  # partitions added: keys move, as with Kafka's own
            self._partitions = partitions
            self._partition_of = {}
        cache = self._partition_of
        parts: dict[int, list[Record]] = {}
        for record in records:
            partition = cache.get(record.identifier)
            if partition is None:
                if len(cache) >= PARTITION_CACHE:
                    cache.clear()
                index = murmur2(record.identifier.encode()) & 0x7FFFFFFF
                partition = cache[record.identifier] = partitions[index % len(partitions)]
            parts.setdefault(partition, []).append(record)
        return parts

    @staticmethod
    def _batches(producer: AIOKafkaProducer, records: list[Record]) -> Iterator[object]:
        """Record batches of at most BATCH_BYTES (a larger record goes alone)."""
        batch = producer.create_batch()
        for record in records:
            key = record.identifier.encode()
            if batch.append(key=key, value=record.payload, timestamp=None) is None:
                yield batch
                batch = producer.create_batch()
                batch.append(key=key, value=record.payload, timestamp=None)
        batch.close()  # complete: the producer sends it at once instead of lingering
        yield batch
