"""One engine behind its journal: inputs in, group commits, change records out.

Sources `submit` batches of raw messages; one committer task folds them into
the engine and makes them durable together. Per commit, in this order:

1. fire the engine's due timers (journaled as a tick), then fold each input
   with the same wall-clock `now`, journaling it with that `now`;
2. write the batch's dead letters (fsynced);
3. commit the journal entries, the source offsets and the deleted rows'
   history in one store transaction;
4. resolve the submitters' futures: only now do sources acknowledge;
5. hand the change records to the sinks (which store their own positions).

A failed commit fails its futures (nothing is acknowledged) and stops the
pipeline: the engine has moved past what is stored, so the daemon restarts
from the store rather than run on.

Between two batches, when a snapshot is due (and at shutdown), the committer
snapshots the engine; `restore` rebuilds it from the last snapshot and the
journal after it, and re-publishes the records a sink had not confirmed
(both in `recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from correlator.engine import Engine
from correlator.errors import EventError
from correlator.jsonbytes import json_bytes
from correlator.records import ChangeRecords
from correlator.recovery import Snapshots, apply_action, replay
from correlator.ruleset.loader import RuleSet
from correlator.ruleset.version import RuleVersion
from correlator.sinks.base import Record
from correlator.sinks.dead_letter import DeadLetter, DeadLetterSink, write_retrying
from correlator.sources.base import Durable, Received, Refused, Rejected
from correlator.store.base import (
    ACTION,
    EVENT,
    EVENTS,
    RULES,
    TICK,
    Batch,
    Entry,
    OffsetKey,
    Store,
)


@dataclass(slots=True)
class _Submitted:
    messages: list[Received]
    durable: Durable
    rejected: list[Rejected] = field(default_factory=list)
    rules: RuleVersion | None = None  # a reload: these rules from here on
    action: dict[str, Any] | None = None  # an operator's action (`recovery.apply_action`)


@dataclass(slots=True)
class _Commit:
    """What one group commit gathers before it goes to the store."""

    batch: Batch
    records: list[Record] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    waiting: list[_Submitted] = field(default_factory=list)
    events: int = 0

    def release(self) -> None:
        """Free the parsed bodies once their answers are sent, while the clients read them.

        An HTTP body of 1,000 alerts and its events took 1.1-1.3 ms to free: on
        the request's critical path when it happened at the handler's return.
        """
        for item in self.waiting:
            for message in item.messages:
                if message.events is not None:
                    message.events.clear()
                if message.parsed is not None:
                    message.parsed.clear()


class Pipeline:
    """The engine of one scope, its journal and its outputs."""

    def __init__(
        self,
        rules: RuleVersion,
        make_engine: Callable[[RuleSet], Engine],
        store: Store,
        *,
        scope: str = "default",
        clock: Callable[[], float],
        dead_letter: DeadLetterSink,
        publish: Callable[[list[Record]], Awaitable[None]] | None = None,
        observe_commit: Callable[[float], None] | None = None,
        commit_interval: float = 0.005,
        commit_max_events: int = 2000,
        queue_size: int = 64,
        snapshot_entries: int = 1_000_000,
        snapshot_interval: float = 300.0,
        caught_up: Callable[[int], Awaitable[None]] | None = None,
        delivers: Callable[[str], int] = lambda receiver: 0,
        actions_committed: Callable[[], None] | None = None,
    ) -> None:
        self.rules = rules  # the version in force (live)
        self.make_engine = make_engine
        self.engine = make_engine(rules.ruleset)  # `restore` rebuilds it from the journal
        self._unjournaled: RuleVersion | None = None  # in force, but not journaled yet
        self.store = store
        self.scope = scope
        self.clock = clock
        self.dead_letter = dead_letter
        self.publish = publish
        self.commit_interval = commit_interval
        self.commit_max_events = commit_max_events
        self.observe_commit = observe_commit
        self.offsets: dict[OffsetKey, int] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (source, accepted|dead_lettered)
        self.dead_letters: Counter[str] = Counter()  # by reason
        self.changes = ChangeRecords(scope, publish is not None, delivers)
        self._queue: asyncio.Queue[_Submitted | None] = asyncio.Queue(queue_size)
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._ended = False  # `run` is over: nothing will fold what is queued from now on
        self._seq = 0  # journal entries
        self.actions_committed = actions_committed  # wakes the deliverer
        self.snapshots = Snapshots(
            store,
            scope,
            clock,
            entries=snapshot_entries,
            interval=snapshot_interval,
            caught_up=caught_up,
        )

    @property
    def incidents(self) -> Mapping[str, dict[str, Any]]:
        """Incidents as last published, by id: every open one and the latest closed ones."""
        return self.changes.incidents

    # -- the source side -------------------------------------------------------

    async def submit(self, messages: list[Received]) -> Durable:
        """Queue a batch (waiting while the queue is full); the future resolves when durable."""
        durable: Durable = asyncio.get_running_loop().create_future()
        await self._put(_Submitted(messages, durable))
        return durable

    async def _put(self, item: _Submitted) -> None:
        """Queue an input; once the committer has ended, refuse it instead (nothing would
        ever fold it, and its submitter would wait for good)."""
        if not self._ended:
            await self._queue.put(item)
        if self._ended and not item.durable.done():  # ended before, or while this waited
            item.durable.set_exception(ConnectionAbortedError("correlator is shutting down"))

    # -- restart ---------------------------------------------------------------

    async def restore(self) -> list[Record]:
        """Rebuild the engine from the snapshot and journal; return the records replay made.

        The current rules, in force from here on, are journaled before the next
        input unless the journal ends under them.
        """
        replayed = await replay(self.store, self.scope, self.rules, self.make_engine, self.changes)
        self.engine, self.offsets = replayed.engine, replayed.offsets
        self._seq, self.snapshots.seq = replayed.seq, replayed.snapshot_seq
        if self._seq == 0 or replayed.journaled.digest != self.rules.digest:
            self._unjournaled = self.rules
        return replayed.records

    async def act(self, action: str, identifier: str, who: str, value: str = "") -> str | None:
        """An operator's action between two inputs, once journaled; the error, if refused."""
        act = {"action": action, "identifier": identifier, "who": who, "value": value}
        return await self._queue_action(act)

    async def silence(self, spec: dict[str, Any]) -> str | None:
        """Add or change a silence once journaled; the error, if refused."""
        return await self._queue_action({"action": "silence", "silence": spec})

    async def expire_silence(self, sid: str) -> str | None:
        return await self._queue_action({"action": "expire_silence", "identifier": sid})

    async def _queue_action(self, action: dict[str, Any]) -> str | None:
        durable: Durable = asyncio.get_running_loop().create_future()
        await self._put(_Submitted([], durable, action=action))
        refused = await durable
        return refused[0][1] if refused else None

    async def reload(self, rules: RuleVersion) -> None:
        """Swap in a loaded rule set between two inputs; return once that is journaled."""
        durable: Durable = asyncio.get_running_loop().create_future()
        await self._put(_Submitted([], durable, rules=rules))
        await durable

    # -- the committer -----------------------------------------------------------

    async def run(self) -> None:
        """Commit batches until `stop` (or cancelled); a failed commit ends it (raises)."""
        self._arm()
        try:
            while not self._stopping:
                commit = _Commit(Batch(self.scope, first_seq=self._seq + 1))
                try:
                    await self._gather(commit)
                except BaseException as exc:  # cancelled, or a bug: what it took fails too
                    _fail(commit, exc)
                    raise
                await self._commit(commit)
                if self.snapshots.due(self._seq):
                    await self._snapshot()
        finally:
            self._ended = True
            if self._timer is not None:
                self._timer.cancel()
            self._refuse_queued()

    def stop(self) -> None:
        """Finish the batch being gathered, commit it, and end `run` (stop the sources first)."""
        self._stopping = True
        self._wake()

    def _refuse_queued(self) -> None:
        """Inputs still queued at the end are not acknowledged: their brokers send them again."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.durable.done():
                item.durable.set_exception(ConnectionAbortedError("correlator is shutting down"))

    async def _gather(self, commit: _Commit) -> None:
        """Wait for the first input or a due timer, then take what comes within the interval."""
        first = await self._queue.get()  # None: a timer came due
        now = self.clock()
        if self._unjournaled is not None:  # the rules in force come first in the journal
            self._journal_rules(commit, now, self._unjournaled)
            self._unjournaled = None
        self._tick(commit, now)
        if first is not None:
            self._fold(commit, first, now)
        loop = asyncio.get_running_loop()
        # only a lone input waits `commit_interval` for company: a source that submitted
        # several events grouped what it had (a Kafka fetch, whose next one comes 10 ms
        # later: 5 ms of every event's latency at 5,000/s; an HTTP body, whose client
        # waits for the answer: 5 ms per 1,000 alerts posted), and waiting only delays it
        wait = self.commit_interval if commit.events <= 1 else 0.0
        deadline = loop.time() + wait
        while commit.events < self.commit_max_events:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await self._queue.get()
            except TimeoutError:
                break
            if item is not None:
                self._fold(commit, item, now)

    def _tick(self, commit: _Commit, now: float) -> None:
        due = self.engine.next_timer()
        if due is None or due > now:
            return
        changes = self.engine.tick(now)
        self._journal(commit, TICK, now, b"")
        self.changes.add(changes, commit.records, commit.batch)

    def _fold(self, commit: _Commit, item: _Submitted, now: float) -> None:
        commit.waiting.append(item)
        if item.rules is not None:
            self.engine.load(item.rules.ruleset)
            self.rules = item.rules
            self._journal_rules(commit, now, item.rules)
        if item.action is not None:
            self._act(commit, item, item.action, now)
        for index, message in enumerate(item.messages):
            if message.events is not None:
                self._batch(commit, item, message.source, message.events, now)
                continue
            commit.events += 1
            if message.offset_key is not None:
                commit.batch.offsets[message.offset_key] = message.offset + 1
            reason, why = self._event(commit, message, now)
            if reason:
                commit.dead.append(DeadLetter(now, message.source, reason, why, message.value))
                item.rejected.append((index, f"{reason}: {why}"))
                self.counts[(message.source, "dead_lettered")] += 1
                self.dead_letters[reason] += 1
            else:
                self.counts[(message.source, "accepted")] += 1

    def _batch(
        self, commit: _Commit, item: _Submitted, source: str, events: list[Any], now: float
    ) -> None:
        """Fold a parsed batch (an HTTP body) journaled as one entry: its objects as one JSON
        array, each counting one in the journal's numbering.

        One entry instead of one per event spares an encoder call, a copy and an
        entry per event: about a tenth of HTTP ingest's cost per alert.
        """
        commit.events += len(events)
        kept = [event for event in events if type(event) is dict]
        if kept:
            self._seq += len(kept)
            commit.batch.entries.append(Entry(self._seq, now, EVENTS, json_bytes(kept)))
        accepted = 0
        process = self.engine.process
        records, batch = commit.records, commit.batch
        for index, event in enumerate(events):
            if type(event) is Refused:
                event, why, reason = event
            elif type(event) is not dict:
                reason, why = "not_object", "an event must be a JSON object"
            else:
                try:
                    changes = process(event, now)
                except EventError as exc:
                    reason, why = exc.reason, str(exc)
                else:
                    self.changes.add(changes, records, batch)
                    accepted += 1
                    continue
            raw = event if type(event) is bytes else json_bytes(event)
            commit.dead.append(DeadLetter(now, source, reason, why, raw))
            item.rejected.append((index, f"{reason}: {why}"))
            self.dead_letters[reason] += 1
        self.counts[(source, "accepted")] += accepted
        self.counts[(source, "dead_lettered")] += len(events) - accepted

    def _act(self, commit: _Commit, item: _Submitted, action: dict[str, Any], now: float) -> None:
        try:
            changes = apply_action(self.engine, action, now)
        except KeyError:
            what = "silence" if action["action"] == "expire_silence" else "alert"
            item.rejected.append((0, f"no {what} {action['identifier']!r}"))
            return
        except ValueError as exc:
            item.rejected.append((0, str(exc)))
            return
        self._journal(commit, ACTION, now, orjson.dumps(action))
        self.changes.add(changes, commit.records, commit.batch)

    def _event(self, commit: _Commit, message: Received, now: float) -> tuple[str, str]:
        """Fold one message; the dead-letter reason and message when it cannot be an alert."""
        try:
            event = orjson.loads(message.value)
        except orjson.JSONDecodeError as exc:
            return "not_json", str(exc)
        if not isinstance(event, dict):
            return "not_object", "an event must be a JSON object"
        self._journal(commit, EVENT, now, message.value)
        try:
            changes = self.engine.process(event, now)
        except EventError as exc:
            return exc.reason, str(exc)
        self.changes.add(changes, commit.records, commit.batch)
        return "", ""

    def _journal_rules(self, commit: _Commit, now: float, rules: RuleVersion) -> None:
        commit.batch.rulesets[rules.digest] = rules.blob
        self._journal(commit, RULES, now, rules.digest.encode())

    def _journal(self, commit: _Commit, kind: str, now: float, data: bytes) -> None:
        self._seq += 1
        commit.batch.entries.append(Entry(self._seq, now, kind, data))

    async def _commit(self, commit: _Commit) -> None:
        batch = commit.batch
        try:
            if commit.dead:
                await write_retrying(self.dead_letter, commit.dead, self.scope)
            if batch.entries or batch.offsets or batch.history or batch.outbox:
                started = time.perf_counter()
                await self.store.commit(batch)
                if self.observe_commit is not None:
                    self.observe_commit(time.perf_counter() - started)
        except BaseException as exc:
            _fail(commit, exc)
            raise
        self.offsets.update(commit.batch.offsets)
        if batch.outbox and self.actions_committed is not None:
            self.actions_committed()
        for item in commit.waiting:
            if not item.durable.done():
                item.durable.set_result(item.rejected)
        asyncio.get_running_loop().call_soon(commit.release)  # after the answers go out
        if commit.records and self.publish is not None:
            await self.publish(commit.records)
        self._arm()

    # -- snapshots -------------------------------------------------------------------

    @property
    def journal_tail(self) -> int:
        """Journal entries after the last saved snapshot: what a restart would replay."""
        return self._seq - self.snapshots.seq

    @property
    def last_snapshot(self) -> tuple[float, int]:
        """The last snapshot taken: seconds to take it, bytes."""
        return self.snapshots.last

    async def _snapshot(self) -> None:
        """Snapshot the engine between two batches, unless its rules are not journaled yet."""
        if self._unjournaled is not None or not self.engine.settled:
            return  # the next batch journals the rules and starts them
        await self.snapshots.take(self._seq, self.rules, self.engine, self.changes)

    async def final_snapshot(self) -> None:
        """At shutdown, after `run` ended and the sinks published: a snapshot for a quick start."""
        await self.snapshots.saved()
        if self._seq > self.snapshots.seq:
            await self._snapshot()
            await self.snapshots.saved()

    def _arm(self) -> None:
        """One `call_later` on the engine's next due timer (no polling loop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.engine.next_timer()
        if due is not None:
            delay = max(0.0, due - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        """A timer came due: wake the committer (a full queue wakes it anyway)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


def _fail(commit: _Commit, exc: BaseException) -> None:
    """A commit that will not happen: its submitters get the error, none is acknowledged."""
    error = exc if isinstance(exc, Exception) else ConnectionAbortedError("correlator stopped")
    for item in commit.waiting:
        if not item.durable.done():
            item.durable.set_exception(error)
