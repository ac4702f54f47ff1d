"""Hands each committed batch of change records to every sink, in order, at least once.

Within a committed batch, an `alert.updated` that another update of the same
alert follows is dropped (`coalesce`): a storm of repeats costs one record per
alert per batch. One task per sink drains its own bounded queue, so a slow sink delays only
itself until its queue is full; then the committer waits (backpressure: the
sources stop reading) instead of dropping records. A failed publish is
retried with exponential backoff; after each published batch the sink's
position (last `seq`) is stored, and records at or below it are skipped when
the journal tail is replayed after a restart.

A record a sink can never publish (`Rejected`: too large) is set aside
instead: logged, counted in `rejected` and, when the publisher has a
dead-letter sink, written there (its first LETTER_BYTES); the lane moves on.

`stop` does not wait for a sink that is down: its lane gives up at the next
failure, and what it held is published again from the journal tail after a
restart (its position did not move; snapshots wait for it, so the tail is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import structlog

from correlator.model import UPDATED
from correlator.sinks.base import Record, Rejected, Sink
from correlator.sinks.dead_letter import DeadLetter, DeadLetterSink
from correlator.store.base import Store

log = structlog.get_logger("correlator.sinks")

# of a record set aside, what its dead letter keeps: enough to tell what it was (the whole
# record can be made again from the journal), and small enough for any dead-letter broker
LETTER_BYTES = 64 * 1024


def coalesce(records: list[Record]) -> list[Record]:
    """Drop an `alert.updated` followed, in the batch, by another of the same alert.

    The later record carries the whole row, so a consumer loses nothing but a
    step (a gap in `seq`); created, cleared, deleted and every record that
    comes between two updates of an alert are kept, in order.
    """
    later: dict[str, str] = {}  # identifier → kind of its next record in the batch
    kept: list[Record] = []
    for record in reversed(records):
        if record.kind == UPDATED and later.get(record.identifier) == UPDATED:
            continue
        later[record.identifier] = record.kind
        kept.append(record)
    kept.reverse()
    return kept


MERGED_RECORDS = 50_000  # records of queued batches published together, at most


class _Lane:
    """One sink, its queue and how far it has published, per scope."""

    def __init__(self, sink: Sink, size: int) -> None:
        self.sink = sink
        self.positions: dict[str, int] = {}  # scope → last published seq
        self.queue: asyncio.Queue[tuple[str, list[Record]] | None] = asyncio.Queue(size)
        self.failures = 0


class Publisher:
    """Every sink's lane; records are numbered per scope (one engine's partitions)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        store: Store,
        *,
        queue_size: int = 256,
        backoff: tuple[float, float] = (0.1, 30.0),
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        self.sinks = sinks
        self.store = store
        self.dead_letter = dead_letter  # for records a sink rejects
        self.rejected: Counter[str] = Counter()  # records set aside, by sink (a metric)
        self.queue_size = queue_size
        self.backoff = backoff
        self._lanes: list[_Lane] = []
        self._moved = asyncio.Condition()  # a lane's position moved
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start every sink."""
        for sink in self.sinks:
            await sink.start()
            self._lanes.append(_Lane(sink, self.queue_size))

    async def open(self, scope: str) -> None:
        """Load how far each sink has published the scope's records (before publishing them)."""
        for lane in self._lanes:
            lane.positions[scope] = await self.store.sink_position(lane.sink.name, scope)

    async def publish(self, scope: str, records: list[Record]) -> None:
        """Queue a scope's batch for every sink (waits while a sink's queue is full)."""
        records = coalesce(records)
        for lane in self._lanes:
            position = lane.positions.get(scope, 0)
            fresh = [r for r in records if r.seq > position]
            if fresh:
                await lane.queue.put((scope, fresh))

    async def caught_up(self, scope: str, seq: int) -> None:
        """Return once every sink has published the scope's records up to `seq` (snapshots)."""
        async with self._moved:
            await self._moved.wait_for(
                lambda: all(lane.positions.get(scope, 0) >= seq for lane in self._lanes)
            )

    def lag(self) -> dict[str, int]:
        """Batches waiting per sink (a metric)."""
        return {lane.sink.name: lane.queue.qsize() for lane in self._lanes}

    async def run(self) -> None:
        """Drain every sink's queue until `stop`; each lane ends once its queue is empty."""
        async with asyncio.TaskGroup() as group:
            for lane in self._lanes:
                group.create_task(self._drain(lane))

    async def stop(self) -> None:
        """End `run` once every lane has published what is queued, or its sink failed."""
        self._stopping.set()
        for lane in self._lanes:
            with contextlib.suppress(asyncio.QueueFull):  # full: its lane is busy and sees the flag
                lane.queue.put_nowait(None)

    async def close(self) -> None:
        for lane in self._lanes:
            with contextlib.suppress(Exception):  # closing: a broker gone is not an error
                await lane.sink.stop()

    async def _drain(self, lane: _Lane) -> None:
        """Publish the lane's batches in order; the ones queued behind a publish go as one.

        A Kafka produce round trip (10-17 ms on a busy machine under `bench/e2e.py`)
        longer than the commits' cadence (10 ms) queued a batch behind each one, a
        publish and a position stored apiece: latency grew by the round trip with
        every batch waiting. Taking what waited in one publish catches up at once.
        """
        later: tuple[str, list[Record]] | None = None
        while True:
            item = later if later is not None else await lane.queue.get()
            later = None
            if item is None:
                return
            scope, records = item
            ended = False
            merged = len(records)
            while merged < MERGED_RECORDS and not lane.queue.empty():
                queued = lane.queue.get_nowait()
                if queued is None:
                    ended = True
                    break
                if queued[0] != scope:  # another engine's: its own publish, next
                    later = queued
                    break
                records = [*records, *queued[1]]
                merged += len(queued[1])
            if merged > len(item[1]):  # an update repeated in a later batch goes once
                records = coalesce(records)
            if not await self._send(lane, scope, records):
                return  # stopping with the sink down: the journal keeps the rest
            if ended or (self._stopping.is_set() and later is None and lane.queue.empty()):
                return

    async def _send(self, lane: _Lane, scope: str, records: list[Record]) -> bool:
        """Publish the batch and store the sink's position; False if `stop` came first."""
        try:
            if not await self._retried(lane, partial(lane.sink.publish, records)):
                return False
        except Rejected as rejected:
            if not await self._set_aside(lane, rejected):
                return False
        await self.store.set_sink_position(lane.sink.name, scope, records[-1].seq)
        async with self._moved:
            lane.positions[scope] = records[-1].seq
            self._moved.notify_all()
        return True

    async def _retried(self, lane: _Lane, attempt: Callable[[], Awaitable[None]]) -> bool:
        """Await `attempt` until it succeeds, with backoff; False if `stop` came first.

        `Rejected` is raised at once: no retry would help.
        """
        delay = self.backoff[0]
        while True:
            try:
                await attempt()
                return True
            except Rejected:
                raise
            except Exception:  # the broker is away: keep the batch and try again
                lane.failures += 1
                if await self._stopped_within(delay * (0.5 + random.random())):  # noqa: S311
                    return False
                delay = min(delay * 2, self.backoff[1])

    async def _set_aside(self, lane: _Lane, rejected: Rejected) -> bool:
        """Log, count and dead-letter what the sink rejected; False if `stop` came first."""
        name = lane.sink.name
        self.rejected[name] += len(rejected.records)
        letters: list[DeadLetter] = []
        for record, why in rejected.records:
            size = len(record.payload)
            identifier = record.identifier[:200]  # fields are not capped: neither is this
            log.error("record not published", sink=name, seq=record.seq, identifier=identifier,
                      kind=record.kind, bytes=size, reason=rejected.reason, why=why)  # fmt: skip
            what = f"{record.kind} of {identifier} (seq {record.seq}, {size} bytes): {why}"
            raw = record.payload[:LETTER_BYTES]
            letters.append(DeadLetter(time.time(), f"sink:{name}", rejected.reason, what, raw))
        if self.dead_letter is None:
            return True
        return await self._retried(lane, partial(self.dead_letter.write, letters))

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait before a retry (the jittered backoff); True at once if `stop` was called."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()
