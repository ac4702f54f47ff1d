"""The dead-letter sink: every input that could not become an alert, with the reason.

One JSON record per input: when, from which source, why, and the raw bytes
(as text when they are UTF-8, else base64), to a file (JSON lines, fsynced),
a Kafka topic or an MQTT topic (QoS 1). Records are written, and acknowledged
by the broker, before the batch that rejected them is committed, so an input
acknowledged to its source is never lost (after a crash one may be written twice);
the pipeline writes them with `write_retrying`, which waits out a sink that is away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import orjson
import structlog
from aiokafka import AIOKafkaProducer

from correlator.sinks.mqtt import MqttConnection

log = structlog.get_logger("correlator.sinks")
DEAD_LETTER_RETRY: Final = (0.1, 10.0)  # seconds: first and longest wait between attempts


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


async def write_retrying(sink: DeadLetterSink, letters: list[DeadLetter], scope: str) -> None:
    """Write a batch's dead letters, retrying while their sink is away: a bad input is
    never lost, and the batch (its acknowledgements) waits as it does for a full sink
    queue, rather than the daemon stopping on a broker's restart."""
    delay = DEAD_LETTER_RETRY[0]
    while True:
        try:
            await sink.write(letters)
            return
        except Exception as exc:  # any failure of the sink: try again
            log.warning("dead-letter sink failed, retrying", error=repr(exc),
                        letters=len(letters), scope=scope)  # fmt: skip
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(delay * 2, DEAD_LETTER_RETRY[1])


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
    """Dead letters as messages on a Kafka topic, keyed by source.

    Connects on the first letter, as the MQTT one does: a broker that is down
    does not hold up the daemon's start. A write that fails raises, and the
    pipeline tries again (the batch that rejected the letters waits).
    """

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        return None

    async def write(self, letters: list[DeadLetter]) -> None:
        if letters:
            producer = self._producer or await self._connect()
            send = producer.send
            sent = [await send(self.topic, d.to_json(), key=d.source.encode()) for d in letters]
            await asyncio.gather(*sent)

    async def _connect(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):  # what it opened before failing
                await producer.stop()
            raise
        self._producer = producer
        return producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class DeadLetterMqtt:
    """Dead letters published at QoS 1 on one MQTT topic (not retained).

    Connects on the first letter, so a broker that is down does not hold up
    the daemon's start. A write returns once the broker has acknowledged every
    letter, or raises (the next one connects anew): its callers retry, as for
    the other sinks (`write_retrying`).
    """

    def __init__(self, url: str, topic: str) -> None:
        self.topic = topic
        self._connection = MqttConnection(url)

    async def start(self) -> None:
        return None

    async def write(self, letters: list[DeadLetter]) -> None:
        if letters:
            await self._connection.publish([(self.topic, d.to_json(), False) for d in letters])

    async def stop(self) -> None:
        await self._connection.close()
