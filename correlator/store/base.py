"""What the daemon keeps durable, and the one interface both databases implement.

State is the last engine snapshot plus the input journal after it (DESIGN.md
§6): the engine is deterministic in its inputs, so replaying the journal with
the recorded `now` values rebuilds the table exactly. Everything is keyed by
a `scope` (one engine's source partitions, e.g. `kafka:events:3`), so that on
a rebalance a new owner loads just the partitions it was given.

Commit order, in one transaction per batch (never one per event):
1. append the batch's journal entries;
2. store the source offsets the batch reaches (the consumer seeks to them on start);
3. add the rows the batch deleted to the history.
Only then are the batch's inputs acknowledged (Kafka commit, MQTT PUBACK, HTTP 200).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

# journal entry kinds: an event, a timer tick, an operator's action, the rule set in force
EVENT: Final = "event"
# a batch of events (an HTTP body) as one JSON array; its `seq` is that of its last
# event: every event counts one in the journal's numbering, as an `event` entry does
EVENTS: Final = "events"
TICK: Final = "tick"
ACTION: Final = "action"  # data: {"action", "identifier", "who", "value"} as JSON
RULES: Final = "rules"  # data: the rule set's digest (its texts are in `rulesets`)

OffsetKey = tuple[str, str, int]  # (source name, topic, partition)


class Entry(NamedTuple):
    """One engine input: `data` is the raw event or action as JSON (empty for a tick).

    A named tuple (one per event): cheap to build, and of atoms only, so the
    garbage collector stops tracking it.
    """

    seq: int
    at: float
    kind: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """A deleted row, as Netcool's REPORTER keeps it: the source of MTTA/MTTR reports."""

    identifier: str
    serial: int
    first_occurrence: float
    last_occurrence: float
    tally: int
    acknowledged_by: str | None
    acknowledged_at: float | None
    cleared_at: float | None
    deleted_at: float
    alert: bytes  # the row's JSON (DESIGN.md §3) when it was deleted


@dataclass(frozen=True, slots=True)
class Action:
    """One entry of the outbox: an I/O action (a notification) to run at least once.

    `key` is its idempotency key (the scope and the change `seq` that made it),
    passed on to receivers whose API takes one.
    """

    key: str
    scope: str
    receiver: str
    payload: bytes  # the notification as JSON
    created: float
    attempts: int = 0
    due: float = 0.0
    last_error: str | None = None


@dataclass(slots=True)
class Batch:
    """What one group commit makes durable for one scope."""

    scope: str
    entries: list[Entry] = field(default_factory=list)
    offsets: dict[OffsetKey, int] = field(default_factory=dict)  # next offset to read
    history: list[HistoryRecord] = field(default_factory=list)
    rulesets: dict[str, bytes] = field(default_factory=dict)  # digest → texts (JSON)
    outbox: list[Action] = field(default_factory=list)  # actions the batch made
    # the seq of its first event: an `events` entry (an HTTP body) is numbered as its last,
    # and the journal's order check needs the first. 0: the first entry's own seq
    first_seq: int = 0


@dataclass(frozen=True, slots=True)
class Restored:
    """A scope's state as stored: restore the snapshot, then replay `entries` in order."""

    snapshot: bytes | None
    snapshot_seq: int  # the last journal seq the snapshot covers (0: none)
    entries: list[Entry]
    offsets: dict[OffsetKey, int]


class Store(Protocol):
    """A state database (SQLite or PostgreSQL); every method is one transaction."""

    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def load(self, scope: str) -> Restored: ...

    async def commit(self, batch: Batch) -> None: ...

    async def save_snapshot(self, scope: str, seq: int, data: bytes, at: float) -> None:
        """Keep `data` as the state after entry `seq` and drop the journal it covers."""

    async def due_actions(self, now: float, limit: int) -> list[Action]:
        """Outbox actions due at `now`, oldest first."""

    async def next_action_due(self) -> float | None:
        """When the earliest outbox action is due (None: the outbox is empty)."""

    async def actions_done(self, keys: Sequence[str]) -> None:
        """These actions succeeded (or were given up): they leave the outbox, together."""

    async def action_retry(self, key: str, attempts: int, due: float, error: str) -> None:
        """The action failed: try again at `due`."""

    async def ruleset(self, digest: str) -> bytes | None:
        """The rule texts (JSON `{path: text}`) stored under `digest`."""

    async def stored_names(self) -> tuple[set[str], set[str]]:
        """The sources with stored offsets and the sinks with stored positions, by name."""

    async def sink_position(self, sink: str, scope: str) -> int:
        """The last change `seq` the sink is known to have published (0: none)."""

    async def set_sink_position(self, sink: str, scope: str, seq: int) -> None: ...

    async def history(
        self, since: float, until: float, *, identifier: str | None = None, limit: int = 1000
    ) -> list[HistoryRecord]:
        """Rows deleted in [since, until), oldest first."""

    async def read_table(self, query: str, max_rows: int) -> list[dict[str, Any]]:
        """A lookup table's rows by column name, read-only; StoreError past `max_rows`."""


def history_rows(records: Sequence[HistoryRecord]) -> list[tuple[object, ...]]:
    """History records as the column tuples of the `history` table."""
    return [
        (
            r.identifier,
            r.serial,
            r.first_occurrence,
            r.last_occurrence,
            r.tally,
            r.acknowledged_by,
            r.acknowledged_at,
            r.cleared_at,
            r.deleted_at,
            r.alert,
        )
        for r in records
    ]
