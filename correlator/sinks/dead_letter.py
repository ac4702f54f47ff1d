"""The dead-letter sink: every input that could not become an alert, with the reason.

One JSON record per input: when, from which source, why, and the raw bytes
(as text when they are UTF-8, else base64), to a file (JSON lines, fsynced),
a Kafka topic or an MQTT topic (QoS 1). Records are written, and acknowledged
by the broker, before the batch that rejected them is committed, so an input
acknowledged to its source is never lost (after a crash one may be written twice).
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiomqtt
import orjson
from aiokafka import AIOKafkaProducer

from correlator.sources.mqtt import broker_address


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at: float
    source: str
    reason: str  # the error's `reason` (metric label): invalid, late, not_json, ...
    message: str
    raw: bytes

    def to_json(self) -> bytes:
        try:
            raw: dict[str, str] = {"raw": self.raw.decode("utf-8")}
        except UnicodeDecodeError:
            raw = {"raw_base64": base64.b64encode(self.raw).decode()}
        body = {"at": self.at, "source": self.source, "reason": self.reason}
        return orjson.dumps({**body, "message": self.message, **raw})


class DeadLetterSink(Protocol):
    async def start(self) -> None: ...

    async def write(self, letters: list[DeadLetter]) -> None:
        """Return once every letter is stored (fsynced, or acknowledged by the broker)."""

    async def stop(self) -> None: ...


class DeadLetterFile:
    """Appends dead letters to a JSON-lines file (its folder is created)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write(self, letters: list[DeadLetter]) -> None:
        if letters:
            data = b"".join(letter.to_json() + b"\n" for letter in letters)
            await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())


class DeadLetterKafka:
    """Dead letters as messages on a Kafka topic, keyed by source."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await producer.start()
        self._producer = producer

    async def write(self, letters: list[DeadLetter]) -> None:
        if letters:
            assert self._producer is not None, "start() first"
            send = self._producer.send
            sent = [await send(self.topic, d.to_json(), key=d.source.encode()) for d in letters]
            await asyncio.gather(*sent)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class DeadLetterMqtt:
    """Dead letters published at QoS 1 on one MQTT topic (not retained)."""

    def __init__(self, url: str, topic: str) -> None:
        host, port = broker_address(url)
        self.topic = topic
        self._client = aiomqtt.Client(host, port, max_inflight_messages=1000)

    async def start(self) -> None:
        await self._client.__aenter__()

    async def write(self, letters: list[DeadLetter]) -> None:
        await asyncio.gather(
            *(self._client.publish(self.topic, d.to_json(), qos=1) for d in letters)
        )

    async def stop(self) -> None:
        await self._client.__aexit__(None, None, None)
