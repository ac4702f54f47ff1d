"""The daemon: wiring (`App.__init__`) apart from running (`App.run`) apart from signals (cli).

`run` opens the store, builds the engine from the rules, restores it from
the journal, starts the sinks, then runs the committer, the sink publisher,
the sources and the HTTP server until `stop()`. Shutdown goes in the order
that loses nothing: stop intake (HTTP, then sources), commit what the
pipeline holds, let the sinks publish what is queued, close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry

from correlator.api.auth import Token
from correlator.api.server import http_server
from correlator.config import Config
from correlator.connectors import make_dead_letter, make_sink, make_source
from correlator.correlate.silences import Silence
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert
from correlator.notify.deliver import Deliverer, Integration
from correlator.notify.exec import Exec, PolicyExec
from correlator.notify.receivers import integrations
from correlator.notify.servicenow import PolicyTicket, ServiceNow
from correlator.observability.metrics import DaemonCollector, commit_histogram
from correlator.pipeline import Pipeline
from correlator.route.dispatch import NAME as DISPATCHER
from correlator.route.dispatch import Dispatcher
from correlator.ruleset.loader import RuleSet
from correlator.ruleset.version import RuleVersion
from correlator.scopes import Scopes
from correlator.sinks.base import Sink
from correlator.sinks.publisher import Publisher
from correlator.sources.base import Durable, Received, Source
from correlator.sources.kafka import KafkaSource
from correlator.store.lookups import SqlTables
from correlator.store.sql import open_store
from correlator.watch import RuleWatcher

log = structlog.get_logger("correlator")


class App:
    """One daemon; embeddable in tests (`await app.run()` in a task, `app.stop()`)."""

    def __init__(self, config: Config) -> None:
        """Build every part (a bad rule set raises RuleSetError here); no I/O yet."""
        self.config = config
        self.max_body_bytes = config.http.max_body_bytes
        tokens = config.auth.tokens if config.auth is not None else []
        self.tokens = [Token(t.name, t.role, t.secret()) for t in tokens]
        self.store = open_store(config.state.url, synchronous=config.state.synchronous)
        self.registry = CollectorRegistry()
        self.reloads: Counter[str] = Counter()  # by result: success, failure
        self.sources: list[Source] = [
            make_source(name, spec)
            for name, spec in zip(config.source_names, config.sources, strict=True)
        ]
        self.sinks: list[Sink] = [
            make_sink(name, spec)
            for name, spec in zip(config.sink_names, config.sinks, strict=True)
        ]
        self.dead_letter = make_dead_letter(config.dead_letter)
        # a record no broker will take (too large) goes to the dead letters, not round again
        self.publisher = Publisher(self.sinks, self.store, dead_letter=self.dead_letter)
        self.rules = RuleVersion.read(config.rules)  # the rules in force
        self.sql_tables = SqlTables(self.store, self.now)
        notify = config.notify
        host, port = config.http.host_port
        self.external_url = notify.external_url or f"http://{host}:{port}"
        self.integrations = self._integrations(self.rules)
        self.deliverer = Deliverer(
            self.store,
            lambda: self.integrations,
            clock=self.now,
            dead_letter=self.dead_letter,
            note=self._note,
            max_attempts=notify.max_attempts,
            backoff=(notify.retry_min, notify.retry_max),
            breaker_failures=notify.breaker_failures,
            breaker_open=notify.breaker_open,
            concurrency=notify.concurrency,
        )
        self._observe_commit = commit_histogram(self.registry).observe
        self.default_scope = config.state.scope
        self.pipeline = self._pipeline(self.default_scope)  # HTTP, MQTT, files, shared Kafka
        self.scopes = Scopes(
            self._pipeline,
            self.publisher if self.sinks else None,
            timeout=config.shutdown_timeout,
            rules=lambda: self.rules,
        )
        self.registry.register(
            DaemonCollector(
                self.scopes,
                self._connected,
                self.publisher.lag,
                self.reloads,
                self._deliveries,
                self.sql_tables.counts,
                sink_rejected=self.publisher.rejected,
            )
        )
        self.restored = False
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reload_requests: asyncio.Queue[None] = asyncio.Queue()

    def _pipeline(self, scope: str) -> Pipeline:
        """The pipeline of a scope (the default one is built once, with the app)."""
        if scope == self.default_scope and hasattr(self, "pipeline"):
            return self.pipeline
        state = self.config.state
        publishing = bool(self.sinks)
        return Pipeline(
            self.rules,
            self._engine,
            self.store,
            scope=scope,
            clock=self.now,
            dead_letter=self.dead_letter,
            publish=partial(self.publisher.publish, scope) if publishing else None,
            observe_commit=self._observe_commit,
            commit_interval=state.commit_interval,
            commit_max_events=state.commit_max_events,
            snapshot_entries=state.snapshot_entries,
            snapshot_interval=state.snapshot_interval,
            caught_up=partial(self.publisher.caught_up, scope) if publishing else None,
            delivers=lambda receiver: len(self.integrations.get(receiver, ())),
            actions_committed=self.deliverer.wake,
        )

    def _integrations(self, rules: RuleVersion) -> dict[str, list[Integration]]:
        built, skipped = integrations(rules.ruleset.receivers, self.external_url)
        for warning in skipped:
            log.warning("receiver not delivered", problem=warning)
        for integration in (i for found in built.values() for i in found):
            if isinstance(integration, Exec | PolicyExec):
                integration.note = self._note  # a runbook's output goes into the journal
            elif isinstance(integration, ServiceNow | PolicyTicket):
                integration.label = self._label  # the ticket goes back into the alerts
        return built

    async def _note(self, identifier: str, text: str) -> None:
        """A journal line on an alert, by correlator (an undeliverable notification)."""
        pipeline = self.scopes.holding(identifier)
        if pipeline is not None:
            await pipeline.act("journal", identifier, "correlator", text)

    async def _label(self, identifier: str, name: str, value: str) -> None:
        """A label set on an alert by a receiver (a ticket number), journaled."""
        pipeline = self.scopes.holding(identifier)
        if pipeline is not None:
            await pipeline.act("label", identifier, "correlator", f"{name}={value}")

    def _engine(self, rules: RuleSet) -> Engine:
        engine = self.config.engine
        return Engine(
            rules,
            max_lateness=engine.max_lateness,
            delete_cleared_after=engine.delete_cleared_after,
        )

    @property
    def engine(self) -> Engine:
        return self.pipeline.engine

    @property
    def incidents(self) -> Mapping[str, dict[str, Any]]:
        return self.scopes.incidents()

    @property
    def max_lateness(self) -> float:
        return self.config.engine.max_lateness

    def rows(self) -> Iterable[Alert]:
        return self.scopes.rows()

    def suppressors(self, alert: Alert) -> tuple[str, ...]:
        pipeline = self.scopes.holding(alert.identifier)
        return () if pipeline is None else pipeline.engine.suppressors(alert)

    def receivers_of(self, alert: Alert) -> list[str]:
        """The receivers the routing tree sends the alert to (none without a tree)."""
        route = self.rules.ruleset.route
        if route is None:
            return []
        return list(dict.fromkeys(r.opts.receiver for r in route.match(alert)))

    def receiver_names(self) -> list[str]:
        return [str(r.get("name", "")) for r in self.rules.ruleset.receivers]

    def alertmanager_config(self) -> str:
        return self.rules.ruleset.alertmanager_config

    def groups(self) -> list[tuple[dict[str, str], str, list[Alert]]]:
        found = []
        for pipeline in self.scopes:
            dispatcher = pipeline.engine.operators.get(DISPATCHER)
            if isinstance(dispatcher, Dispatcher):
                found.extend(dispatcher.groups())
        return found

    def silence_list(self) -> list[Silence]:
        return list(self.pipeline.engine.silences.by_id.values())

    async def silence(self, spec: dict[str, Any]) -> str | None:
        """Every engine of the daemon gets the silence (each journals it)."""
        for pipeline in self.scopes:
            with self.scopes.unless_closed(pipeline):
                refused = await pipeline.silence(spec)
                if refused is not None:
                    return refused
        return None

    async def expire_silence(self, sid: str) -> str | None:
        refused = None
        for pipeline in self.scopes:
            with self.scopes.unless_closed(pipeline):
                refused = await pipeline.expire_silence(sid) or refused
        return refused

    def row(self, identifier: str) -> Alert | None:
        pipeline = self.scopes.holding(identifier)
        return None if pipeline is None else pipeline.engine.table.get(identifier)

    # -- reload ----------------------------------------------------------------------

    async def reload(self) -> str:
        """Load and validate the rules directory, then swap it in; raise RuleSetError.

        A broken rule set is refused with its `file:line:col` errors and the
        running rules stay. One reload at a time (SIGHUP, `POST /-/reload`, a
        file change).
        """
        async with self._reload_lock:
            try:
                version = await asyncio.to_thread(
                    RuleVersion.read, self.config.rules, self.sql_tables.texts
                )
            except RuleSetError as exc:
                self.reloads["failure"] += 1
                log.error("reload refused", errors=[str(e) for e in exc.errors])
                raise
            self.rules = version
            old, self.integrations = self.integrations, self._integrations(version)
            for integration in (i for found in old.values() for i in found):
                close = getattr(integration, "close", None)
                if close is not None:  # a broker receiver's producer or client
                    await close()
            for pipeline in self.scopes:
                if version.digest != pipeline.rules.digest:
                    with self.scopes.unless_closed(pipeline):
                        await pipeline.reload(version)
            self.reloads["success"] += 1
            self.sql_tables.rules_changed()
            log.info("rules reloaded", summary=version.ruleset.summary())
            return version.ruleset.summary()

    def request_reload(self) -> None:
        """SIGHUP: reload in the background (the outcome is logged and counted)."""
        self._reload_requests.put_nowait(None)

    async def _reloading(self) -> None:
        while True:
            await self._reload_requests.get()
            with contextlib.suppress(RuleSetError, ConnectionAbortedError):  # or shutting down
                await self.reload()

    async def _read_sql_tables(self) -> None:
        """Start with the SQL lookup tables' rows (a failed read starts without them)."""
        if await self.sql_tables.read(self.rules.ruleset.sql_tables, all_tables=True):
            # the files loaded at construction, not read again: the rows are what is new
            self.rules = await asyncio.to_thread(self.rules.with_tables, self.sql_tables.texts)
            self.pipeline.rules = self.rules

    # -- what the HTTP layer reads ----------------------------------------------

    def now(self) -> float:
        return time.time()

    async def submit(self, messages: list[Received]) -> Durable:
        return await self.pipeline.submit(messages)

    async def history(
        self, since: float, until: float, identifier: str | None, limit: int
    ) -> list[dict[str, Any]]:
        records = await self.store.history(since, until, identifier=identifier, limit=limit)
        return [
            {
                "identifier": r.identifier,
                "serial": r.serial,
                "first_occurrence": r.first_occurrence,
                "last_occurrence": r.last_occurrence,
                "tally": r.tally,
                "acknowledged_by": r.acknowledged_by,
                "acknowledged_at": r.acknowledged_at,
                "cleared_at": r.cleared_at,
                "deleted_at": r.deleted_at,
                "alert": orjson.loads(r.alert),
            }
            for r in records
        ]

    async def act(self, action: str, identifier: str, who: str, value: str = "") -> str | None:
        pipeline = self.scopes.holding(identifier) or self.pipeline
        return await pipeline.act(action, identifier, who, value)

    def readiness(self) -> dict[str, bool]:
        checks = {"state_restored": self.restored}
        checks.update({f"source:{s.name}": s.connected for s in self.sources})
        return checks

    # -- running -------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self.store.open()
        try:
            await self._warn_unconfigured()
            await self.dead_letter.start()
            await self.publisher.start()
            publishing = asyncio.create_task(self.publisher.run())
            await self._read_sql_tables()
            await self.scopes.open(self.default_scope)
            # the start-up objects and the default engine's restored state live as long as
            # the process: spared from every full collection. Not a partition's engine,
            # restored later: frozen objects are never collected, and it is dropped when the
            # group takes its partition away
            gc.freeze()
            self.restored = True
            await self._serve(publishing)
        finally:
            await self.publisher.close()
            with contextlib.suppress(Exception):  # closing: a broker gone is not an error
                await self.dead_letter.stop()
            await self.store.close()

    async def _warn_unconfigured(self) -> None:
        """State kept for a source or sink no longer configured is most often one renamed,
        or moved in an unnamed list: it starts afresh (a Kafka source at the group's
        committed offsets, a sink from the first record) unless its old name is given back."""
        sources, sinks = await self.store.stored_names()
        sources -= {s.name for s in self.sources}
        sinks -= {s.name for s in self.sinks}
        if sources or sinks:
            log.warning(
                "stored state for sources or sinks not configured",
                sources=sorted(sources),
                sinks=sorted(sinks),
                hint="renamed or reordered? give each its old name with `name:`",
            )

    def _deliveries(self) -> dict[str, int]:
        d = self.deliverer
        return {"delivered": d.delivered, "failed": d.failed, "dead": d.dead}

    def _connected(self) -> dict[str, tuple[bool, int]]:
        return {s.name: (s.connected, s.lag()) for s in self.sources}

    def _read(self, source: Source) -> Coroutine[Any, Any, None]:
        """A source reads into the default scope, or a partitioned one into its partitions'."""
        if isinstance(source, KafkaSource) and source.config.partitioned:
            source.partitions = self.scopes
            return source.run(self.scopes.submit_partitioned, {})
        return source.run(self.pipeline.submit, self.pipeline.offsets)

    async def _serve(self, publishing: asyncio.Task[None]) -> None:
        broken = asyncio.create_task(self.scopes.broken.wait())
        sources = [asyncio.create_task(self._read(s)) for s in self.sources]
        server = http_server(self, self.config.http.host_port, self.config.shutdown_timeout)
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(self._stopping.wait())
        helpers = [
            asyncio.create_task(self._reloading()),
            asyncio.create_task(self.deliverer.run()),
            asyncio.create_task(
                self.sql_tables.run(lambda: self.rules.ruleset.sql_tables, self.request_reload)
            ),
        ]
        if self.config.watch_rules:
            watcher = RuleWatcher(Path(self.config.rules), self.request_reload)
            helpers.append(asyncio.create_task(watcher.run()))
        watched = {broken, publishing, serving, stopping, *sources, *helpers}
        try:
            while True:
                done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a part failed: stop the rest in order, then raise its error
                if broken in done and self.scopes.error is not None:
                    raise self.scopes.error  # a committer failed: the store is not usable
                if stopping in done or serving in done:
                    break  # a source (stdin) or a sink-less publisher may end: the rest goes on
        finally:
            self.scopes.closing = True
            server.should_exit = True  # 1. intake: HTTP first
            await _settle(serving, self.config.shutdown_timeout)
            for task in [*helpers, broken]:
                task.cancel()
                await _settle(task)
            # 2. commit what the pipelines hold, the brokers still connected: an MQTT batch
            # made durable now is acknowledged on the connection that received it (after
            # it closes the broker sends it again); what comes after is refused, not taken
            await self.scopes.close_all()
            for task in sources:
                task.cancel()
                await _settle(task)
            await self.publisher.stop()  # 3. the sinks publish what is queued
            await _settle(publishing, self.config.shutdown_timeout)
            await self.scopes.snapshot_all()  # 4. snapshots: the next start replays nothing
            stopping.cancel()


async def _settle(task: asyncio.Task[Any], seconds: float | None = None) -> None:
    """Wait for a task to end (cancelling it after `seconds`); its error was seen already."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(_shielded(task), seconds)
    if not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def _shielded(task: asyncio.Task[Any]) -> Awaitable[Any]:
    return asyncio.shield(task)
