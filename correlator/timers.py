"""One min-heap of timers for the whole engine.

`tick` costs one comparison when nothing is due. Owners re-validate a timer
when it fires (the row may have been touched since), so nothing is ever
removed from the heap early: cancelled timers simply find nothing to do.

An entry names its owner by a small number, not by the object: a tuple of
numbers and strings is left alone by the garbage collector once it has seen
it, and a storm keeps hundreds of thousands of timers, which every full
collection would otherwise walk (a fifth of the objects it tracked). The rank
and the order a timer was set in are one number (`rank * _RANK + order`), one
slot less in each of the storm's hundreds of thousands of entries.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from itertools import count
from typing import Any, Final

_RANK: Final = 1 << 48  # a rank outweighs any number of timers set


class TimerHeap:
    """Timers ordered by due time, then rank (lower first), then the order they were set."""

    __slots__ = ("_heap", "_numbers", "_owners", "_pending", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Hashable]] = []  # (when, rank+order, owner, key)
        self._seq = count()
        self._owners: dict[int, Any] = {}  # number → owner, while it has timers pending
        self._numbers: dict[int, int] = {}  # id(owner) → its number
        self._pending: dict[int, int] = {}  # number → timers pending

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, owner: Any, key: Hashable, rank: int = 0) -> None:
        number = self._numbers.get(id(owner))
        if number is None:
            number = self._number(owner)
        self._pending[number] += 1
        heapq.heappush(self._heap, (when, rank * _RANK + next(self._seq), number, key))

    def _number(self, owner: Any) -> int:
        number = max(self._owners, default=-1) + 1
        self._owners[number] = owner  # held, so its id is not reused while it is known
        self._numbers[id(owner)] = number
        self._pending[number] = 0
        return number

    def _release(self, number: int) -> Any:
        """The owner of a timer leaving the heap; forgotten with its last timer."""
        owner = self._owners[number]
        left = self._pending[number] - 1
        if left:
            self._pending[number] = left
        else:
            del self._owners[number], self._pending[number], self._numbers[id(owner)]
        return owner

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def entries(self) -> list[tuple[float, int, int, Any, Hashable]]:
        """Every pending timer as (when, rank, order, owner, key), in firing order (snapshots)."""
        owners = self._owners  # `order` is unique: owners and keys are never compared
        return [
            (when, *divmod(order, _RANK), owners[n], key)
            for when, order, n, key in sorted(self._heap)
        ]

    def restore(self, entries: list[tuple[float, int, int, Any, Hashable]]) -> None:
        """Replace the timers with `entries` (from `entries`); new ones are set after them."""
        self._heap = []
        self._owners.clear()
        self._numbers.clear()
        self._pending.clear()
        for when, rank, order, owner, key in entries:
            number = self._numbers.get(id(owner))
            if number is None:
                number = self._number(owner)
            self._pending[number] += 1
            self._heap.append((when, rank * _RANK + order, number, key))
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
            when, _, number, key = heapq.heappop(heap)
            yield when, self._release(number), key
