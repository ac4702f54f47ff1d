"""The engines of one daemon, by scope: what each journal, snapshot and offset is keyed by.

The default scope takes HTTP, MQTT, files and every Kafka source that is not
`partitioned`. A partitioned Kafka source has one engine per partition it is
assigned (scope `<source>:<topic>:<partition>`): when the consumer group
gives this daemon a partition, its engine is restored from the store (the
snapshot and journal another instance may have written to a shared
PostgreSQL), and when the group takes it away, the engine commits what it
holds, saves a snapshot for the next owner, and is dropped. Related events
must then share a partition (producers key them by site, service, ...):
engines of different partitions never see each other's alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from correlator.model import Alert
from correlator.pipeline import Pipeline
from correlator.ruleset.version import RuleVersion
from correlator.sinks.publisher import Publisher
from correlator.sources.base import Durable, Received, Rejected
from correlator.store.base import OffsetKey

log = structlog.get_logger("correlator.scopes")


def partition_scope(key: OffsetKey) -> str:
    """The scope of one partition of a partitioned source."""
    source, topic, partition = key
    return f"{source}:{topic}:{partition}"


class Scopes:
    """Opens, runs and closes one pipeline per scope; reads across all of them."""

    def __init__(
        self,
        make: Callable[[str], Pipeline],
        publisher: Publisher | None,
        *,
        timeout: float,
        rules: Callable[[], RuleVersion],
    ) -> None:
        self._make = make
        self._rules = rules  # the rules in force now (a reload changes them)
        self._publisher = publisher
        self._timeout = timeout  # for each close: commit, publish, snapshot
        self.pipelines: dict[str, Pipeline] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._opening: dict[str, asyncio.Task[Pipeline]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}  # a scope is reopened only after
        self.broken = asyncio.Event()  # a committer failed: `error` says why
        self.error: BaseException | None = None
        self.closing = False  # shutdown: partitions revoked now are not handed over
        self._revoked: set[str] = set()  # partitions taken away and not given back since

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(list(self.pipelines.values()))

    @contextlib.contextmanager
    def unless_closed(self, pipeline: Pipeline) -> Iterator[None]:
        """What goes to every scope (a reload, a silence) skips one closed meanwhile (a
        revoked partition: its next owner restores it under the rules in force); a scope
        still open that refuses it is shutting down, and that is raised."""
        try:
            yield
        except ConnectionAbortedError:
            if self.pipelines.get(pipeline.scope) is pipeline:
                raise

    # -- life cycle -------------------------------------------------------------------

    async def open(self, scope: str) -> Pipeline:
        """The scope's running pipeline, restored from the store the first time."""
        pipeline = self.pipelines.get(scope)
        if pipeline is not None:
            return pipeline
        if self.closing:  # shutdown: no new engine (a partition assigned while stopping)
            raise ConnectionAbortedError("correlator is shutting down")
        closing = self._closing.get(scope)
        if closing is not None:  # its last batch and snapshot first, or a restore misses them
            await asyncio.shield(closing)
            return await self.open(scope)
        opening = self._opening.get(scope)
        if opening is None:  # concurrent callers share one restore
            opening = self._opening[scope] = asyncio.create_task(self._restore(scope))
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(scope, None)

    async def _restore(self, scope: str) -> Pipeline:
        pipeline = self._make(scope)
        if self._publisher is not None:
            await self._publisher.open(scope)
        records = await pipeline.restore()
        if self._publisher is not None and records:
            await self._publisher.publish(scope, records)
        self.pipelines[scope] = pipeline
        task = self._running[scope] = asyncio.create_task(pipeline.run())
        task.add_done_callback(self._ended)
        current = self._rules()
        if current.digest != pipeline.rules.digest:  # a reload went by while this restored
            await pipeline.reload(current)
        log.info("scope opened", scope=scope, alerts=len(pipeline.engine.table))
        return pipeline

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A committer failed (the store): the daemon stops rather than run on without it."""
        if task.cancelled() or self.broken.is_set():
            return
        if task.exception() is not None:
            self.error = task.exception()
            self.broken.set()

    async def assign(self, key: OffsetKey) -> int | None:
        """The group gave us a partition: open its scope; where to read it from."""
        scope = partition_scope(key)
        self._revoked.discard(scope)
        pipeline = await self.open(scope)
        return pipeline.offsets.get(key)

    async def revoke(self, key: OffsetKey) -> None:
        """The group took a partition away: hand its state over (not at shutdown)."""
        if not self.closing:
            scope = partition_scope(key)
            self._revoked.add(scope)
            await self.close(scope)

    async def close(self, scope: str) -> None:
        """Commit what the scope holds, snapshot it for its next owner, and drop it."""
        pipeline = self.pipelines.pop(scope, None)
        task = self._running.pop(scope, None)
        if pipeline is None or task is None:
            return
        closing = self._closing[scope] = asyncio.create_task(self._close(pipeline, task))
        try:
            await asyncio.shield(closing)
        finally:
            if closing.done():
                self._closing.pop(scope, None)
        log.info("scope closed", scope=scope)

    async def _close(self, pipeline: Pipeline, task: asyncio.Task[None]) -> None:
        await self._stop(pipeline, task)
        await self._snapshot(pipeline, task)

    async def close_all(self) -> None:
        """Shutdown, after intake stopped: commit everything; `snapshot_all` once published."""
        for scope in list(self.pipelines):
            await self._stop(self.pipelines[scope], self._running[scope])

    async def snapshot_all(self) -> None:
        for scope, pipeline in list(self.pipelines.items()):
            await self._snapshot(pipeline, self._running[scope])

    async def _stop(self, pipeline: Pipeline, task: asyncio.Task[None]) -> None:
        pipeline.stop()
        with contextlib.suppress(BaseException):  # its error was seen by `_ended`
            await asyncio.wait_for(asyncio.shield(task), self._timeout)

    async def _snapshot(self, pipeline: Pipeline, task: asyncio.Task[None]) -> None:
        if not task.done() or task.cancelled() or task.exception() is not None:
            return
        with contextlib.suppress(Exception):  # a snapshot is a shortcut: the journal is kept
            await asyncio.wait_for(pipeline.final_snapshot(), self._timeout)

    # -- intake -------------------------------------------------------------------------

    async def submit_partitioned(self, messages: list[Received]) -> Durable:
        """Hand each partition's messages to its scope; durable once all of them are."""
        parts: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            assert message.offset_key is not None  # a partitioned source sets it
            parts.setdefault(partition_scope(message.offset_key), []).append(index)
        waiting: list[tuple[str, list[int], Durable]] = []
        for scope, indexes in parts.items():
            if scope in self._revoked:  # fetched before the rebalance: the new owner reads it
                continue
            pipeline = await self.open(scope)
            # a fetch from before a rebalance may hold what the scope already made durable
            fresh = [i for i in indexes if _ahead(pipeline, messages[i])]
            if fresh:
                durable = await pipeline.submit([messages[i] for i in fresh])
                waiting.append((scope, fresh, durable))
        return asyncio.ensure_future(self._all_durable(waiting))

    async def _all_durable(self, waiting: list[tuple[str, list[int], Durable]]) -> list[Rejected]:
        """Every part durable; a part refused because its partition was taken away
        meanwhile is left to the new owner, which reads it from the offset it stored."""
        rejected: list[Rejected] = []
        for scope, indexes, durable in waiting:
            try:
                refused = await durable
            except ConnectionAbortedError:
                if scope in self._revoked:
                    continue
                raise
            rejected.extend((indexes[i], why) for i, why in refused)
        return rejected

    # -- reading across scopes ------------------------------------------------------------

    def rows(self) -> Iterator[Alert]:
        for pipeline in self:
            yield from pipeline.engine.table.rows.values()

    def holding(self, identifier: str) -> Pipeline | None:
        """The pipeline whose table has the row (identifiers are unique across scopes)."""
        for pipeline in self:
            if identifier in pipeline.engine.table.rows:
                return pipeline
        return None

    def incidents(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for pipeline in self:
            merged.update(pipeline.incidents)
        return merged


def _ahead(pipeline: Pipeline, message: Received) -> bool:
    """Whether a message is past what the scope stored for its partition."""
    assert message.offset_key is not None
    return message.offset >= pipeline.offsets.get(message.offset_key, -1)
