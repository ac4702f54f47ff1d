"""SQLite's WAL checkpoints on a thread of their own, off the commit path.

SQLite copies its write-ahead log into the database file (a checkpoint) inside
whichever commit crosses `wal_autocheckpoint` pages, and syncs the file there:
under `bench/ingest.py` one commit in sixteen took 10 ms instead of 0.8, half
of the mean commit time, and an HTTP answer or a Kafka batch waited for it. The
store turns that off on its connection and calls `written` after each commit;
every `every_bytes` of journal, a PASSIVE checkpoint runs from a second
connection on this thread. A PASSIVE checkpoint never blocks the writer, and
durability does not depend on it: a committed transaction is in the log, and a
checkpoint only moves it into the database file (the last connection to close
checkpoints what is left).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

log = structlog.get_logger("correlator.store")

CHECKPOINT_BYTES = 4 << 20  # about SQLite's own 1,000 pages of 4 KiB


class Checkpointer:
    """At most one checkpoint at a time, started once enough has been written."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], every_bytes: int = CHECKPOINT_BYTES
    ) -> None:
        self._connect = connect
        self.every_bytes = every_bytes
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="store-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._running: Future[None] | None = None
        self._written = 0

    def written(self, nbytes: int) -> None:
        """`nbytes` more were committed: start a checkpoint if enough were and none runs."""
        self._written += nbytes
        if self._written >= self.every_bytes and (self._running is None or self._running.done()):
            self._written = 0
            self._running = self._thread.submit(self._checkpoint)

    def idle(self) -> None:
        """Wait for the running checkpoint, if any (tests, and before closing)."""
        if self._running is not None:
            self._running.result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the log grows until the next one: nothing is lost
            log.warning("WAL checkpoint failed", error=str(exc))
