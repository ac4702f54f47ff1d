"""Each store test runs on SQLite and on a throwaway PostgreSQL cluster (a new database each)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from correlator.store.sql import SqlStore, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """An open store on an empty database."""
    store = open_store(store_url)
    await store.open()
    yield store
    await store.close()
