"""The daemon's reader of SQL lookup tables (`tables: {name: {sql: …, key: …, ttl: …}}`).

Each table's query runs on the state database at start and again every
`ttl`. Rows that differ from the last read become a new version of the rule
set (a reload, journaled like any other), so what an alert was enriched with
is in the journal and a restart replays it with the same rows. A failed read
keeps the last rows (a CMDB that is briefly down must not strip enrichment)
and is logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from correlator.ruleset.tables import SQL_PREFIX, TableSpec, sql_rows_text
from correlator.store.base import Store

log = structlog.get_logger("correlator")

MAX_ROWS = 1_000_000  # a lookup table is held in memory by every rule that reads it
READ_TIMEOUT = 60.0  # seconds: a query that hangs must not hold up the start or the next reads


class SqlTables:
    """The last rows read of every SQL table, as rule-set texts (`sql:<name>`)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.texts: dict[str, str] = {}
        self.reads: Counter[tuple[str, str]] = Counter()  # (table, success|failure)
        self._due: dict[str, float] = {}
        self._changed = asyncio.Event()  # the rule set (and so the tables) changed

    async def read(self, specs: Mapping[str, TableSpec], *, all_tables: bool = False) -> bool:
        """Read the tables that are due (or all); True if any table's rows changed."""
        now = self.clock()
        changed = False
        for gone in [k for k in self.texts if k.removeprefix(SQL_PREFIX) not in specs]:
            del self.texts[gone]
            self._due.pop(gone.removeprefix(SQL_PREFIX), None)
        for name, spec in specs.items():
            if not all_tables and self._due.get(name, 0.0) > now:
                continue
            self._due[name] = now + spec.refresh
            text = await self._read(name, spec)
            if text is not None and self.texts.get(SQL_PREFIX + name) != text:
                self.texts[SQL_PREFIX + name] = text
                changed = True
        return changed

    async def _read(self, name: str, spec: TableSpec) -> str | None:
        assert spec.sql is not None
        try:
            rows = await asyncio.wait_for(self.store.read_table(spec.sql, MAX_ROWS), READ_TIMEOUT)
            if rows and spec.key not in rows[0]:
                raise ValueError(f"the query returns no {spec.key!r} column (the table's key)")
        except Exception as exc:  # a database error of either driver, a bad query, a timeout
            self.reads[name, "failure"] += 1
            error = str(exc) or type(exc).__name__
            log.error("lookup table not read: keeping its last rows", table=name, error=error)
            return None
        self.reads[name, "success"] += 1
        # one order whatever the database's: the same rows are the same rule-set version
        rows.sort(key=lambda row: [str(row[spec.key]), *map(str, row.values())])
        return sql_rows_text(rows)

    def counts(self) -> dict[tuple[str, str], int]:
        """Reads by (table, result), every table's two series present from the start."""
        return {(t, r): self.reads[t, r] for t in self._due for r in ("success", "failure")}

    def rules_changed(self) -> None:
        """A reload may have added a table: read it now rather than at the next due time."""
        self._changed.set()

    async def run(
        self, specs: Callable[[], Mapping[str, TableSpec]], reload: Callable[[], None]
    ) -> None:
        """Read each table when due; ask for a reload when rows changed."""
        while True:
            self._changed.clear()  # before reading: a reload from here on wakes the wait
            current = specs()
            if await self.read(current):
                reload()
            due = [self._due.get(name, 0.0) for name in current]
            wait = max(0.0, min(due) - self.clock()) if due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
