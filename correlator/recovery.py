"""A scope's engine across restarts: snapshots taken and saved, and restored with the journal.

Every `entries` journal entries or `interval` seconds (and at shutdown) the
pipeline snapshots its engine between two batches; the snapshot is saved, and
the journal it covers dropped, once every sink has published the records
made before it (they could not be made again). `replay` loads the last
snapshot and replays the journal after it with the recorded `now` values,
making again the records a sink had not confirmed.

Kept apart from the pipeline because both happen around its commits, not in
them: a snapshot between two batches (saved in the background), the replay
before the first. The replay reads the journal entries the pipeline writes,
kind by kind, and folds an operator's action as the pipeline does
(`apply_action`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from correlator import snapshot
from correlator.engine import Engine
from correlator.errors import EventError, RuleSetError
from correlator.model import Change
from correlator.records import ChangeRecords
from correlator.ruleset.loader import RuleSet
from correlator.ruleset.version import RuleVersion
from correlator.sinks.base import Record
from correlator.store.base import ACTION, EVENTS, RULES, TICK, OffsetKey, Store

log = structlog.get_logger("correlator.recovery")


class Snapshots:
    """When a scope's engine is due a snapshot; taking one, and saving it in the background."""

    def __init__(
        self,
        store: Store,
        scope: str,
        clock: Callable[[], float],
        *,
        entries: int,
        interval: float,
        caught_up: Callable[[int], Awaitable[None]] | None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.clock = clock
        self.entries = entries
        self.interval = interval
        self.caught_up = caught_up  # waits until the sinks have published up to a seq
        self.seq = 0  # the journal entry the stored snapshot covers
        self.taken_at = time.monotonic()
        self.saving: asyncio.Task[None] | None = None
        self.last: tuple[float, int] = (0.0, 0)  # seconds to take it, bytes

    def due(self, seq: int) -> bool:
        """Whether to snapshot after journal entry `seq` (never while one is being saved)."""
        if self.saving is not None and not self.saving.done():
            return False  # one at a time
        since = seq - self.seq
        return since >= self.entries or (
            since > 0 and time.monotonic() - self.taken_at >= self.interval
        )

    async def take(
        self, seq: int, rules: RuleVersion, engine: Engine, changes: ChangeRecords
    ) -> None:
        """Encode the state after journal entry `seq`; save it in the background.

        Encoding runs in a thread while the committer waits (nothing else
        changes the engine), so the event loop goes on serving HTTP.
        """
        started = time.perf_counter()
        change_seq = changes.change_seq
        try:
            data = await asyncio.to_thread(_encode, rules, engine, changes)
        except Exception:
            log.exception("snapshot failed: the journal is kept")
            return
        self.taken_at = time.monotonic()
        self.last = (time.perf_counter() - started, len(data))
        self.saving = asyncio.create_task(self._save(seq, change_seq, data))

    async def saved(self) -> None:
        """Wait until the snapshot being saved, if any, is stored (or failed)."""
        if self.saving is not None:
            await self.saving

    async def _save(self, seq: int, change_seq: int, data: bytes) -> None:
        """Store the snapshot once the sinks have published what came before it."""
        try:
            if self.caught_up is not None:
                await self.caught_up(change_seq)
            await self.store.save_snapshot(self.scope, seq, data, self.clock())
        except Exception:
            log.exception("saving the snapshot failed: the journal is kept")
            return
        self.seq = seq
        log.info("snapshot saved", seq=seq, bytes=len(data))


def _encode(rules: RuleVersion, engine: Engine, changes: ChangeRecords) -> bytes:
    state = {"rules": rules.digest, **changes.state(), "engine": engine.snapshot()}
    return snapshot.dump(state)


@dataclass(frozen=True, slots=True)
class Replayed:
    """A scope's engine as rebuilt from the store, under the current rules."""

    engine: Engine
    journaled: RuleVersion  # the rules in force at the journal's end
    seq: int  # the journal's last entry (the snapshot's without one)
    snapshot_seq: int  # the journal entry the stored snapshot covers (0: none)
    offsets: dict[OffsetKey, int]
    records: list[Record]  # made again by the replay


async def replay(
    store: Store,
    scope: str,
    current: RuleVersion,
    make_engine: Callable[[RuleSet], Engine],
    changes: ChangeRecords,
) -> Replayed:
    """Rebuild the engine from the snapshot and journal, numbering its records in `changes`.

    Each input is replayed under the rules that processed it (the journal
    says when a version came into force; the snapshot, which one it was
    taken under); then the current rules are loaded with reload semantics.
    """
    stored = await store.load(scope)
    entries = stored.entries
    seq = snapshot_seq = 0
    records: list[Record] = []
    with _gc_paused():
        if stored.snapshot is not None:
            saved = snapshot.load(stored.snapshot)
            in_force = await _version(store, saved["rules"], current)
            engine = make_engine(in_force.ruleset)
            engine.restore(saved["engine"])
            seq = snapshot_seq = stored.snapshot_seq
            changes.restore(saved)
            log.info(
                "snapshot loaded", seq=seq, bytes=len(stored.snapshot), alerts=len(engine.table)
            )
        else:
            first = entries[0] if entries and entries[0].kind == RULES else None
            in_force = (
                current if first is None else await _version(store, first.data.decode(), current)
            )
            engine = make_engine(in_force.ruleset)
        for entry in entries:
            seq = entry.seq
            if entry.kind == RULES:
                if entry.data.decode() != in_force.digest:
                    in_force = await _version(store, entry.data.decode(), current)
                    engine.load(in_force.ruleset)
                continue
            if entry.kind == TICK:
                made = engine.tick(entry.at)
            elif entry.kind == ACTION:
                made = apply_action(engine, orjson.loads(entry.data), entry.at)
            elif entry.kind == EVENTS:
                for event in orjson.loads(entry.data):
                    changes.add(_fold_stored(engine, event, entry.at), records, None)
                continue
            else:
                made = _fold_stored(engine, orjson.loads(entry.data), entry.at)
            changes.add(made, records, None)
    if in_force.digest != current.digest:
        engine.load(current.ruleset)
    return Replayed(engine, in_force, seq, snapshot_seq, dict(stored.offsets), records)


def apply_action(engine: Engine, action: dict[str, Any], now: float) -> list[Change]:
    """An operator's action as journaled (on a row, or adding or expiring a silence): folded
    by the pipeline when it comes, and here again on replay."""
    kind = action["action"]
    if kind == "silence":
        return engine.silence(action["silence"], now)
    if kind == "expire_silence":
        return engine.expire_silence(action["identifier"], now)
    return engine.operate(**action, now=now)


def _fold_stored(engine: Engine, event: Any, at: float) -> list[Change]:
    try:
        return engine.process(event, at)
    except EventError:  # dead-lettered the first time already
        return []


async def _version(store: Store, digest: str, current: RuleVersion) -> RuleVersion:
    """A journaled rule set; the current one if it is gone or no longer loads."""
    blob = await store.ruleset(digest)
    if blob is None:
        log.warning("journaled rule set missing: replaying under the current rules", digest=digest)
        return current
    try:
        return RuleVersion.of(blob)
    except RuleSetError as exc:  # written by an older correlator whose rules this one refuses
        log.warning("journaled rule set no longer loads: replaying under the current rules",
                    digest=digest, errors=str(exc))  # fmt: skip
        return current


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic collection while millions of long-lived objects are built at once."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
