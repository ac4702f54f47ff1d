"""Kafka source: a consumer group member whose offsets live in the state store.

The offsets that count are the ones stored with the journal batch holding the
messages (DESIGN.md §6): on start, and whenever partitions are assigned, the
consumer seeks to them, so a `kill -9` at any instant neither loses an event
nor counts one twice. Where the store has no offset for a partition, the
group's committed offset (else the earliest) is used. After a batch is
durable its offsets are also committed to Kafka, only for lag dashboards.

Reading does not wait for the previous batch to be durable: up to `IN_FLIGHT`
batches are submitted ahead, and a second task awaits them in order (then
commits to Kafka). Before partitions are revoked every batch in flight is
made durable, so a new assignment seeks to offsets that include them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from correlator.config import KafkaSource as KafkaConfig
from correlator.sources.base import Durable, Received, SourceBase, Submit
from correlator.store.base import OffsetKey

IN_FLIGHT = 2  # batches submitted and not yet durable: one is read while another commits
# How long a fetch may wait for data. Kafka answers as soon as data is there; a broker
# that holds every fetch this long (tansu does) would add it to each event's latency.
FETCH_MAX_WAIT_MS = 10

Pending = asyncio.Queue[tuple[Durable, dict[TopicPartition, int]]]


class Partitions(Protocol):
    """Where a partitioned source's partitions live: one engine (scope) each."""

    async def assign(self, key: OffsetKey) -> int | None:
        """Open the partition's scope (restored from the store); its stored offset."""

    async def revoke(self, key: OffsetKey) -> None:
        """Commit the partition's scope and hand it over (a snapshot), then drop it."""


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, start each partition where the store says it stopped."""

    def __init__(self, source: KafkaSource, offsets: Mapping[OffsetKey, int]) -> None:
        self._source = source
        self._offsets = offsets

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source.settle()
        partitions = self._source.partitions
        if partitions is not None:
            for tp in sorted(revoked):
                await partitions.revoke((self._source.name, tp.topic, tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer, partitions = self._source.consumer, self._source.partitions
        for tp in sorted(assigned):
            key = (self._source.name, tp.topic, tp.partition)
            if partitions is not None:
                stored = await partitions.assign(key)
            else:
                stored = self._offsets.get(key)
            if consumer is not None and stored is not None:
                consumer.seek(tp, stored)


class KafkaSource(SourceBase):
    """Reads JSON values in `getmany` batches; the message key is kept."""

    def __init__(self, name: str, config: KafkaConfig, *, max_batch: int = 5000) -> None:
        super().__init__(name)
        self.config = config
        self.max_batch = max_batch
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: Partitions | None = None  # set when the source is `partitioned`
        self._lag: dict[tuple[str, int], int] = {}  # (topic, partition) → messages behind
        self._keys: dict[TopicPartition, OffsetKey] = {}
        self._pending: Pending = asyncio.Queue(IN_FLIGHT)

    def lag(self) -> int:
        """Messages not yet read, over the assigned partitions (as of the last durable batch)."""
        return sum(self._lag.values())

    async def settle(self) -> None:
        """Return once every batch submitted so far is durable (or has failed)."""
        await self._pending.join()

    async def run(self, submit: Submit, offsets: Mapping[OffsetKey, int]) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers,
            group_id=self.config.group_id,
            enable_auto_commit=False,
            heartbeat_interval_ms=int(self.config.heartbeat_interval * 1000),
            session_timeout_ms=int(self.config.session_timeout * 1000),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self.consumer = consumer
        self._pending = asyncio.Queue(IN_FLIGHT)
        consumer.subscribe(self.config.topics, listener=_SeekToStored(self, offsets))
        await consumer.start()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._acknowledge(consumer))
                while True:
                    await self._poll(consumer, submit)
        except BaseExceptionGroup as failed:  # a failed commit: raised as it came, as before
            raise failed.exceptions[0] from None
        finally:
            self._connected = False
            await consumer.stop()
            self.consumer = None

    async def _poll(self, consumer: AIOKafkaConsumer, submit: Submit) -> None:
        """One `getmany` batch, submitted (waiting while IN_FLIGHT batches are not durable)."""
        try:
            fetched = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
        except KafkaError:
            self._connected = False
            await asyncio.sleep(0.5)
            return
        self._connected = True
        batch: list[Received] = []
        positions: dict[TopicPartition, int] = {}
        for tp, messages in fetched.items():
            if not messages:
                continue
            key = self._keys.get(tp) or self._keys.setdefault(
                tp, (self.name, tp.topic, tp.partition)
            )
            name = self.name
            batch += [Received(m.value or b"", name, key, m.offset, m.key) for m in messages]
            positions[tp] = messages[-1].offset + 1
        if batch:
            await self._pending.put((await submit(batch), positions))

    async def _acknowledge(self, consumer: AIOKafkaConsumer) -> None:
        """Await each batch until durable, in order; then note the lag and commit to Kafka."""
        pending = self._pending
        try:
            while True:
                durable, positions = await pending.get()
                try:
                    await durable  # a failed commit ends the source: nothing more acknowledged
                finally:
                    pending.task_done()
                for tp, position in positions.items():  # the fetch's high watermark: no request
                    high = consumer.highwater(tp)
                    if high is not None:
                        self._lag[(tp.topic, tp.partition)] = max(0, high - position)
                with contextlib.suppress(KafkaError):  # for lag dashboards: the store's count
                    await consumer.commit(positions)
        finally:  # stopping: a rebalance listener waiting in `settle` must not hang
            while not pending.empty():
                pending.get_nowait()
                pending.task_done()
