"""Kafka sink: one message per change, keyed by identifier (a row's changes stay in order).

A published batch is split by partition and each part goes to the producer
as whole record batches (`create_batch`/`send_batch`). One `send` per record
cost more than the engine (a future, the accumulator, aiokafka's pure-Python
murmur2 per key), and its 16 KiB batches let the producer move only a few
dozen records per turn of a busy event loop: the sink fell behind its input.
Records go to the partition Kafka's default partitioner would choose for the
key (murmur2, as the Java client), so other producers keyed alike agree.

A record over MAX_RECORD_BYTES is not sent: the brokers' default limit would
refuse it, and nothing would change on a retry. A batch that a broker with a
lower limit refuses as too large is sent again one record at a time; what is
refused alone is given up too. Both are raised as `Rejected` once the rest of
the batch is published (a record sent again alone may follow later records of
its key: their `seq` tells).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from correlator.config import KafkaSink as KafkaConfig
from correlator.sinks.base import Record, Rejected

# one produce request per batch: large, yet under the brokers' default 1 MB message limit
BATCH_BYTES = 512 * 1024
# key and value of one record: in a batch of its own it stays under the brokers' default
# limit (message.max.bytes, 1,048,588 bytes a batch, headers included)
MAX_RECORD_BYTES = 1_000_000
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)  # the broker's limit
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
        rejected: list[tuple[Record, str]] = []
        fitting: list[Record] = []
        for record in records:
            if _too_large(record):
                rejected.append((record, f"larger than {MAX_RECORD_BYTES} bytes"))
            else:
                fitting.append(record)
        refused = await self._send(producer, fitting)
        while refused:
            held, error = refused.pop()
            if len(held) == 1:
                rejected.append((held[0], f"refused by the broker: {type(error).__name__}"))
            else:  # the broker's limit is under BATCH_BYTES: one record at a time
                for record in held:
                    refused += await self._send(producer, [record])
        if rejected:
            raise Rejected("too_large", sorted(rejected, key=lambda r: r[0].seq))

    async def _send(
        self, producer: AIOKafkaProducer, records: list[Record]
    ) -> list[tuple[list[Record], Exception]]:
        """Send the records; return each batch the broker refused as too large, with its error.

        Any other error is raised once every batch is settled (the caller retries).
        """
        topic = self.config.topic
        sent: list[tuple[list[Record], asyncio.Future[object]]] = []
        parts = self._split(records, sorted(await producer.partitions_for(topic)))
        for partition, part in parts.items():
            for batch, held in self._batches(producer, part):
                sent.append((held, await producer.send_batch(batch, topic, partition=partition)))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        refused: list[tuple[list[Record], Exception]] = []
        for (held, _), result in zip(sent, results, strict=True):
            if isinstance(result, TOO_LARGE):
                refused.append((held, result))
            elif isinstance(result, BaseException):
                raise result
        return refused

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
    def _batches(
        producer: AIOKafkaProducer, records: list[Record]
    ) -> Iterator[tuple[object, list[Record]]]:
        """Record batches of at most BATCH_BYTES (a larger record goes alone), with their records."""
        batch = producer.create_batch()
        held: list[Record] = []
        for record in records:
            key = record.identifier.encode()
            if batch.append(key=key, value=record.payload, timestamp=None) is None:
                yield batch, held
                batch, held = producer.create_batch(), []
                batch.append(key=key, value=record.payload, timestamp=None)
            held.append(record)
        batch.close()  # complete: the producer sends it at once instead of lingering
        yield batch, held


def _too_large(record: Record) -> bool:
    """Key and value over MAX_RECORD_BYTES (the key is encoded only when it could matter)."""
    size = len(record.payload)
    return (
        size + 4 * len(record.identifier) > MAX_RECORD_BYTES
        and size + len(record.identifier.encode()) > MAX_RECORD_BYTES
    )
