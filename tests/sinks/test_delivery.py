"""Sinks under trouble, against real brokers: a broker restart, a sink that never recovers,
a record too large to publish. The lane must go on (or stop when told), never wedge."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import orjson
import pytest
from structlog.testing import capture_logs
from support.brokers import mosquitto
from support.postgres import free_port
from support.topics import read_topic

from correlator.config import KafkaSink as KafkaConfig
from correlator.config import MqttSink as MqttConfig
from correlator.model import CREATED, UPDATED
from correlator.sinks import dead_letter
from correlator.sinks.base import Record
from correlator.sinks.dead_letter import DeadLetter, DeadLetterFile, DeadLetterMqtt, write_retrying
from correlator.sinks.kafka import MAX_RECORD_BYTES, KafkaSink
from correlator.sinks.mqtt import MqttSink, alert_topic
from correlator.sinks.publisher import Publisher
from correlator.store.base import Store
from correlator.store.sql import open_store

SCOPE = "default"
_ids = itertools.count()


def _record(seq: int, identifier: str, size: int = 0) -> Record:
    body = {"seq": seq, "kind": CREATED, "alert": {"identifier": identifier}, "pad": "x" * size}
    return Record(seq, identifier, CREATED, orjson.dumps(body))


@contextlib.asynccontextmanager
async def _publishing(publisher: Publisher, tmp_path: Path) -> AsyncIterator[Store]:
    """A started publisher on a SQLite store, its lanes running; stopped and closed after."""
    store = publisher.store
    await store.open()
    await publisher.start()
    await publisher.open(SCOPE)
    running = asyncio.create_task(publisher.run())
    try:
        yield store
    finally:
        await publisher.stop()
        try:
            async with asyncio.timeout(5):
                await running
            await publisher.close()
        finally:
            await store.close()


def _store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path}/state.db")


async def _seqs(bootstrap: str, topic: str, count: int) -> list[int]:
    """The seqs on the topic once `count` have come (a large record would come too), sorted."""
    got = await read_topic(
        bootstrap, topic, lambda got: len(got) >= count, linger=0.3, max_bytes=4 * MAX_RECORD_BYTES
    )
    return sorted(value["seq"] for _, value in got)


async def _retained(port: int, prefix: str, count: int) -> dict[str, int]:
    """The retained `seq` per topic under `prefix`, once `count` topics have come."""
    retained: dict[str, int] = {}
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                retained[str(message.topic)] = orjson.loads(message.payload)["seq"]
                if len(retained) == count:
                    return retained
    raise AssertionError("unreachable")


async def test_mqtt_sink_publishes_again_after_the_broker_restarts(tmp_path: Path) -> None:
    """Broker killed and started again on its port: the next batch is retained there within
    seconds (the sink connects anew instead of failing every publish on its dead client)."""
    prefix = f"restart{next(_ids)}"
    broker = contextlib.ExitStack()
    port = broker.enter_context(mosquitto())
    sink = MqttSink("mqtt", MqttConfig(url=f"mqtt://127.0.0.1:{port}", prefix=prefix))
    publisher = Publisher([sink], _store(tmp_path), backoff=(0.05, 0.5))
    try:
        async with _publishing(publisher, tmp_path):
            await publisher.publish(SCOPE, [_record(1, "a")])
            async with asyncio.timeout(5):
                await publisher.caught_up(SCOPE, 1)
            broker.close()  # no persistence: the retained table goes with it
            with mosquitto(port=port):
                await publisher.publish(SCOPE, [_record(2, "b")])
                async with asyncio.timeout(5):
                    await publisher.caught_up(SCOPE, 2)
                assert await _retained(port, prefix, 1) == {alert_topic(prefix, "b"): 2}
    finally:
        broker.close()


def _letter(n: int) -> DeadLetter:
    return DeadLetter(100.0 + n, "http", "invalid", f"letter {n}", b'{"n": %d}' % n)


async def _next_letter(messages: aiomqtt.MessagesIterator) -> str:
    async with asyncio.timeout(5):
        payload = (await anext(messages)).payload
    assert isinstance(payload, bytes)
    return str(orjson.loads(payload)["message"])


async def test_mqtt_dead_letters_wait_for_their_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """`start` returns at once with the broker down; a letter written then is delivered once
    it is up; after a broker restart the next letter is delivered too (the write fails
    once, on the connection the restart broke, and is retried on a new one)."""
    monkeypatch.setattr(dead_letter, "DEAD_LETTER_RETRY", (0.05, 0.2))
    port = free_port()
    topic = f"dead{next(_ids)}"
    sink = DeadLetterMqtt(f"mqtt://127.0.0.1:{port}", topic)
    async with asyncio.timeout(1):
        await sink.start()  # nothing listens on the port yet
    try:
        with capture_logs() as logs:
            writing = asyncio.create_task(write_retrying(sink, [_letter(1)], "test"))
            async with asyncio.timeout(5):
                while not logs:  # noqa: ASYNC110 - the first attempt fails: connection refused
                    await asyncio.sleep(0.01)
        assert logs[0]["event"] == "dead-letter sink failed, retrying"
        assert not writing.done()
        with mosquitto(port=port):
            async with asyncio.timeout(5):
                await writing  # returns only once the broker has the letter
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(topic, qos=1)
                await sink.write([_letter(2)])
                assert await _next_letter(client.messages) == "letter 2"
        with mosquitto(port=port):
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(topic, qos=1)
                async with asyncio.timeout(5):
                    await write_retrying(sink, [_letter(3)], "test")
                assert await _next_letter(client.messages) == "letter 3"
    finally:
        await sink.stop()


class _Down:
    """A sink whose broker never answers (the lane's queue fills behind it)."""

    name = "down"

    async def start(self) -> None:
        return None

    async def publish(self, records: list[Record]) -> None:
        raise ConnectionError("broker away")

    async def stop(self) -> None:
        return None


async def test_stop_returns_with_the_lane_full(tmp_path: Path) -> None:
    """A sink that always fails and a full lane: `stop` returns and `run` ends within
    seconds; the sink's position stays where it was (the journal tail re-publishes)."""
    store = _store(tmp_path)
    publisher = Publisher([_Down()], store, queue_size=2, backoff=(0.05, 10.0))
    await store.open()
    try:
        await publisher.start()
        await publisher.open(SCOPE)
        running = asyncio.create_task(publisher.run())
        await publisher.publish(SCOPE, [_record(1, "a")])
        await asyncio.sleep(0.01)  # the lane takes it and retries its publish
        for seq in range(2, 4):  # two fill its queue
            await publisher.publish(SCOPE, [_record(seq, "a")])
        assert publisher.lag() == {"down": 2}
        await asyncio.wait_for(publisher.stop(), 2)
        await asyncio.wait_for(running, 2)
        await publisher.close()
        assert await store.sink_position("down", SCOPE) == 0
    finally:
        await store.close()


async def test_a_record_too_large_goes_to_the_dead_letters(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A record over the brokers' default size limit between two small ones: the small ones
    are published, the large one is dead-lettered and counted, and the lane goes on."""
    topic = f"large{next(_ids)}"
    sink = KafkaSink("kafka", KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=topic))
    letters = tmp_path / "dead.jsonl"
    publisher = Publisher([sink], _store(tmp_path), dead_letter=DeadLetterFile(letters))
    async with _publishing(publisher, tmp_path) as store:
        await publisher.publish(SCOPE, [_record(1, "a"), _record(2, "big", MAX_RECORD_BYTES)])
        await publisher.publish(SCOPE, [_record(3, "a")])
        async with asyncio.timeout(10):
            await publisher.caught_up(SCOPE, 3)
        assert await store.sink_position("kafka", SCOPE) == 3
    assert await _seqs(kafka_bootstrap, topic, 2) == [1, 3]
    assert publisher.rejected == {"kafka": 1}
    (letter,) = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    assert (letter["source"], letter["reason"]) == ("sink:kafka", "too_large")
    assert "seq 2" in letter["message"] and "big" in letter["message"]


async def test_a_record_too_large_is_counted_without_dead_letters(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """No dead-letter sink: the record is logged and counted, and the lane goes on."""
    topic = f"large{next(_ids)}"
    sink = KafkaSink("kafka", KafkaConfig(bootstrap_servers=kafka_bootstrap, topic=topic))
    publisher = Publisher([sink], _store(tmp_path))
    async with _publishing(publisher, tmp_path):
        await publisher.publish(SCOPE, [_record(1, "big", MAX_RECORD_BYTES), _record(2, "a")])
        async with asyncio.timeout(10):
            await publisher.caught_up(SCOPE, 2)
    assert await _seqs(kafka_bootstrap, topic, 1) == [2]
    assert publisher.rejected == {"kafka": 1}


class _Slow:
    """A sink whose first publish waits until released (a slow produce round trip)."""

    name = "slow"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.published: list[list[int]] = []

    async def start(self) -> None:
        return None

    async def publish(self, records: list[Record]) -> None:
        self.entered.set()
        if not self.published:
            await self.release.wait()
        self.published.append([r.seq for r in records])

    async def stop(self) -> None:
        return None


async def test_batches_queued_behind_a_slow_publish_go_as_one(tmp_path: Path) -> None:
    """While a publish is under way the next batches queue; they go out in one publish
    (an update repeated in a later batch once), in order, and the position follows."""
    store = _store(tmp_path)
    sink = _Slow()
    publisher = Publisher([sink], store)
    await store.open()
    try:
        await publisher.start()
        await publisher.open(SCOPE)
        running = asyncio.create_task(publisher.run())
        await publisher.publish(SCOPE, [Record(1, "a", UPDATED, b"{}")])
        await sink.entered.wait()  # the lane took the first batch and waits in its publish
        for seq, ident in [(2, "b"), (3, "a"), (4, "c"), (5, "a")]:
            await publisher.publish(SCOPE, [Record(seq, ident, UPDATED, b"{}")])
        sink.release.set()
        async with asyncio.timeout(2):
            await publisher.caught_up(SCOPE, 5)
        assert sink.published == [[1], [2, 4, 5]]  # a's update 3 is followed by its 5
        assert await store.sink_position("slow", SCOPE) == 5
        await publisher.stop()
        await running
    finally:
        await store.close()
