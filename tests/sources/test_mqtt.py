"""The MQTT source against a real mosquitto: QoS 1, persistent sessions, manual PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from support.brokers import mosquitto
from support.committer import Committer, until

from correlator.config import MqttSource as MqttConfig
from correlator.sources.mqtt import MqttSource, broker_address, manual_ack

_ids = itertools.count()


async def _publish(port: int, topic: str, values: range) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{next(_ids)}") as client:
        for n in values:
            await client.publish(topic, b'{"n": %d}' % n, qos=1)


@contextlib.asynccontextmanager
async def _running(source: MqttSource, pipeline: Committer) -> AsyncIterator[None]:
    task = asyncio.create_task(source.run(pipeline.submit, {}))
    try:
        await until(lambda: source.connected)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _source(port: int, client_id: str, protocol: str, **kw: str) -> MqttSource:
    config = MqttConfig(
        url=f"mqtt://127.0.0.1:{port}",
        topics=["events/#"],
        client_id=client_id,
        protocol=protocol,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return MqttSource("mqtt", config, backoff=(0.05, 0.2))


def _numbers(pipeline: Committer) -> list[int]:
    return sorted(int(m.value[6:-1]) for m in pipeline.received)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_messages_arrive_once_and_acknowledged_ones_are_not_redelivered(
    mqtt_port: int, protocol: str
) -> None:
    """Wildcard subscription, batches; after a restart on the same session nothing repeats,
    and what was published while the daemon was away arrives (persistent session)."""
    client_id = f"correlator-{next(_ids)}"
    first = Committer()
    async with _running(_source(mqtt_port, client_id, protocol), first):
        await _publish(mqtt_port, "events/a", range(100))
        await first.wait_for(100)
    assert _numbers(first) == list(range(100))
    assert {m.source for m in first.received} == {"mqtt"}
    await _publish(mqtt_port, "events/b", range(100, 130))  # while it is down
    second = Committer()
    async with _running(_source(mqtt_port, client_id, protocol), second):
        await second.wait_for(30)
        await asyncio.sleep(0.3)
    assert _numbers(second) == list(range(100, 130))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_batch_that_was_not_made_durable_is_delivered_again(
    mqtt_port: int, protocol: str
) -> None:
    """No PUBACK before the commit: a failed commit (or a crash) leaves the messages with
    the broker, which delivers them again on the same session. With aiomqtt's own early
    acknowledgement they would be gone."""
    client_id = f"correlator-{next(_ids)}"
    failing = Committer()
    failing.fail_next = True
    async with _running(_source(mqtt_port, client_id, protocol), failing):
        await _publish(mqtt_port, "events/x", range(1))
        await until(lambda: not failing.fail_next)
        await _publish(mqtt_port, "events/x", range(1, 3))
        await failing.wait_for(2)
    assert _numbers(failing) == [1, 2]
    again = Committer()
    async with _running(_source(mqtt_port, client_id, protocol), again):
        await again.wait_for(1)
        await asyncio.sleep(0.3)
    assert _numbers(again) == [0]


async def test_shared_subscriptions_split_the_stream(mqtt_port: int) -> None:
    """Two instances in one `$share` group: every message reaches exactly one of them."""
    one, two = Committer(), Committer()
    kw = {"shared_group": "correlators"}
    async with (
        _running(_source(mqtt_port, f"a-{next(_ids)}", "5", **kw), one),
        _running(_source(mqtt_port, f"b-{next(_ids)}", "5", **kw), two),
    ):
        await _publish(mqtt_port, "events/s", range(200))
        await until(lambda: len(one.received) + len(two.received) >= 200)
        await asyncio.sleep(0.2)
    assert sorted(_numbers(one) + _numbers(two)) == list(range(200))
    assert one.received and two.received


async def test_the_source_reconnects_after_the_broker_restarts() -> None:
    """Broker down: not connected; broker back on the same port: connected, messages flow."""
    pipeline = Committer()
    with mosquitto() as port:
        source = _source(port, f"r-{next(_ids)}", "5")
        task = asyncio.create_task(source.run(pipeline.submit, {}))
        await until(lambda: source.connected)
    try:
        await until(lambda: not source.connected)
        with mosquitto(port=port):
            await until(lambda: source.connected)
            await _publish(port, "events/r", range(5))
            await pipeline.wait_for(5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert _numbers(pipeline) == list(range(5))


async def test_manual_ack_reaches_paho_under_aiomqtt() -> None:
    """Fails if an aiomqtt upgrade moves its paho client: early acks would lose messages."""
    client = aiomqtt.Client("127.0.0.1", 1)
    paho = manual_ack(client)
    assert paho._manual_ack is True


def test_broker_urls() -> None:
    """`mqtt://host[:port]`; anything else is a clear error."""
    assert broker_address("mqtt://broker") == ("broker", 1883)
    assert broker_address("mqtt://10.0.0.1:1884") == ("10.0.0.1", 1884)
    with pytest.raises(ValueError, match="mqtt://HOST"):
        broker_address("tcp://broker:1883")
