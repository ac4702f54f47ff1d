"""SQL lookup tables: read whole from the state database, again every `ttl`, journaled.

On SQLite and PostgreSQL: a policy's lookup enriches from the rows read at
start; a changed row reaches alerts created after the next read (the alerts
enriched before keep what they got); a failed read keeps the last rows and is
counted; a restart reads the table again and restores the old alerts as they
were.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from support.daemon import Running, write_rules

from correlator.app import App

RULES = """
tables:
  cmdb:
    sql: "select host, team, tier from cmdb where retired = 0"
    key: host
    ttl: 0.2
    default: {team: noc}
policies:
  - name: enrich
    on: [create]
    actions:
      - lookup: {table: cmdb, key: "{{ node }}"}
"""


def _sqlite(url: str) -> Callable[[str], None]:
    path = url.removeprefix("sqlite:///")

    def run(sql: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(sql)

    return run


def _postgres(url: str) -> Callable[[str], None]:
    def run(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Callable[[str], None]]:
    """A state database holding a `cmdb` table, and a function running SQL on it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
        run = _sqlite(url)
    else:
        url = request.getfixturevalue("postgres_database")
        run = _postgres(url)
    run("create table cmdb (host text, team text, tier integer, retired integer)")
    run("insert into cmdb values ('db1', 'dba', 1, 0), ('web1', 'web', 2, 0), ('old', 'x', 3, 1)")
    return url, run


async def _labels(client: httpx.AsyncClient, app: App, node: str, group: str) -> dict[str, Any]:
    event = {"node": node, "alertgroup": group}
    assert (await client.post("/api/v1/events", json=event)).status_code == 200
    row = app.row(f"{node}:{group}::")
    assert row is not None
    return dict(row.labels)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the table is read on its own schedule
            await asyncio.sleep(0.02)


async def test_sql_table_enriches_follows_changes_and_survives_failures(
    daemon: Running, rules_dir: Path, state: tuple[str, Callable[[str], None]]
) -> None:
    url, run = state
    write_rules(rules_dir, RULES)
    config = {"state": {"url": url, "commit_interval": 0.002}, "watch_rules": False}
    async with daemon(**config) as (app, client):
        assert await _labels(client, app, "db1", "Disk") == {"team": "dba", "tier": "1"}
        assert await _labels(client, app, "old", "Disk") == {"team": "noc"}  # a miss: default
        digest = app.rules.digest
        run("update cmdb set team = 'dbx' where host = 'db1'")
        await _until(lambda: digest != app.rules.digest == app.pipeline.rules.digest)
        assert await _labels(client, app, "db1", "Cpu") == {"team": "dbx", "tier": "1"}
        assert app.row("db1:Disk::").labels["team"] == "dba"  # type: ignore[union-attr]

        run("drop table cmdb")  # the CMDB is gone for a while: keep the last rows
        await _until(lambda: app.sql_tables.reads["cmdb", "failure"] >= 2)
        assert await _labels(client, app, "db1", "Mem") == {"team": "dbx", "tier": "1"}
        metrics = (await client.get("/metrics")).text
    assert 'correlator_table_reads_total{result="failure",table="cmdb"}' in metrics
    assert 'correlator_table_reads_total{result="success",table="cmdb"}' in metrics

    run("create table cmdb (host text, team text, tier integer, retired integer)")
    run("insert into cmdb values ('db1', 'dbz', 1, 0)")
    async with daemon(**config) as (app, client):  # restored as enriched, then read again
        assert app.row("db1:Disk::").labels["team"] == "dba"  # type: ignore[union-attr]
        assert app.row("db1:Cpu::").labels["team"] == "dbx"  # type: ignore[union-attr]
        assert await _labels(client, app, "db1", "Net") == {"team": "dbz", "tier": "1"}


async def test_a_sql_table_added_by_a_reload_is_read_at_once(
    daemon: Running, rules_dir: Path, state: tuple[str, Callable[[str], None]]
) -> None:
    url, _ = state
    config = {"state": {"url": url, "commit_interval": 0.002}, "watch_rules": False}
    async with daemon(**config) as (app, client):
        write_rules(rules_dir, RULES.replace("ttl: 0.2", "ttl: 1h"))
        assert (await client.post("/-/reload")).status_code == 200
        await _until(lambda: b'"sql:cmdb"' in app.pipeline.rules.blob)
        assert await _labels(client, app, "web1", "Disk") == {"team": "web", "tier": "2"}
