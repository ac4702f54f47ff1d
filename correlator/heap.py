"""The heap policy of long runs over many events: `correlator run` and `correlator replay`.

Measured under bench/e2e.py, bench/ingest.py and the storm benchmarks:
- Young collections every 10,000 allocations instead of 700: a batch's
  short-lived objects die before they are promoted, so full collections
  (50-150 ms each over a large table: the daemon's p99) become rare; in a
  storm, where every event creates and deletes rows, collection was nearly
  half the time with Python's defaults.
- glibc keeps up to 64 MiB freed at the top of the heap instead of 128 KiB:
  a batch's records are freed together, and giving the pages back then
  faulting them in again made each `orjson.dumps` cost 4 µs instead of 0.7.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys


def tune() -> None:
    """Apply the policy to this process (once, before the run)."""
    gc.set_threshold(10_000, 10, 10)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # not glibc: its defaults stay
            ctypes.CDLL(None).mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
