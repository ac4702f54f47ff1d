"""The reader of SQL lookup tables, on SQLite and PostgreSQL: what counts as changed rows,
what a failed or hung read keeps, and that a lookup query cannot write to the state."""

from __future__ import annotations

import orjson
import pytest

from correlator.ruleset.tables import TableSpec
from correlator.store import lookups
from correlator.store.lookups import SqlTables
from correlator.store.sql import SqlStore


async def _run(store: SqlStore, sql: str) -> None:
    await store._run(lambda cur: cur.execute(sql))


async def test_reads_compare_rows_and_failures_keep_the_last_ones(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _run(store, "CREATE TABLE cmdb (host TEXT, team TEXT)")
    await _run(store, "INSERT INTO cmdb VALUES ('b', 'web'), ('a', 'dba')")
    tables = SqlTables(store, clock=lambda: 0.0)
    spec = TableSpec(sql="SELECT host, team FROM cmdb", key="host", ttl=60)
    assert await tables.read({"cmdb": spec}) is True
    rows = orjson.loads(tables.texts["sql:cmdb"])
    assert rows == [{"host": "a", "team": "dba"}, {"host": "b", "team": "web"}]  # one order
    assert await tables.read({"cmdb": spec}) is False  # not due yet
    assert await tables.read({"cmdb": spec}, all_tables=True) is False  # due, same rows
    await _run(store, "UPDATE cmdb SET team = 'ops' WHERE host = 'a'")
    assert await tables.read({"cmdb": spec}, all_tables=True) is True

    for broken in ("SELECT nope FROM cmdb", "SELECT team FROM cmdb"):  # an error; no key column
        failing = TableSpec(sql=broken, key="host")
        assert await tables.read({"cmdb": failing}, all_tables=True) is False
    monkeypatch.setattr(lookups, "READ_TIMEOUT", 0.05)
    slow = "SELECT pg_sleep(1) AS host" if store.dialect.name == "postgresql" else (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
        "SELECT count(*) AS host FROM c"
    )  # fmt: skip
    assert await tables.read({"cmdb": TableSpec(sql=slow, key="host")}, all_tables=True) is False
    assert tables.counts() == {("cmdb", "success"): 3, ("cmdb", "failure"): 3}
    assert "ops" in tables.texts["sql:cmdb"]  # the last good rows stay

    writes = TableSpec(sql="DELETE FROM cmdb RETURNING host", key="host")
    assert await tables.read({"cmdb": writes}, all_tables=True) is False  # read-only
    assert await tables.read({}) is False and tables.texts == {}  # the table left the rules
