"""The heap policy of long runs over many events: `correlator run` and `correlator replay`.

Measured under bench/e2e.py, bench/ingest.py and the storm benchmarks:
- Young collections when 100,000 more container objects are alive than at
  the last one, instead of 700: a batch in flight (a Kafka fetch of 5,000
  messages, their records, an HTTP body of 1,000 alerts) holds tens of
  thousands, and each young collection under that found them all alive and
  promoted them, to be walked again by the next older one. At 10,000, GC
  took 0.47 s of a `bench/e2e.py` run; at 100,000, one young collection (the
  new rows) and no older one. Full collections (50-150 ms each over a large
  table: the p99) become rarer still; in a storm, where every event creates
  and deletes rows, collection was nearly half the time with Python's
  defaults.
- glibc keeps up to 64 MiB freed at the top of the heap instead of 128 KiB,
  and serves blocks up to 32 MiB from the heap instead of mapping each one
  over 128 KiB (a Kafka fetch, a journal blob, a sink's record batch): a
  batch's memory is freed together, and giving the pages back then faulting
  them in again cost more than the work done in them (under `bench/e2e.py`,
  0.2 → 0.13 page faults per event). Setting the first fixes the second's
  threshold, which glibc would otherwise raise itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys


def tune() -> None:
    """Apply the policy to this process (once, before the run)."""
    gc.set_threshold(100_000, 10, 10)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # not glibc: its defaults stay
            libc = ctypes.CDLL(None)
            libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
            libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
