"""One store implementation over DB-API connections: SQLite (default) and PostgreSQL.

Both databases run the same statements on one dedicated thread, so a commit
never blocks the event loop and the two dialects cannot drift apart: only the
connection, the parameter style and the column types differ (`Dialect`).
Each public method is one transaction (`BEGIN` … `COMMIT`, rolled back on error).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg

from correlator.store import journal, schema
from correlator.store.base import (
    RULES,
    Action,
    Batch,
    Entry,
    HistoryRecord,
    OffsetKey,
    Restored,
    history_rows,
)
from correlator.store.checkpoint import Checkpointer

T = TypeVar("T")
Cursor = Any  # sqlite3.Cursor or psycopg.Cursor: both DB-API 2


class StoreError(Exception):
    """The state database cannot be used as configured (bad URL, newer schema)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the databases: how to connect, placeholders, column types."""

    name: str
    connect: Callable[[], Any]
    types: dict[str, str]
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    begin: str
    read_only: str  # makes a connection refuse writes (lookup-table queries)
    checkpoints: bool = False  # SQLite on a file: WAL checkpoints on a thread (`Checkpointer`)


def sqlite_dialect(path: str, *, synchronous: str = "NORMAL") -> Dialect:
    """WAL and `synchronous=NORMAL` survive a killed process; FULL also a power loss."""

    def connect() -> sqlite3.Connection:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        if background:  # not inside a commit: the store's Checkpointer runs them
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    background = path != ":memory:"
    return Dialect(
        "sqlite", connect, schema.SQLITE_TYPES, "?", "BEGIN IMMEDIATE",
        "PRAGMA query_only = ON", background,
    )  # fmt: skip


def postgres_dialect(url: str) -> Dialect:
    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(url, autocommit=True)

    return Dialect(
        "postgresql", connect, schema.POSTGRES_TYPES, "%s", "BEGIN",
        "SET default_transaction_read_only = on",
    )  # fmt: skip


_SYNCHRONOUS = frozenset(("OFF", "NORMAL", "FULL", "EXTRA"))


def dialect_for(url: str, *, synchronous: str = "NORMAL") -> Dialect:
    """`sqlite:///relative/path.db`, `sqlite:////absolute.db` or `postgresql://…`."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise StoreError(f"state url {url!r} names no database file")
        if synchronous.upper() not in _SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        return sqlite_dialect(path, synchronous=synchronous.upper())
    if scheme in ("postgresql", "postgres"):
        return postgres_dialect(url)
    raise StoreError(f"state url {url!r}: expected sqlite:///PATH or postgresql://…")


class SqlStore:
    """The `Store` protocol over one connection, used from one thread."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._conn: Any = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"store-{dialect.name}")
        self.checkpointer = Checkpointer(dialect.connect) if dialect.checkpoints else None

    # -- plumbing --------------------------------------------------------------

    async def _run(self, work: Callable[[Cursor], T]) -> T:
        """Run `work` in one transaction on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._tx, work)

    def _tx(self, work: Callable[[Cursor], T]) -> T:
        cur = self._conn.cursor()
        cur.execute(self.dialect.begin)
        try:
            result = work(cur)
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):  # a failed COMMIT may have ended it already
                cur.execute("ROLLBACK")
            raise
        return result

    def _sql(self, text: str) -> str:
        return text if self.dialect.placeholder == "?" else text.replace("?", "%s")

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._thread, self.dialect.connect)
        await self._run(self._migrate)

    async def close(self) -> None:
        if self.checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.checkpointer.close)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=True)

    def _migrate(self, cur: Cursor) -> None:
        cur.execute(schema.VERSION_TABLE)
        version = self._version(cur)
        if version > schema.CURRENT_VERSION:
            raise StoreError(
                f"the state database has schema version {version}, newer than this "
                f"correlator's {schema.CURRENT_VERSION}: upgrade correlator"
            )
        steps = schema.migrations(self.dialect.types)
        for statements in steps[version:]:
            for statement in statements:
                cur.execute(statement)
        if version == 0:
            cur.execute(self._sql("INSERT INTO schema_version (version) VALUES (?)"), (len(steps),))
        elif version < len(steps):
            cur.execute(self._sql("UPDATE schema_version SET version = ?"), (len(steps),))

    @staticmethod
    def _version(cur: Cursor) -> int:
        cur.execute("SELECT version FROM schema_version")
        row = cur.fetchone()
        return 0 if row is None else int(row[0])

    async def schema_version(self) -> int:
        return await self._run(self._version)

    # -- state -------------------------------------------------------------------

    async def load(self, scope: str) -> Restored:
        def work(cur: Cursor) -> Restored:
            cur.execute(self._sql("SELECT seq, data FROM snapshots WHERE scope = ?"), (scope,))
            row = cur.fetchone()
            seq, snapshot = (0, None) if row is None else (int(row[0]), bytes(row[1]))
            cur.execute(
                self._sql(
                    "SELECT seq, at, kind, data FROM journal WHERE scope = ? AND seq > ? "
                    "ORDER BY seq"
                ),
                (scope, seq),
            )
            # entries written before schema 3, then the batches (which all come after them)
            entries = [Entry(int(s), float(a), k, bytes(d)) for s, a, k, d in cur.fetchall()]
            cur.execute(
                self._sql(
                    "SELECT data FROM journal_batches WHERE scope = ? AND last_seq > ? "
                    "ORDER BY first_seq"
                ),
                (scope, seq),
            )
            for (blob,) in cur.fetchall():
                entries += [e for e in journal.decode(bytes(blob)) if e.seq > seq]
            cur.execute(
                self._sql("SELECT source, topic, part, next_offset FROM offsets WHERE scope = ?"),
                (scope,),
            )
            offsets: dict[OffsetKey, int] = {(s, t, int(p)): int(o) for s, t, p, o in cur}
            return Restored(snapshot, seq, entries, offsets)

        return await self._run(work)

    async def commit(self, batch: Batch) -> None:
        scope = batch.scope
        entries = batch.entries
        offsets = [(scope, s, t, p, o) for (s, t, p), o in batch.offsets.items()]
        history = history_rows(batch.history)
        rulesets = list(batch.rulesets.items())
        uses = [(scope, e.seq, e.data.decode()) for e in entries if e.kind == RULES]
        actions = [(a.key, a.scope, a.receiver, a.payload, a.due, a.created) for a in batch.outbox]

        def work(cur: Cursor) -> int:
            self._many(cur, schema.INSERT_RULESET, rulesets)
            self._many(cur, schema.INSERT_RULESET_USE, uses)
            self._many(cur, schema.INSERT_ACTION, actions)
            written = self._append(cur, scope, entries, batch.first_seq) if entries else 0
            self._many(cur, schema.UPSERT_OFFSET, offsets)
            self._many(cur, schema.INSERT_HISTORY, history)
            return written

        written = await self._run(work)
        if self.checkpointer is not None:
            self.checkpointer.written(written)

    def _append(self, cur: Cursor, scope: str, entries: list[Entry], first_seq: int) -> int:
        """One journal row for the batch (its bytes returned); refused unless it follows
        every stored entry."""
        first, last = first_seq or entries[0].seq, entries[-1].seq
        cur.execute(self._sql(schema.LAST_JOURNAL_SEQS), (scope, scope))
        stored = max((int(seq) for seq in cur.fetchone() if seq is not None), default=0)
        if first <= stored:
            raise StoreError(f"duplicate journal seq: {first} is not after the stored {stored}")
        blob = journal.encode(entries)
        cur.execute(self._sql(schema.INSERT_JOURNAL_BATCH), (scope, first, last, blob))
        return len(blob)

    def _many(self, cur: Cursor, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        if rows:
            cur.executemany(self._sql(sql), rows)

    async def save_snapshot(self, scope: str, seq: int, data: bytes, at: float) -> None:
        def work(cur: Cursor) -> None:
            cur.execute(self._sql(schema.UPSERT_SNAPSHOT), (scope, seq, at, data))
            cur.execute(self._sql("DELETE FROM journal WHERE scope = ? AND seq <= ?"), (scope, seq))
            cur.execute(  # a batch that straddles `seq` stays: `load` skips its covered entries
                self._sql("DELETE FROM journal_batches WHERE scope = ? AND last_seq <= ?"),
                (scope, seq),
            )
            cur.execute(self._sql(schema.DROP_RULESET_USES), (scope, scope, seq))
            cur.execute(schema.DROP_UNUSED_RULESETS)

        await self._run(work)

    async def due_actions(self, now: float, limit: int) -> list[Action]:
        def work(cur: Cursor) -> list[Action]:
            cur.execute(
                self._sql(
                    "SELECT action_key, scope, receiver, payload, created, attempts, due, "
                    "last_error FROM outbox WHERE due <= ? ORDER BY due, created LIMIT ?"
                ),
                (now, limit),
            )
            return [
                Action(k, s, r, bytes(p), float(c), int(a), float(d), e)
                for k, s, r, p, c, a, d, e in cur.fetchall()
            ]

        return await self._run(work)

    async def next_action_due(self) -> float | None:
        def work(cur: Cursor) -> float | None:
            cur.execute("SELECT min(due) FROM outbox")
            row = cur.fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(work)

    async def actions_done(self, keys: Sequence[str]) -> None:
        rows = [(key,) for key in keys]

        def work(cur: Cursor) -> None:
            self._many(cur, "DELETE FROM outbox WHERE action_key = ?", rows)

        await self._run(work)

    async def action_retry(self, key: str, attempts: int, due: float, error: str) -> None:
        def work(cur: Cursor) -> None:
            cur.execute(
                self._sql(
                    "UPDATE outbox SET attempts = ?, due = ?, last_error = ? WHERE action_key = ?"
                ),
                (attempts, due, error[:2000], key),
            )

        await self._run(work)

    async def ruleset(self, digest: str) -> bytes | None:
        def work(cur: Cursor) -> bytes | None:
            cur.execute(self._sql("SELECT texts FROM rulesets WHERE digest = ?"), (digest,))
            row = cur.fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(work)

    async def stored_names(self) -> tuple[set[str], set[str]]:
        def work(cur: Cursor) -> tuple[set[str], set[str]]:
            cur.execute("SELECT DISTINCT source FROM offsets")
            sources = {str(row[0]) for row in cur.fetchall()}
            cur.execute("SELECT DISTINCT sink FROM sink_positions")
            return sources, {str(row[0]) for row in cur.fetchall()}

        return await self._run(work)

    async def sink_position(self, sink: str, scope: str) -> int:
        def work(cur: Cursor) -> int:
            cur.execute(
                self._sql("SELECT seq FROM sink_positions WHERE sink = ? AND scope = ?"),
                (sink, scope),
            )
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(work)

    async def set_sink_position(self, sink: str, scope: str, seq: int) -> None:
        await self._run(lambda cur: cur.execute(self._sql(schema.UPSERT_SINK), (sink, scope, seq)))

    async def read_table(self, query: str, max_rows: int) -> list[dict[str, Any]]:
        """A lookup table's rows (`tables: {sql: …}`), by column name.

        On a connection of its own, read-only, in a thread of its own: a slow
        query never holds up a journal commit, and cannot write to the state.
        """

        def work() -> list[dict[str, Any]]:
            conn = self.dialect.connect()
            try:
                cur = conn.cursor()
                cur.execute(self.dialect.read_only)
                cur.execute(query)
                if cur.description is None:
                    raise StoreError("the query returns no rows (is it a SELECT?)")
                names = [column[0] for column in cur.description]
                rows = cur.fetchmany(max_rows + 1)
                if len(rows) > max_rows:
                    raise StoreError(f"more than {max_rows} rows")
                return [dict(zip(names, row, strict=True)) for row in rows]
            finally:
                conn.close()

        return await asyncio.to_thread(work)

    async def history(
        self, since: float, until: float, *, identifier: str | None = None, limit: int = 1000
    ) -> list[HistoryRecord]:
        clause = "AND identifier = ?" if identifier is not None else ""
        sql = self._sql(schema.SELECT_HISTORY.format(and_identifier=clause))
        params: tuple[object, ...] = (since, until) + ((identifier,) if clause else ()) + (limit,)

        def work(cur: Cursor) -> list[HistoryRecord]:
            cur.execute(sql, params)
            return [_history_record(row) for row in cur.fetchall()]

        return await self._run(work)


def _history_record(row: Sequence[Any]) -> HistoryRecord:
    (ident, serial, first, last, tally, ack_by, ack_at, cleared, deleted, alert) = row
    return HistoryRecord(
        ident, int(serial), first, last, int(tally), ack_by, ack_at, cleared,
        deleted, bytes(alert),
    )  # fmt: skip


def open_store(url: str, *, synchronous: str = "NORMAL") -> SqlStore:
    """A store for the `state.url` of the configuration (call `open()` before use)."""
    return SqlStore(dialect_for(url, synchronous=synchronous))
