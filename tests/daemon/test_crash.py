"""`kill -9` in the middle of a stream: after a restart no event is lost or counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from support.postgres import free_port

EVENTS = 20_000
NODES = 200


def _config(tmp_path: Path, port: int, kafka: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text("{}\n")
    path = tmp_path / "correlator.yaml"
    config = {
        "rules": str(rules),
        "state": {"url": f"sqlite:///{tmp_path}/state.db"},
        "http": {"listen": f"127.0.0.1:{port}"},
        "dead_letter": {"file": str(tmp_path / "dead-letter.jsonl")},
        "sources": [{"kafka": {"bootstrap_servers": kafka, "topics": ["stream"],
                               "heartbeat_interval": 0.1, "session_timeout": 1.0}}],
    }  # fmt: skip
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    return path


def _start(config: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    correlator = Path(sys.executable).with_name("correlator")
    with (tmp_path / "daemon.log").open("ab") as log:  # the daemon keeps its own copy
        return subprocess.Popen([str(correlator), "run", "-c", str(config)], stdout=log, stderr=log)


async def _tally(client: httpx.AsyncClient) -> dict[str, int]:
    try:
        body = (await client.get("/api/v1/alerts", params={"limit": 10_000})).json()
    except httpx.TransportError:
        return {}
    return {row["identifier"]: row["tally"] for row in body["alerts"]}


def _journaled(tmp_path: Path) -> int:
    """Events durable in the daemon's store (read as a second process would)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        try:
            return int(db.execute("SELECT count(*) FROM journal").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


async def _until_counted(client: httpx.AsyncClient, events: int, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while sum((await _tally(client)).values()) < events:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.01)


async def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """20,000 Kafka events; the daemon is killed with SIGKILL while consuming them; the
    restarted daemon ends with every identifier's tally exact."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        for n in range(EVENTS):
            event = {"node": f"n{n % NODES}", "alertgroup": "Down", "timestamp": time.time()}
            await producer.send("stream", orjson.dumps(event))
        await producer.flush()
    finally:
        await producer.stop()
    port = free_port()
    config = _config(tmp_path, port, kafka_bootstrap)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        first = _start(config, tmp_path)
        try:
            async with asyncio.timeout(60):
                while _journaled(tmp_path) < EVENTS // 4:  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.005)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        durable = _journaled(tmp_path)
        assert durable < EVENTS, "killed too late to prove anything"
        second = _start(config, tmp_path)
        try:
            await _until_counted(client, EVENTS, 90)
            await asyncio.sleep(0.5)  # nothing more arrives
            tally = await _tally(client)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    assert tally == {f"n{n}:Down::": EVENTS // NODES for n in range(NODES)}
