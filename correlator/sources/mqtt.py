"""MQTT source: QoS 1 on a persistent session, acknowledged only once durable.

aiomqtt acknowledges a QoS 1 message inside paho's read callback, before our
code sees it, so a crash loses whatever sits in its queue. We switch paho's
manual acknowledgement on (`manual_ack`) and send each PUBACK after the
journal batch holding the message is durable; what was not acknowledged when
the process died is delivered again on the same session after restart.
Messages are batched as they queue up (the first one awaited, then whatever
arrived meanwhile), so a burst costs one durable commit, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, MQTTv5, MQTTv311
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from correlator.config import MqttSource as MqttConfig
from correlator.sources.base import Durable, Received, SourceBase, Submit
from correlator.store.base import OffsetKey


def manual_ack(client: aiomqtt.Client) -> PahoClient:
    """Turn on paho's manual acknowledgement under an aiomqtt client (before connecting).

    aiomqtt keeps its paho client in `_client`; tests/sources/test_mqtt.py fails
    if an upgrade moves it, rather than letting messages be acknowledged early.
    """
    paho = client._client
    if not isinstance(paho, PahoClient):
        raise TypeError("aiomqtt no longer exposes its paho client as `_client`")
    paho.manual_ack_set(True)
    return paho


def broker_address(url: str) -> tuple[str, int]:
    """`mqtt://host:port` (default port 1883)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"MQTT url must be mqtt://HOST[:PORT], not {url!r}")
    return parts.hostname, parts.port or 1883


ACK_FLUSH_SECONDS = 2.0  # at shutdown: for the broker to read the last PUBACKs


class MqttSource(SourceBase):
    """Subscribes at QoS 1 (shared when configured) and reconnects with backoff."""

    def __init__(
        self,
        name: str,
        config: MqttConfig,
        *,
        max_batch: int = 5000,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        super().__init__(name)
        self.config = config
        self.max_batch = max_batch
        self.backoff = backoff
        self._session = 0  # a PUBACK names a message id of the connection that received it

    async def run(self, submit: Submit, offsets: Mapping[OffsetKey, int]) -> None:
        delay = self.backoff[0]
        while True:
            try:
                async with self._client() as client:
                    delay = self.backoff[0]
                    await self._consume(client, submit)
            except aiomqtt.MqttError:
                pass
            finally:
                self._connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _client(self) -> aiomqtt.Client:
        host, port = broker_address(self.config.url)
        v5 = self.config.protocol == "5"
        properties: Properties | None = None
        if v5:  # keep the session (and its unacknowledged messages) across restarts
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(self.config.session_expiry)
            properties.ReceiveMaximum = self.config.receive_maximum
        client = aiomqtt.Client(
            host,
            port,
            identifier=self.config.client_id,
            protocol=aiomqtt.ProtocolVersion(MQTTv5 if v5 else MQTTv311),
            clean_session=None if v5 else False,
            # v5: never clean (paho's default cleans on the first connect, losing the session);
            # 3.1.1 refuses the flag and keeps its session through clean_session=False
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        manual_ack(client)
        return client

    def _topics(self) -> list[tuple[str, int]]:
        group = self.config.shared_group
        return [(f"$share/{group}/{t}" if group else t, 1) for t in self.config.topics]

    async def _consume(self, client: aiomqtt.Client, submit: Submit) -> None:
        self._session += 1
        session = self._session
        paho = client._client
        await client.subscribe(self._topics())
        self._connected = True
        messages = client.messages
        try:
            while True:
                batch = [await anext(messages)]
                while len(messages) and len(batch) < self.max_batch:  # queued: no wait
                    batch.append(await anext(messages))
                durable = await submit([Received(_payload(m.payload), self.name) for m in batch])
                acks = [(m.mid, m.qos) for m in batch if m.qos > 0]
                durable.add_done_callback(partial(self._ack, paho, session, acks))
        except asyncio.CancelledError:  # stopping, after the last commit: see `_acks_read`
            await self._acks_read(client)
            raise

    async def _acks_read(self, client: aiomqtt.Client) -> None:
        """Return once the broker has read the PUBACKs queued so far (at most a few seconds).

        Closing at once reset the connection with some still unread, and the broker
        sent those messages again after the restart, to be counted twice. A SUBACK
        comes after everything sent before the SUBSCRIBE was read: the same
        subscriptions again, which changes nothing in the session.
        """
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(ACK_FLUSH_SECONDS):
                await client.subscribe(self._topics())

    def _ack(
        self,
        paho: PahoClient,
        session: int,
        acks: list[tuple[int, int]],
        done: Durable,
    ) -> None:
        """PUBACK a durable batch; a failed one stays unacknowledged and is delivered again."""
        if done.cancelled() or done.exception() is not None or session != self._session:
            return
        with contextlib.suppress(OSError):  # the connection went: the broker redelivers
            for mid, qos in acks:
                paho.ack(mid, qos)


def _payload(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray):
        return bytes(payload)
    return str(payload).encode() if payload is not None else b""
