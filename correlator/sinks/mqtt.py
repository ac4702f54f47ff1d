"""MQTT sink: the live table as retained messages, one topic per alert.

Each change is published retained at QoS 1 to `<prefix>/<identifier>`, so a
subscriber to `<prefix>/#` receives the current state of every alert at
once; a deleted row publishes an empty retained message, which removes it.
The identifier is percent-encoded into one topic level (`/`, `+`, `#` and
other reserved characters cannot break the topic tree).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiomqtt

from correlator.config import MqttSink as MqttConfig
from correlator.model import DELETED
from correlator.sinks.base import Record
from correlator.sources.mqtt import broker_address

SAFE: str = ":@-._~=,;!$&'()*"  # kept as is; everything else is percent-encoded


def alert_topic(prefix: str, identifier: str) -> str:
    return f"{prefix}/{quote(identifier, safe=SAFE)}"


class MqttSink:
    def __init__(self, name: str, config: MqttConfig, *, client_id: str | None = None) -> None:
        self.name = name
        self.config = config
        self.client_id = client_id
        self._client: aiomqtt.Client | None = None

    async def start(self) -> None:
        host, port = broker_address(self.config.url)
        client = aiomqtt.Client(host, port, identifier=self.client_id, max_inflight_messages=1000)
        await client.__aenter__()
        self._client = client

    async def publish(self, records: list[Record]) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("the MQTT sink is not started")
        prefix = self.config.prefix
        # each publish is handed to paho in order as it starts, then awaits its PUBACK
        await asyncio.gather(
            *(
                client.publish(
                    alert_topic(prefix, r.identifier),
                    b"" if r.kind == DELETED else r.payload,
                    qos=1,
                    retain=True,
                )
                for r in records
            )
        )

    async def stop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.__aexit__(None, None, None)
