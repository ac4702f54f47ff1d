"""A partitioned Kafka source: one engine per partition, handed over on a rebalance.

Each partition's journal, snapshots and offsets are keyed by its scope, so two
daemons of one consumer group sharing a PostgreSQL store split the partitions
between them, and a partition that moves is restored by its new owner from
what the old one saved when the group took it away: tallies stay exact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from support.daemon import Running

from correlator.app import App

PARTITIONS = 3
NODES = 12


async def _produce(bootstrap: str, topic: str, rounds: int) -> None:
    """`rounds` events per node, each keyed by its node (one node, one partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(rounds):
            for n in range(NODES):
                event = {"node": f"n{n}", "alertgroup": "Down", "severity": "major"}
                await producer.send(topic, orjson.dumps(event), key=f"n{n}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


def _source(bootstrap: str, topic: str) -> dict[str, Any]:
    kafka = {"bootstrap_servers": bootstrap, "topics": [topic], "partitioned": True,
             "heartbeat_interval": 0.1, "session_timeout": 1.0}  # fmt: skip
    return {"kafka": kafka}


def _tallies(*apps: App) -> dict[str, int]:
    out: dict[str, int] = {}
    for app in apps:
        for row in app.rows():
            assert row.identifier not in out, f"{row.identifier} in two engines"
            out[row.identifier] = row.tally
    return out


async def _until(condition: object, seconds: float = 60.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state is in the broker and the daemons
            await asyncio.sleep(0.05)


async def test_one_engine_per_partition_restored_on_restart(
    daemon: Running, kafka_bootstrap: str
) -> None:
    await _topic(kafka_bootstrap, "keyed")
    await _produce(kafka_bootstrap, "keyed", 5)
    source = [_source(kafka_bootstrap, "keyed")]
    async with daemon(sources=source) as (app, client):
        await _until(lambda: sum(_tallies(app).values()) == 5 * NODES)
        scopes = {s for s in app.scopes.pipelines if s != "default"}
        assert scopes == {f"kafka-0:keyed:{p}" for p in range(PARTITIONS)}
        listed = (await client.get("/api/v1/alerts", params={"limit": 100})).json()
        assert listed["total"] == NODES  # the API reads every engine
        ack = await client.post("/api/v1/alerts/n3:Down::/ack")
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
        metrics = (await client.get("/metrics")).text
        assert f"correlator_scopes {PARTITIONS + 1}.0" in metrics
    await _produce(kafka_bootstrap, "keyed", 2)
    async with daemon(sources=source) as (app, _):
        await _until(lambda: sum(_tallies(app).values()) == 7 * NODES)
        assert _tallies(app) == {f"n{n}:Down::": 7 for n in range(NODES)}
        assert app.row("n3:Down::") is not None
        assert app.row("n3:Down::").status == "acknowledged"  # type: ignore[union-attr]


async def test_a_rebalance_hands_partitions_over_through_the_shared_store(
    daemon: Running, kafka_bootstrap: str, postgres_database: str
) -> None:
    """Two daemons, one group, one PostgreSQL store: the second takes partitions over with
    their state; every tally stays exact across the move."""
    await _topic(kafka_bootstrap, "moved")
    await _produce(kafka_bootstrap, "moved", 4)
    source = [_source(kafka_bootstrap, "moved")]
    state = {"url": postgres_database, "commit_interval": 0.002}
    async with daemon(sources=source, state={**state, "scope": "a"}) as (first, _):
        await _until(lambda: sum(_tallies(first).values()) == 4 * NODES)
        async with daemon(sources=source, state={**state, "scope": "b"}) as (second, _):
            await _until(lambda: len(second.scopes.pipelines) > 1)  # took partitions over
            await _produce(kafka_bootstrap, "moved", 3)
            await _until(lambda: sum(_tallies(first, second).values()) == 7 * NODES)
            assert _tallies(first, second) == {f"n{n}:Down::": 7 for n in range(NODES)}
            moved = {s for s in second.scopes.pipelines if s != "b"}
            kept = {s for s in first.scopes.pipelines if s != "a"}
            assert moved and kept and not moved & kept
            assert moved | kept == {f"kafka-0:moved:{p}" for p in range(PARTITIONS)}
