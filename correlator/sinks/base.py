"""What a sink publishes, and the promise it makes.

A record is `correlator replay`'s `{"at", "kind", "alert"}` plus a `seq` that
increases per scope (DESIGN.md §6), serialized once by the pipeline. `publish`
returns only when the broker has acknowledged every record of the batch; the
pipeline then stores the sink's position. After a crash the replayed journal
tail re-publishes what may not have gone out: a consumer can see a record
again (at-least-once) and drop it by `seq`, but never misses one.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Record(NamedTuple):
    """One change, ready to send: `payload` is its JSON.

    A named tuple (one per change): cheap to build, and of atoms only, so the
    garbage collector stops tracking it while it waits in a sink's queue.
    """

    seq: int
    identifier: str
    kind: str
    payload: bytes


class Rejected(Exception):
    """Records of a batch that no retry can publish (too large); the rest of it was published.

    The publisher sets them aside (dead letters, a log line, a counter) and
    moves on, instead of retrying the batch forever behind them.
    """

    def __init__(self, reason: str, records: list[tuple[Record, str]]) -> None:
        super().__init__(f"{len(records)} record(s) rejected: {reason}")
        self.reason = reason  # the dead letters' reason
        self.records = records  # each with why


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    async def publish(self, records: list[Record]) -> None:
        """Send the batch in order; return once the broker has acknowledged all of it.

        Raises `Rejected` (after publishing the rest) for records it can never send.
        """

    async def stop(self) -> None: ...
