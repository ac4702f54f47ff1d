"""The state schema, as numbered migrations shared by SQLite and PostgreSQL.

A migration is applied once, in order, inside the transaction that records
its number in `schema_version`; a database newer than this code is refused.
Types are written `{blob}`/`{real}`/`{bigint}` and filled in per dialect.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (  # 1: journal, snapshots, offsets, sink progress, history
        """CREATE TABLE journal (
            scope TEXT NOT NULL,
            seq {bigint} NOT NULL,
            at {real} NOT NULL,
            kind TEXT NOT NULL,
            data {blob} NOT NULL,
            PRIMARY KEY (scope, seq))""",
        """CREATE TABLE snapshots (
            scope TEXT PRIMARY KEY,
            seq {bigint} NOT NULL,
            at {real} NOT NULL,
            data {blob} NOT NULL)""",
        """CREATE TABLE offsets (
            scope TEXT NOT NULL,
            source TEXT NOT NULL,
            topic TEXT NOT NULL,
            part INTEGER NOT NULL,
            next_offset {bigint} NOT NULL,
            PRIMARY KEY (scope, source, topic, part))""",
        """CREATE TABLE sink_positions (
            sink TEXT NOT NULL,
            scope TEXT NOT NULL,
            seq {bigint} NOT NULL,
            PRIMARY KEY (sink, scope))""",
        """CREATE TABLE history (
            identifier TEXT NOT NULL,
            serial {bigint} NOT NULL,
            first_occurrence {real} NOT NULL,
            last_occurrence {real} NOT NULL,
            tally {bigint} NOT NULL,
            acknowledged_by TEXT,
            acknowledged_at {real},
            cleared_at {real},
            deleted_at {real} NOT NULL,
            alert {blob} NOT NULL)""",
        "CREATE INDEX history_deleted_at ON history (deleted_at)",
        "CREATE INDEX history_identifier ON history (identifier, deleted_at)",
    ),
    (  # 2: the rule sets the journal was processed under, by digest
        """CREATE TABLE rulesets (
            digest TEXT PRIMARY KEY,
            texts {blob} NOT NULL)""",
    ),
    (  # 3: the journal as one row per committed batch (`journal` keeps older entries)
        """CREATE TABLE journal_batches (
            scope TEXT NOT NULL,
            first_seq {bigint} NOT NULL,
            last_seq {bigint} NOT NULL,
            data {blob} NOT NULL,
            PRIMARY KEY (scope, first_seq))""",
    ),
    (  # 4: the outbox: actions (notifications) committed with the batch that made them
        """CREATE TABLE outbox (
            action_key TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            receiver TEXT NOT NULL,
            payload {blob} NOT NULL,
            attempts INTEGER NOT NULL,
            due {real} NOT NULL,
            created {real} NOT NULL,
            last_error TEXT)""",
        "CREATE INDEX outbox_due ON outbox (due)",
    ),
    (  # 5: which journal entry put which rule set in force, so unused ones can go
        """CREATE TABLE ruleset_uses (
            scope TEXT NOT NULL,
            seq {bigint} NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (scope, seq, digest))""",
        # rule sets stored before this migration: kept for good (scope '' has no snapshot)
        "INSERT INTO ruleset_uses (scope, seq, digest) SELECT '', 0, digest FROM rulesets",
    ),
)

SQLITE_TYPES: Final = {"blob": "BLOB", "real": "REAL", "bigint": "INTEGER"}
POSTGRES_TYPES: Final = {"blob": "BYTEA", "real": "DOUBLE PRECISION", "bigint": "BIGINT"}

VERSION_TABLE: Final = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


def migrations(types: dict[str, str]) -> list[list[str]]:
    """Each migration's statements for one dialect, in order (index 0 is version 1)."""
    return [[sql.format(**types) for sql in step] for step in MIGRATIONS]


CURRENT_VERSION: Final = len(MIGRATIONS)

INSERT_JOURNAL_BATCH: Final = (
    "INSERT INTO journal_batches (scope, first_seq, last_seq, data) VALUES (?, ?, ?, ?)"
)
LAST_JOURNAL_SEQS: Final = (  # the newest entry of either table (two index lookups)
    "SELECT (SELECT max(seq) FROM journal WHERE scope = ?), (SELECT last_seq FROM "
    "journal_batches WHERE scope = ? ORDER BY first_seq DESC LIMIT 1)"
)
INSERT_HISTORY: Final = (
    "INSERT INTO history (identifier, serial, first_occurrence, last_occurrence, tally, "
    "acknowledged_by, acknowledged_at, cleared_at, deleted_at, alert) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_OFFSET: Final = (
    "INSERT INTO offsets (scope, source, topic, part, next_offset) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (scope, source, topic, part) DO UPDATE SET next_offset = excluded.next_offset"
)
UPSERT_SNAPSHOT: Final = (
    "INSERT INTO snapshots (scope, seq, at, data) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope) DO UPDATE SET seq = excluded.seq, at = excluded.at, data = excluded.data"
)
INSERT_RULESET: Final = (
    "INSERT INTO rulesets (digest, texts) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING"
)
INSERT_RULESET_USE: Final = "INSERT INTO ruleset_uses (scope, seq, digest) VALUES (?, ?, ?)"
# a snapshot at `seq` needs only the rule set in force then (the last use at or before it)
# and those the journal after it names; other versions (old SQL table rows) are deleted
DROP_RULESET_USES: Final = (
    "DELETE FROM ruleset_uses WHERE scope = ? AND seq < "
    "(SELECT max(seq) FROM ruleset_uses WHERE scope = ? AND seq <= ?)"
)
DROP_UNUSED_RULESETS: Final = (
    "DELETE FROM rulesets WHERE digest NOT IN (SELECT digest FROM ruleset_uses)"
)
UPSERT_SINK: Final = (
    "INSERT INTO sink_positions (sink, scope, seq) VALUES (?, ?, ?) "
    "ON CONFLICT (sink, scope) DO UPDATE SET seq = excluded.seq"
)
SELECT_HISTORY: Final = (
    "SELECT identifier, serial, first_occurrence, last_occurrence, tally, "
    "acknowledged_by, acknowledged_at, cleared_at, deleted_at, alert FROM history "
    "WHERE deleted_at >= ? AND deleted_at < ? {and_identifier} ORDER BY deleted_at LIMIT ?"
)
INSERT_ACTION: Final = (
    "INSERT INTO outbox (action_key, scope, receiver, payload, attempts, due, created) "
    "VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (action_key) DO NOTHING"
)
