"""Shared fixtures: rule sets from YAML text, and a guard against leaked threads."""

from __future__ import annotations

import itertools
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.brokers import mosquitto, tansu
from support.postgres import throwaway_cluster

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet, load_rules


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test that leaves a thread running fails: background work must have an owner."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"


@pytest.fixture
def ruleset(tmp_path: Path) -> Callable[[str], RuleSet]:
    """Load a rule set from YAML text (dedented) written to a temporary rules directory."""

    def make(text: str) -> RuleSet:
        (tmp_path / "rules.yaml").write_text(textwrap.dedent(text))
        return load_rules(tmp_path)

    return make


@pytest.fixture
def engine(ruleset: Callable[[str], RuleSet]) -> Callable[[str], Engine]:
    """An engine over rules given as YAML text."""

    def make(text: str = "{}") -> Engine:
        return Engine(ruleset(text))

    return make


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (tansu, in memory) for one test module."""
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def mqtt_port() -> Iterator[int]:
    """A real mosquitto broker for one test module."""
    with mosquitto() as port:
        yield port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the whole test session."""
    with throwaway_cluster() as url:
        yield url


_databases = itertools.count()


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    """A new empty database on the session's cluster, for one test."""
    import psycopg

    name = f"test_{next(_databases)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_url.rsplit('/', 1)[0]}/{name}"
