"""Each store test runs on SQLite and on a throwaway PostgreSQL cluster (a new database each)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from support.postgres import throwaway_cluster

from correlator.store.sql import SqlStore, open_store

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with throwaway_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    server: str = request.getfixturevalue("postgres_url")
    name = f"test_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """An open store on an empty database."""
    store = open_store(store_url)
    await store.open()
    yield store
    await store.close()
