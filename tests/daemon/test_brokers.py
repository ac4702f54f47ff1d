"""The daemon between real brokers: Kafka → table → Kafka, MQTT → table → retained MQTT."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomqtt
import orjson
from aiokafka import AIOKafkaProducer
from support.brokers import mosquitto
from support.daemon import Running
from support.topics import Message, read_topic


async def _until(condition: object, seconds: float = 30.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state is in brokers and the daemon
            await asyncio.sleep(0.02)


async def test_kafka_in_kafka_out(daemon: Running, kafka_bootstrap: str) -> None:
    """Events from a topic fold into the table; every change is on the sink topic, keyed by
    identifier, with increasing `seq`; readiness counts the source."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(30):
            event = {"node": f"n{n % 3}", "alertgroup": "Down", "severity": "major"}
            await producer.send("events", orjson.dumps(event))
        await producer.send("events", b"{oops")
        await producer.flush()
    finally:
        await producer.stop()
    source = {"bootstrap_servers": kafka_bootstrap, "topics": ["events"],
              "heartbeat_interval": 0.1, "session_timeout": 1.0}  # fmt: skip
    sink = {"bootstrap_servers": kafka_bootstrap, "topic": "alerts"}
    dead = {"kafka": {"bootstrap_servers": kafka_bootstrap, "topic": "dead"}}
    config = {"sources": [{"kafka": source}], "sinks": [{"kafka": sink}], "dead_letter": dead}
    async with daemon(**config) as (app, client):
        await _until(lambda: sum(r.tally for r in app.engine.table.rows.values()) == 30)
        await _until(lambda: sum(app.pipeline.dead_letters.values()) == 1)
        assert (await client.get("/readyz")).json()["checks"]["source:kafka-0"] is True
    assert [
        (d["reason"], d["raw"])
        for _, d in await read_topic(kafka_bootstrap, "dead", lambda got: len(got) >= 1)
    ] == [("not_json", "{oops")]

    def final(got: list[dict[str, Any]]) -> dict[str, int]:
        return {r["alert"]["identifier"]: r["alert"]["tally"] for r in sorted(got, key=_seq)}

    def complete(got: list[Message]) -> bool:
        return sum(final([value for _, value in got]).values()) == 30

    records = [value for _, value in await read_topic(kafka_bootstrap, "alerts", complete)]
    records.sort(key=_seq)
    assert final(records) == {"n0:Down::": 10, "n1:Down::": 10, "n2:Down::": 10}
    assert len({r["seq"] for r in records}) == len(records) <= 30  # repeats may be coalesced
    created = {r["alert"]["identifier"] for r in records if r["kind"] == "alert.created"}
    assert created == {"n0:Down::", "n1:Down::", "n2:Down::"}
    assert {r["kind"] for r in records} == {"alert.created", "alert.updated"}


def _seq(record: dict[str, Any]) -> int:
    return int(record["seq"])


async def test_mqtt_in_retained_mqtt_out(daemon: Running, mqtt_port: int) -> None:
    """QoS 1 events fold into the table; the sink keeps one retained message per alert."""
    url = f"mqtt://127.0.0.1:{mqtt_port}"
    source = {"url": url, "topics": ["events/#"], "client_id": "correlator-test"}
    sink = {"url": url, "prefix": "correlator/alerts"}
    dead = {"mqtt": {"url": url, "topic": "correlator/dead"}}
    config = {"sources": [{"mqtt": source}], "sinks": [{"mqtt": sink}], "dead_letter": dead}
    async with (
        daemon(**config) as (app, http),
        aiomqtt.Client("127.0.0.1", mqtt_port) as client,
    ):
        await client.subscribe("correlator/dead", qos=1)
        await _until(lambda: all(s.connected for s in app.sources))
        for n in range(20):
            event = {"node": f"n{n % 4}", "alertgroup": "Down"}
            await client.publish(f"events/{n}", orjson.dumps(event), qos=1)
        await client.publish("events/bad", b'{"node": "x"}', qos=1)
        async with asyncio.timeout(10):
            letter = orjson.loads((await anext(client.messages)).payload)  # type: ignore[arg-type]
        assert (letter["reason"], letter["source"]) == ("invalid", "mqtt-0")
        await _until(lambda: sum(r.tally for r in app.engine.table.rows.values()) == 20)
        await _until(lambda: not any(app.publisher.lag().values()))
        metrics = (await http.get("/metrics")).text
        assert 'correlator_sink_rejected_records_total{sink="mqtt-0"} 0.0' in metrics
    retained: dict[str, int] = {}
    async with aiomqtt.Client("127.0.0.1", mqtt_port) as client:
        await client.subscribe("correlator/alerts/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    retained[str(message.topic)] = orjson.loads(message.payload)["alert"]["tally"]
    assert retained == {f"correlator/alerts/n{n}:Down::": 5 for n in range(4)}


async def test_readiness_follows_the_broker(daemon: Running) -> None:
    """Broker stopped: /readyz 503 naming the source; broker back on its port: 200, and
    what is published then arrives."""
    first = contextlib.ExitStack()
    port = first.enter_context(mosquitto())
    try:
        source = {"url": f"mqtt://127.0.0.1:{port}", "topics": ["events/#"], "client_id": "ready"}
        async with daemon(sources=[{"mqtt": source}]) as (app, client):
            await _until(lambda: all(s.connected for s in app.sources))
            assert (await client.get("/readyz")).status_code == 200
            first.close()  # the broker goes away
            await _until(lambda: not app.sources[0].connected)
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["source:mqtt-0"] is False
            with mosquitto(port=port):
                await _until(lambda: app.sources[0].connected)
                assert (await client.get("/readyz")).status_code == 200
                async with aiomqtt.Client("127.0.0.1", port) as publisher:
                    event = {"node": "n1", "alertgroup": "Down"}
                    await publisher.publish("events/1", orjson.dumps(event), qos=1)
                await _until(lambda: len(app.engine.table) == 1)
    finally:
        first.close()


async def test_a_graceful_stop_acknowledges_what_it_committed(daemon: Running) -> None:
    """A stop mid-stream: the batches committed while stopping are acknowledged on their
    own connection before it closes, so the broker does not send them again after the
    restart (tallies exact; only a crash may count a message twice)."""
    sent = 5000
    with mosquitto(extra=("max_queued_messages 0",)) as port:  # the offline session keeps all
        url = f"mqtt://127.0.0.1:{port}"
        config = {"sources": [{"mqtt": {"url": url, "topics": ["events/#"], "client_id": "stop"}}]}

        async def publish() -> None:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                for n in range(sent):
                    event = {"node": f"n{n % 7}", "alertgroup": "Down"}
                    await client.publish("events/x", orjson.dumps(event), qos=1)

        def tally(app: Any) -> int:
            return sum(r.tally for r in app.engine.table.rows.values())

        async with daemon(**config) as (app, _):
            await _until(lambda: all(s.connected for s in app.sources))
            publishing = asyncio.create_task(publish())
            await _until(lambda: tally(app) >= 500)
        await publishing
        async with daemon(**config) as (app, _):
            await _until(lambda: tally(app) >= sent)
            await asyncio.sleep(1.0)  # anything sent twice would have come by now
            assert tally(app) == sent
