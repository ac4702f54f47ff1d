"""What every source hands the pipeline, and how it learns that a batch is durable.

A source reads raw messages and submits them in batches. `submit` waits while
the pipeline's queue is full (backpressure: the source stops reading instead
of dropping) and returns a future that resolves once the batch is in a durable
journal commit. Only then does the source acknowledge (Kafka: its offset is
already in that commit, committing to Kafka is for lag dashboards; MQTT:
PUBACK; HTTP: the 200). A future that fails means nothing was stored: the
source does not acknowledge, and the broker delivers the messages again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol

from correlator.store.base import OffsetKey


class Received(NamedTuple):
    """One raw message: the bytes, which source it came from, and where it sits.

    A named tuple, not a frozen dataclass: one is made per message, and a frozen
    dataclass costs 2.5x as much to build.
    """

    value: bytes
    source: str  # the source's name: metrics label and dead-letter field
    offset_key: OffsetKey | None = None  # Kafka: (source, topic, partition)
    offset: int = -1  # Kafka: the message's offset (the next one to read is offset + 1)
    key: bytes | None = None
    # a batch already parsed (HTTP ingest parses the whole body once), instead of `value`:
    # journaled as one entry; a rejected item is reported by its index in this list
    events: list[Any] | None = None
    # what `events` were made from (Alertmanager's alerts). The pipeline empties both once
    # they are durable and answered (`_Commit.release`)
    parsed: list[Any] | None = None


class Refused(NamedTuple):
    """An item of a parsed batch that its source could not make an event of (an
    Alertmanager alert without a name, a body that is not JSON): dead-lettered with
    `reason`, never journaled. `raw`: the item as parsed, or the bytes."""

    raw: Any
    why: str
    reason: str = "invalid"


# a message the pipeline dead-lettered: its index in the submitted batch and why
Rejected = tuple[int, str]
# resolves once the batch is durable, with the messages that were dead-lettered
Durable = asyncio.Future[list[Rejected]]
Submit = Callable[[list[Received]], Awaitable[Durable]]


class Source(Protocol):
    """A long-lived reader; `run` returns only when cancelled (or on a configuration error)."""

    name: str

    @property
    def connected(self) -> bool:
        """Whether the source is connected to its broker now (readiness)."""

    def lag(self) -> int:
        """Messages waiting at the broker for this source (0 where the broker cannot tell)."""

    async def run(self, submit: Submit, offsets: Mapping[OffsetKey, int]) -> None:
        """Read until cancelled, starting at the stored `offsets` where the source has them."""


class SourceBase:
    """What every source keeps: its name and whether it is connected (readiness)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def lag(self) -> int:
        """Messages waiting at the broker; 0 where the broker (or the file) does not say."""
        return 0
