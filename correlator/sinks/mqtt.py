"""MQTT sink: the live table as retained messages, one topic per alert.

Each change is published retained at QoS 1 to `<prefix>/<identifier>`, so a
subscriber to `<prefix>/#` receives the current state of every alert at
once; a deleted row publishes an empty retained message, which removes it.
The identifier is percent-encoded into one topic level (`/`, `+`, `#` and
other reserved characters cannot break the topic tree).

aiomqtt runs paho without its automatic reconnect: once the broker goes away,
every publish on that client fails at once, for good. `MqttConnection` drops
a client whose publish failed and connects anew on the next one, so a retried
batch (the publisher's backoff) reaches the broker once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote

import aiomqtt
import structlog

from correlator.config import MqttSink as MqttConfig
from correlator.model import DELETED
from correlator.sinks.base import Record
from correlator.sources.mqtt import broker_address

log = structlog.get_logger("correlator.sinks")

SAFE: str = ":@-._~=,;!$&'()*"  # kept as is; everything else is percent-encoded


def alert_topic(prefix: str, identifier: str) -> str:
    return f"{prefix}/{quote(identifier, safe=SAFE)}"


class MqttConnection:
    """A client of one broker: connected on first use, and again after a publish failed."""

    def __init__(self, url: str, *, client_id: str | None = None) -> None:
        self.url = url
        self.host, self.port = broker_address(url)
        self.client_id = client_id
        self._client: aiomqtt.Client | None = None
        self._connecting = asyncio.Lock()  # concurrent writers share one new client

    async def connect(self) -> aiomqtt.Client:
        async with self._connecting:
            if self._client is None:
                client = aiomqtt.Client(
                    self.host, self.port, identifier=self.client_id, max_inflight_messages=1000
                )
                await client.__aenter__()
                self._client = client
            return self._client

    async def publish(self, messages: list[tuple[str, bytes, bool]]) -> None:
        """Publish `(topic, payload, retain)` at QoS 1 in order; return once all are acknowledged.

        On failure the client is dropped (the next call connects anew) and the
        first error raised: the caller retries the whole batch.
        """
        client = await self.connect()
        # each publish is handed to paho in order as it starts, then awaits its PUBACK
        results = await asyncio.gather(
            *(client.publish(t, payload, qos=1, retain=r) for t, payload, r in messages),
            return_exceptions=True,  # every publish ends before the client is dropped
        )
        error = next((r for r in results if isinstance(r, BaseException)), None)
        if error is not None:
            if self._client is client:
                self._client = None
                log.warning("MQTT publish failed: reconnecting", broker=self.url, error=str(error))
                await _close(client)
            raise error

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await _close(client)


async def _close(client: aiomqtt.Client) -> None:
    """Disconnect, or let go of a client whose connection failed."""
    with contextlib.suppress(aiomqtt.MqttError):
        await client.__aexit__(None, None, None)
    # aiomqtt stores an unexpected disconnection here and never reads it back: read it,
    # or asyncio logs "Future exception was never retrieved" at each broker restart
    disconnected = client._disconnected
    if disconnected.done() and not disconnected.cancelled():
        disconnected.exception()


class MqttSink:
    def __init__(self, name: str, config: MqttConfig, *, client_id: str | None = None) -> None:
        self.name = name
        self.config = config
        self._connection = MqttConnection(config.url, client_id=client_id)

    async def start(self) -> None:
        await self._connection.connect()  # a wrong address fails the start, as Kafka's does

    async def publish(self, records: list[Record]) -> None:
        prefix = self.config.prefix
        await self._connection.publish(
            [
                (alert_topic(prefix, r.identifier), b"" if r.kind == DELETED else r.payload, True)
                for r in records
            ]
        )

    async def stop(self) -> None:
        await self._connection.close()
