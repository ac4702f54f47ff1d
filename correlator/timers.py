"""One min-heap of timers for the whole engine.

`tick` costs one comparison when nothing is due. Owners re-validate a timer
when it fires (the row may have been touched since), so nothing is ever
removed from the heap early: cancelled timers simply find nothing to do.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from itertools import count
from typing import Any


class TimerHeap:
    """Timers ordered by due time, then rank (lower first), then the order they were set."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Any, Hashable]] = []
        self._seq = count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, owner: Any, key: Hashable, rank: int = 0) -> None:
        heapq.heappush(self._heap, (when, rank, next(self._seq), owner, key))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def entries(self) -> list[tuple[float, int, int, Any, Hashable]]:
        """Every pending timer as (when, rank, order, owner, key), in firing order (snapshots)."""
        return sorted(self._heap)  # `order` is unique: owners and keys are never compared

    def restore(self, entries: list[tuple[float, int, int, Any, Hashable]]) -> None:
        """Replace the timers with `entries` (from `entries`); new ones are set after them."""
        self._heap = list(entries)
        heapq.heapify(self._heap)
        self._seq = count(max((entry[2] for entry in entries), default=-1) + 1)

    def pop_due(
        self, now: float, *, inclusive: bool = True
    ) -> Iterator[tuple[float, Any, Hashable]]:
        """Pop timers due by `now` (strictly before it when not inclusive), in order.

        Timers pushed while iterating are seen if they are due too.
        """
        heap = self._heap
        while heap and (heap[0][0] <= now if inclusive else heap[0][0] < now):
            when, _, _, owner, key = heapq.heappop(heap)
            yield when, owner, key
