"""The state store: journal, snapshots, offsets, sink positions and history, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from correlator.model import Alert
from correlator.store.base import EVENTS, RULES, TICK, Action, Batch, Entry
from correlator.store.history import history_record
from correlator.store.schema import CURRENT_VERSION
from correlator.store.sql import SqlStore, StoreError, dialect_for, open_store


def _entries(first: int, n: int) -> list[Entry]:
    return [Entry(seq, 100.0 + seq, "event", b'{"n": %d}' % seq) for seq in range(first, first + n)]


async def test_a_new_database_is_migrated_to_the_current_schema(store: SqlStore) -> None:
    """Opening an empty database creates every table at the current schema version."""
    assert await store.schema_version() == CURRENT_VERSION
    restored = await store.load("default")
    assert (restored.snapshot, restored.snapshot_seq, restored.entries, restored.offsets) == (
        None,
        0,
        [],
        {},
    )


async def test_reopening_keeps_the_data_and_does_not_migrate_twice(store_url: str) -> None:
    """A restart opens the same database: the schema is already current, the journal is there."""
    first = open_store(store_url)
    await first.open()
    try:
        await first.commit(Batch("s", _entries(1, 3)))
    finally:
        await first.close()
    second = open_store(store_url)
    await second.open()
    try:
        assert await second.schema_version() == CURRENT_VERSION
        assert [e.seq for e in (await second.load("s")).entries] == [1, 2, 3]
    finally:
        await second.close()


async def test_a_batch_stores_entries_offsets_and_history_in_one_go(store: SqlStore) -> None:
    """The journal comes back in seq order with its `now` values; offsets are per scope."""
    await store.commit(Batch("kafka:events:0", _entries(1, 2), {("kafka", "events", 0): 2}))
    await store.commit(
        Batch("kafka:events:0", [Entry(3, 110.5, TICK)], {("kafka", "events", 0): 2})
    )
    await store.commit(Batch("kafka:events:1", _entries(1, 1), {("kafka", "events", 1): 7}))
    restored = await store.load("kafka:events:0")
    assert restored.entries == [*_entries(1, 2), Entry(3, 110.5, TICK, b"")]
    assert restored.offsets == {("kafka", "events", 0): 2}
    assert (await store.load("kafka:events:1")).offsets == {("kafka", "events", 1): 7}


async def test_a_failed_batch_leaves_nothing_behind(store: SqlStore) -> None:
    """A batch is one transaction: a duplicate seq rolls back its offsets too."""
    await store.commit(Batch("s", _entries(1, 2), {("kafka", "t", 0): 2}))
    with pytest.raises(StoreError, match="duplicate journal seq: 2 is not after the stored 2"):
        await store.commit(Batch("s", _entries(2, 2), {("kafka", "t", 0): 4}))
    restored = await store.load("s")
    assert [e.seq for e in restored.entries] == [1, 2]
    assert restored.offsets == {("kafka", "t", 0): 2}


async def test_a_snapshot_replaces_the_journal_it_covers(store: SqlStore) -> None:
    """Restore = the last snapshot + the entries after it; the covered ones are deleted."""
    await store.commit(Batch("s", _entries(1, 5)))
    await store.save_snapshot("s", 3, b"state-after-3", at=200.0)
    restored = await store.load("s")
    assert (restored.snapshot, restored.snapshot_seq) == (b"state-after-3", 3)
    assert [e.seq for e in restored.entries] == [4, 5]
    await store.save_snapshot("s", 5, b"state-after-5", at=201.0)
    restored = await store.load("s")
    assert (restored.snapshot, restored.snapshot_seq, restored.entries) == (b"state-after-5", 5, [])
    assert (await store.load("other")).snapshot is None


async def test_a_snapshot_drops_the_rule_sets_nothing_needs_any_more(store: SqlStore) -> None:
    """Each SQL-table refresh is a rule-set version: the store keeps only the version in
    force at each scope's snapshot and those its journal tail names (any scope's)."""

    def rules(seq: int, digest: str) -> Entry:
        return Entry(seq, 100.0 + seq, RULES, digest.encode())

    versions = {d: d.encode() * 3 for d in ("v1", "v2", "v3", "v4")}
    await store.commit(Batch("s", [rules(1, "v1"), *_entries(2, 2)], rulesets=versions))
    await store.commit(Batch("s", [rules(4, "v2"), *_entries(5, 1), rules(6, "v3")]))
    await store.commit(Batch("t", [rules(1, "v4")]))
    await store.save_snapshot("s", 5, b"state-after-5", at=200.0)  # under v2; v3 comes after
    assert [await store.ruleset(d) for d in versions] == [None, b"v2v2v2", b"v3v3v3", b"v4v4v4"]
    await store.save_snapshot("s", 6, b"state-after-6", at=201.0)
    assert [await store.ruleset(d) for d in versions] == [None, None, b"v3v3v3", b"v4v4v4"]
    assert (await store.load("s")).entries == []


async def test_sink_positions_are_kept_per_sink_and_scope(store: SqlStore) -> None:
    """How far each sink has published, so the replayed tail re-publishes only the rest."""
    assert await store.sink_position("kafka-alerts", "s") == 0
    await store.set_sink_position("kafka-alerts", "s", 41)
    await store.set_sink_position("kafka-alerts", "s", 42)
    await store.set_sink_position("mqtt", "s", 7)
    assert await store.sink_position("kafka-alerts", "s") == 42
    assert await store.sink_position("mqtt", "s") == 7
    assert await store.sink_position("kafka-alerts", "t") == 0


async def test_the_names_state_is_kept_for_are_listed(store: SqlStore) -> None:
    """Sources with offsets and sinks with positions: the daemon warns of those unconfigured."""
    assert await store.stored_names() == (set(), set())
    await store.commit(Batch("a", _entries(1, 1), {("syslog", "x.jsonl", 0): 9}))
    await store.commit(Batch("b", _entries(1, 1), {("kafka-0", "events", 3): 2}))
    await store.commit(Batch("b", _entries(2, 1), {("kafka-0", "events", 4): 2}))
    await store.set_sink_position("alerts-eu", "a", 1)
    assert await store.stored_names() == ({"syslog", "kafka-0"}, {"alerts-eu"})


def _deleted_row(identifier: str) -> Alert:
    row = Alert(identifier, node="n1", alertgroup="Down", severity=5, tally=3, serial=9)
    row.first_occurrence, row.last_occurrence = 10.0, 40.0
    row.note(50.0, "noc-alice", "acknowledged")
    row.note(70.0, "correlator", "cleared: resolution received")
    row.status, row.severity, row.state_change = "cleared", 0, 70.0
    return row


async def test_history_keeps_deleted_rows_queryable_by_time(store: SqlStore) -> None:
    """Who acknowledged and when, when it cleared; queried by deletion time and identifier."""
    records = [history_record(_deleted_row(f"n{i}:Down::"), 200.0 + i) for i in range(3)]
    await store.commit(Batch("s", history=records))
    found = await store.history(200.0, 202.0)
    assert [r.identifier for r in found] == ["n0:Down::", "n1:Down::"]
    first = found[0]
    assert (first.acknowledged_by, first.acknowledged_at, first.cleared_at) == (
        "noc-alice",
        50.0,
        70.0,
    )
    assert (first.first_occurrence, first.last_occurrence, first.tally) == (10.0, 40.0, 3)
    assert b'"identifier":"n0:Down::"' in first.alert
    assert [r.deleted_at for r in await store.history(0, 1e12, identifier="n2:Down::")] == [202.0]
    assert len(await store.history(0, 1e12, limit=2)) == 2


def test_state_urls() -> None:
    """`sqlite:///rel`, `sqlite:////abs` and `postgresql://`; anything else is a clear error."""
    assert dialect_for("sqlite:///var/correlator.db").name == "sqlite"
    assert dialect_for("postgresql://u@h/db").name == "postgresql"
    for bad, why in [("mysql://h/db", "expected sqlite"), ("sqlite://", "names no database")]:
        with pytest.raises(StoreError, match=why):
            dialect_for(bad)
    with pytest.raises(StoreError, match="synchronous"):
        dialect_for("sqlite:///x.db", synchronous="sometimes")


async def test_a_relative_sqlite_path_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///var/correlator.db` (the default) makes `./var/` if needed."""
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///var/correlator.db", synchronous="full")
    await store.open()
    await store.close()
    assert (tmp_path / "var" / "correlator.db").exists()


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    """Never write to a schema this version does not know."""
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url)
    await store.open()
    await store._run(lambda cur: cur.execute("UPDATE schema_version SET version = 99"))
    await store.close()
    newer = open_store(url)
    with pytest.raises(StoreError, match="schema version 99"):
        await newer.open()
    await newer.close()


async def test_rule_sets_are_stored_once_by_digest(store: SqlStore) -> None:
    """The rule texts a journal was processed under, kept by digest (a repeat is a no-op)."""
    assert await store.ruleset("abc") is None
    await store.commit(Batch("s", [Entry(1, 1.0, "rules", b"abc")], rulesets={"abc": b"{}"}))
    await store.commit(Batch("s", [Entry(2, 2.0, "rules", b"abc")], rulesets={"abc": b"{}"}))
    assert await store.ruleset("abc") == b"{}"
    assert [e.data for e in (await store.load("s")).entries] == [b"abc", b"abc"]


async def test_an_older_schema_is_migrated_forward(store_url: str) -> None:
    """A database at version 1 (before rule sets, and with a row per journal entry) gains
    the later tables; its entries are restored before the batches written after it."""
    old = open_store(store_url)
    await old.open()
    insert = old._sql("INSERT INTO journal (scope, seq, at, kind, data) VALUES (?, ?, ?, ?, ?)")
    for statement in ("DROP TABLE rulesets", "DROP TABLE journal_batches", "DROP TABLE outbox",
                      "DROP TABLE ruleset_uses", "UPDATE schema_version SET version = 1"):  # fmt: skip
        await old._run(lambda cur, sql=statement: cur.execute(sql))
    await old._run(lambda cur: cur.executemany(insert, [("s", *e) for e in _entries(1, 2)]))
    await old.close()
    new = open_store(store_url)
    await new.open()
    try:
        assert await new.schema_version() == CURRENT_VERSION == 5
        assert await new.ruleset("x") is None
        assert (await new.load("s")).entries == _entries(1, 2)
        with pytest.raises(StoreError, match="duplicate journal seq: 2 is not after the stored 2"):
            await new.commit(Batch("s", _entries(2, 1)))
        await new.commit(Batch("s", _entries(3, 2)))
        assert (await new.load("s")).entries == _entries(1, 4)
        await new.save_snapshot("s", 3, b"state-after-3", at=200.0)
        assert (await new.load("s")).entries == _entries(4, 1)
    finally:
        await new.close()


async def test_rule_sets_stored_before_their_uses_were_recorded_are_kept(store_url: str) -> None:
    """Version 4 stored rule sets without recording which entry used them: never dropped."""
    old = open_store(store_url)
    await old.open()
    await old.commit(Batch("s", [Entry(1, 1.0, RULES, b"v0")], rulesets={"v0": b"{}"}))
    for statement in ("DROP TABLE ruleset_uses", "UPDATE schema_version SET version = 4"):
        await old._run(lambda cur, sql=statement: cur.execute(sql))
    await old.close()
    new = open_store(store_url)
    await new.open()
    try:
        await new.commit(Batch("s", [Entry(2, 2.0, RULES, b"v1")], rulesets={"v1": b"[]"}))
        await new.save_snapshot("s", 2, b"state-after-2", at=3.0)
        assert (await new.ruleset("v0"), await new.ruleset("v1")) == (b"{}", b"[]")
    finally:
        await new.close()


async def test_the_outbox_keeps_actions_until_done(store_url: str) -> None:
    """Written with a batch (once, whatever replays), due in order, retried, then gone."""
    store = open_store(store_url)
    await store.open()
    try:
        first = Action("s:n1:0", "s", "hook", b'{"n":1}', created=10.0, due=10.0)
        second = Action("s:n2:0", "s", "hook", b'{"n":2}', created=11.0, due=11.0)
        await store.commit(Batch("s", _entries(1, 1), outbox=[first, second]))
        await store.commit(Batch("s", _entries(2, 1), outbox=[first]))  # again: ignored
        assert [a.key for a in await store.due_actions(10.5, 10)] == ["s:n1:0"]
        assert await store.next_action_due() == 10.0
        await store.action_retry("s:n1:0", 1, 20.0, "HTTP 500")
        (due,) = await store.due_actions(15.0, 10)
        assert due == second
        (retried,) = await store.due_actions(20.0, 1)
        assert (retried.key, retried.attempts, retried.last_error) == ("s:n2:0", 0, None)
        await store.actions_done(["s:n2:0"])
        (left,) = await store.due_actions(100.0, 10)
        assert (left.key, left.attempts, left.due, left.last_error) == (
            "s:n1:0",
            1,
            20.0,
            "HTTP 500",
        )
        await store.actions_done(["s:n1:0"])
        assert await store.next_action_due() is None
    finally:
        await store.close()


async def test_sqlite_checkpoints_its_log_on_a_thread_not_in_a_commit(tmp_path: Path) -> None:
    """Commits only append to the WAL; every `every_bytes` of journal, the checkpointer
    copies the log into the database file, and the data reads back after a reopen."""
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url)
    await store.open()
    checkpointer = store.checkpointer
    assert checkpointer is not None
    checkpointer.every_bytes = 1 << 30  # none yet
    database = tmp_path / "state.db"
    try:
        size = database.stat().st_size
        for first in range(1, 2001, 100):
            await store.commit(Batch("s", _entries(first, 100)))
        assert database.stat().st_size == size  # all of it still in the log
        checkpointer.every_bytes = 1
        await store.commit(Batch("s", _entries(2001, 100)))
        checkpointer.idle()
        assert database.stat().st_size > size + 20_000  # the journal moved into the file
    finally:
        await store.close()
    reopened = open_store(url)
    await reopened.open()
    try:
        assert [e.seq for e in (await reopened.load("s")).entries] == list(range(1, 2101))
    finally:
        await reopened.close()


async def test_an_http_body_that_overlaps_the_journal_is_refused(store: SqlStore) -> None:
    """An `events` entry is numbered as its last event: the order check uses the batch's
    first event (`first_seq`), so a stale writer's body that overlaps is refused too."""
    await store.commit(Batch("s", _entries(1, 50)))
    body = Entry(60, 160.0, EVENTS, b"[" + b",".join([b"{}"] * 60) + b"]")
    with pytest.raises(StoreError, match="duplicate journal seq: 1 is not after the stored 50"):
        await store.commit(Batch("s", [body], first_seq=1))
    follows = Entry(60, 160.0, EVENTS, b"[" + b",".join([b"{}"] * 10) + b"]")
    await store.commit(Batch("s", [follows], first_seq=51))
    assert [e.seq for e in (await store.load("s")).entries] == [*range(1, 51), 60]


async def test_a_failed_commit_is_rolled_back_and_the_store_goes_on(store: SqlStore) -> None:
    """A COMMIT that fails (here a deferred constraint) leaves no transaction open: the
    next one starts, instead of failing with 'a transaction within a transaction'."""
    if store.dialect.name == "sqlite":  # SQLite checks foreign keys only when asked to
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(store._thread, store._conn.execute, "PRAGMA foreign_keys=ON")
    await store._run(lambda cur: cur.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
    await store._run(
        lambda cur: cur.execute(
            "CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    )
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await store._run(lambda cur: cur.execute("INSERT INTO child VALUES (7)"))
    await store.commit(Batch("s", _entries(1, 2)))
    assert [e.seq for e in (await store.load("s")).entries] == [1, 2]
