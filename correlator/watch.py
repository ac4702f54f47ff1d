"""Reload on rule-file changes: watchfiles on a thread this daemon owns and joins.

watchfiles' async API runs its watcher on an AnyIO worker thread that
outlives the daemon; a thread of our own is stopped (its stop event is
checked every 50 ms) and joined at shutdown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import watch


class RuleWatcher:
    """Calls `changed` on the event loop after each burst of writes under `root`."""

    def __init__(self, root: Path, changed: Callable[[], None], *, debounce_ms: int = 500) -> None:
        self.root = root
        self.changed = changed
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()

    async def run(self) -> None:
        """Watch until cancelled."""
        loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._watch, args=(loop,), name="rule-watcher")
        thread.start()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._stop.set()
            await asyncio.to_thread(thread.join)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        changes = watch(
            self.root, debounce=self.debounce_ms, stop_event=self._stop, raise_interrupt=False
        )
        for _ in changes:
            loop.call_soon_threadsafe(self.changed)
