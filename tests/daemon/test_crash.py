"""`kill -9` in the middle of a stream: after a restart no acknowledged event is lost.

Kafka: nothing lost and nothing counted twice (offsets are in the journal's
transaction). MQTT and HTTP: nothing lost; what was committed but not yet
acknowledged when the process died is delivered again (at-least-once).
"""

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

import aiomqtt
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from support.brokers import mosquitto
from support.postgres import free_port
from support.receiver import endpoint

EVENTS = 20_000
NODES = 200


def _config(tmp_path: Path, port: int, sources: list[dict[str, object]]) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text("{}\n")
    path = tmp_path / "correlator.yaml"
    config = {
        "rules": str(rules),
        # snapshots every 1,500 entries: the kill may come during one, and the restart
        # loads the last one saved and replays the journal after it
        "state": {"url": f"sqlite:///{tmp_path}/state.db", "snapshot_entries": 1500},
        "http": {"listen": f"127.0.0.1:{port}"},
        "dead_letter": {"file": str(tmp_path / "dead-letter.jsonl")},
        "sources": sources,
        "watch_rules": False,
    }
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
    """Inputs durable in the daemon's store, in its journal or covered by its snapshot
    (read as a second process would)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        try:
            (seq,) = db.execute(
                "SELECT max(coalesce((SELECT max(last_seq) FROM journal_batches), 0),"
                " coalesce((SELECT max(seq) FROM snapshots), 0))"
            ).fetchone()
            return int(seq)
        except sqlite3.OperationalError:  # not created yet
            return 0


def _snapshots(tmp_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        return int(db.execute("SELECT coalesce(max(seq), 0) FROM snapshots").fetchone()[0])


async def _kill_when_journaled(
    daemon: subprocess.Popen[bytes], tmp_path: Path, n: int, *, snapshot: bool = False
) -> None:
    """SIGKILL the daemon as soon as `n` inputs are durable (mid-stream, not at its end),
    and with `snapshot` once a snapshot is saved too."""
    try:
        async with asyncio.timeout(60):
            while _journaled(tmp_path) < n or (  # noqa: ASYNC110 - another process
                snapshot and not _snapshots(tmp_path)
            ):
                await asyncio.sleep(0.005)
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()


async def _until_counted(
    client: httpx.AsyncClient, events: int, seconds: float, *, alerts: bool = False
) -> None:
    """Until the tallies add up to `events` (with `alerts`: until there are that many alerts)."""
    async with asyncio.timeout(seconds):
        while True:
            tally = await _tally(client)
            if (len(tally) if alerts else sum(tally.values())) >= events:
                return
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
    kafka = {"bootstrap_servers": kafka_bootstrap, "topics": ["stream"],
             "heartbeat_interval": 0.1, "session_timeout": 1.0}  # fmt: skip
    config = _config(tmp_path, port, [{"kafka": kafka}])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        daemon = _start(config, tmp_path)
        await _kill_when_journaled(daemon, tmp_path, EVENTS // 4, snapshot=True)
        durable = _journaled(tmp_path)
        assert durable < EVENTS, "killed too late to prove anything"
        assert _snapshots(tmp_path) > 0, "the restart starts from a snapshot"
        second = _start(config, tmp_path)
        try:
            await _until_counted(client, EVENTS, 90)
            await asyncio.sleep(0.5)  # nothing more arrives
            tally = await _tally(client)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    assert tally == {f"n{n}:Down::": EVENTS // NODES for n in range(NODES)}


async def test_mqtt_kill_9_loses_nothing(tmp_path: Path) -> None:
    """QoS 1 on a persistent session: messages published before, during and after the
    crash all count; at most the unacknowledged window is delivered twice. (mosquitto
    keeps 1,000 messages per offline client by default: production brokers raise
    `max_queued_messages`, and so does this one.)"""
    events, nodes = 3000, 100
    with mosquitto(extra=("max_queued_messages 100000",)) as mqtt_port:
        await _mqtt_crash(tmp_path, mqtt_port, events, nodes)


async def _mqtt_crash(tmp_path: Path, mqtt_port: int, events: int, nodes: int) -> None:
    port = free_port()
    mqtt = {"url": f"mqtt://127.0.0.1:{mqtt_port}", "topics": ["crash/#"], "client_id": "crash"}
    config = _config(tmp_path, port, [{"mqtt": mqtt}])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        first = _start(config, tmp_path)
        await _until_ready(client)
        publishing = asyncio.create_task(_publish(mqtt_port, events, nodes))
        await _kill_when_journaled(first, tmp_path, events // 4)
        durable = _journaled(tmp_path)  # the rules, then the messages the first daemon stored
        second = _start(config, tmp_path)
        try:
            await publishing
            await _until_counted(client, events, 90, alerts=True)
            await asyncio.sleep(0.5)
            tally = await _tally(client)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    # one alert per message: nothing lost, and counted twice only where the first daemon
    # stored it but died before its PUBACK reached the broker (its last batches)
    assert set(tally) == {f"n{n % nodes}:Down:{n}:" for n in range(events)}
    twice = sorted(int(ident.split(":")[2]) for ident, count in tally.items() if count > 1)
    assert max(tally.values()) <= 2
    assert all(n < durable + 100 for n in twice), (durable, twice)  # 100: delivery reorders


async def test_http_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Batches answered 200 are all there after the crash; the batch whose answer was lost
    is sent again by the client (at-least-once)."""
    batches, size, nodes = 50, 100, 100
    port = free_port()
    config = _config(tmp_path, port, [])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        daemon = _start(config, tmp_path)
        await _until_ready(client)
        killer = asyncio.create_task(_kill_when_journaled(daemon, tmp_path, batches * size // 4))
        for b in range(batches):
            body = [
                {"node": f"n{(b * size + i) % nodes}", "alertgroup": "Down"} for i in range(size)
            ]
            while True:
                try:
                    if (await client.post("/api/v1/events", json=body)).status_code == 200:
                        break
                except httpx.TransportError:  # killed: start it again and resend
                    await killer
                    daemon = _start(config, tmp_path)
                    await _until_ready(client)
        tally = await _tally(client)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    assert killer.done()
    assert min(tally.values()) >= batches * size // nodes  # nothing acknowledged is lost
    assert sum(tally.values()) <= batches * size + size  # one batch resent at most


async def _until_ready(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.02)


async def _publish(port: int, events: int, nodes: int) -> None:
    """Publish at QoS 1 (each acknowledged by the broker), as a probe would."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="crash-publisher") as client:
        for n in range(events):
            event = {"node": f"n{n % nodes}", "alertgroup": "Down", "alertkey": str(n),
                     "timestamp": time.time()}  # fmt: skip
            await client.publish(f"crash/{n}", orjson.dumps(event), qos=1)


async def test_sighup_reloads_the_rules(tmp_path: Path) -> None:
    """`kill -HUP` makes the running daemon load the rules directory (file watching off)."""
    port = free_port()
    config = _config(tmp_path, port, [])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        daemon = _start(config, tmp_path)
        try:
            await _until_ready(client)
            (tmp_path / "rules" / "rules.yaml").write_text(
                "correlate:\n  - {name: storm, kind: threshold, count: 1, window: 1m}\n"
            )
            daemon.send_signal(signal.SIGHUP)
            async with asyncio.timeout(20):
                while 'result="success"} 1.0' not in (await client.get("/metrics")).text:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            await client.post("/api/v1/events", json={"node": "a", "alertgroup": "X"})
            assert "correlator:storm" in await _tally(client)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0


async def test_a_notification_outlives_kill_9_and_is_delivered_once(tmp_path: Path) -> None:
    """Committed to the outbox with its batch; the receiver fails until the daemon is
    killed; the restarted daemon delivers it, exactly once."""
    port = free_port()
    config = _config(tmp_path, port, [])
    settings = orjson.loads(config.read_bytes())
    settings["notify"] = {"retry_min": 0.05, "retry_max": 0.2}
    config.write_bytes(orjson.dumps(settings))
    async with (
        endpoint() as hook,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        hook.answers = [500]
        (tmp_path / "rules" / "rules.yaml").write_text(
            "route: {receiver: hook, group_wait: 0s}\n"
            f'receivers: [{{name: hook, webhook_configs: [{{url: "{hook.url}"}}]}}]\n'
        )
        first = _start(config, tmp_path)
        await _until_ready(client)
        event = {"node": "db1", "alertgroup": "Down", "severity": "critical"}
        assert (await client.post("/api/v1/events", json=event)).status_code == 200
        await hook.until(2)  # tried, and tried again: it is in the outbox
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        hook.answers = [200]
        second = _start(config, tmp_path)
        try:
            async with asyncio.timeout(30):
                while not hook.delivered():  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)  # nothing more arrives
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    (delivered,) = hook.delivered()
    assert {r.headers["idempotency-key"] for r in hook.requests} == {"default:n1:0"}
    assert delivered.body["alerts"][0]["labels"]["node"] == "db1"
