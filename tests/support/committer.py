"""A stand-in for the pipeline in the source tests: what a source submits, made "durable" at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from correlator.sources.base import Durable, Received
from correlator.store.base import OffsetKey


class Committer:
    """What the pipeline does with a submitted batch, minus the engine: keep it, then
    resolve its future as a journal commit would (offsets stored with it)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.offsets: dict[OffsetKey, int] = {}
        self.fail_next = False

    async def submit(self, batch: list[Received]) -> Durable:
        future: Durable = asyncio.get_running_loop().create_future()
        if self.fail_next:
            self.fail_next = False
            future.set_exception(OSError("disk full"))
            return future
        self.received.extend(batch)
        for message in batch:
            if message.offset_key is not None:
                self.offsets[message.offset_key] = message.offset + 1
        future.set_result([])
        return future

    async def wait_for(self, count: int) -> None:
        await until(lambda: len(self.received) >= count)


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for a broker-side outcome (a connection, deliveries), failing after `seconds`."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state lives in a real broker's client
            await asyncio.sleep(0.01)
