"""Dispatch index: which rules can possibly match an object, without trying them all.

Each rule with an equality matcher (`program="ifmon"`) is filed under that
name and value; rules without one are always candidates. A lookup costs one
dict probe per indexed name, however many rules there are, and returns the
candidates in rule order (first-match-wins semantics depend on it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from correlator.ruleset.matchers import Matcher, as_text
from correlator.ruleset.paths import Getter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    get: Getter
    buckets: dict[str, tuple[tuple[int, ...], tuple[Any, ...]]]  # value → (positions, items)


class RuleIndex(Generic[T]):
    """Candidates for an object among `items`, each described by its matchers."""

    def __init__(self, items: Sequence[tuple[T, Sequence[Matcher]]]) -> None:
        self._items = [item for item, _ in items]
        popularity = Counter(m.name for _, ms in items for m in ms if m.is_equality)
        always: list[int] = []
        buckets: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        getters: dict[str, Getter] = {}
        for position, (_, matchers) in enumerate(items):
            equalities = [m for m in matchers if m.is_equality]
            if not equalities:
                always.append(position)
                continue
            best = max(equalities, key=lambda m: popularity[m.name])
            for value in best.index_values:
                buckets[best.name][value].append(position)
            getters[best.name] = best.get
        self._always = tuple(always)
        self.names = frozenset(buckets)  # the fields rules are filed under
        self._always_items = tuple(self._items[p] for p in always)
        # each bucket's items come pre-merged with the unkeyed ones, in rule order
        self._keys = tuple(
            _Key(
                name,
                getters[name],
                {
                    v: (tuple(p), tuple(self._items[i] for i in sorted((*p, *always))))
                    for v, p in values.items()
                },
            )
            for name, values in buckets.items()
        )
        # Items whose equality key fits an object, plus unkeyed ones, in rule order.
        # Correlate rules are often all keyed on one field (alertgroup): then a
        # lookup is one getter call and one dict probe, without the general loop.
        # Normalize rules are typically keyed on two (program, kind): a closure each.
        self.candidates: Callable[[Any], Sequence[T]] = self._any_keys
        if len(self._keys) == 1:
            self.candidates = self._one_key(self._keys[0])
        elif len(self._keys) == 2:
            self.candidates = self._two_keys(*self._keys)

    def __len__(self) -> int:
        return len(self._items)

    def by_one_field(self) -> tuple[str, dict[str, tuple[T, ...]], tuple[T, ...]] | None:
        """(field, value → candidates, candidates of any other value) when one field files
        every keyed rule, else None: a caller whose objects hold that field as text may look
        candidates up with one dict probe and no call (the engine's repeat path).
        """
        if len(self._keys) != 1:
            return None
        key = self._keys[0]
        return key.name, {v: items for v, (_, items) in key.buckets.items()}, self._always_items

    def _one_key(self, key: _Key) -> Callable[[Any], Sequence[T]]:
        get, buckets, always = key.get, key.buckets, self._always_items

        def candidates(obj: Any) -> Sequence[T]:
            value = get(obj)
            if type(value) is not str:
                value = "" if value is None else as_text(value)
            hit = buckets.get(value)
            return always if hit is None else hit[1]

        return candidates

    def _two_keys(self, one: _Key, two: _Key) -> Callable[[Any], Sequence[T]]:
        get_one, buckets_one, get_two, buckets_two = one.get, one.buckets, two.get, two.buckets
        always, any_keys = self._always_items, self._any_keys

        def candidates(obj: Any) -> Sequence[T]:
            value = get_one(obj)
            if type(value) is not str:
                value = "" if value is None else as_text(value)
            first = buckets_one.get(value)
            value = get_two(obj)
            if type(value) is not str:
                value = "" if value is None else as_text(value)
            second = buckets_two.get(value)
            if second is None:
                return always if first is None else first[1]
            return second[1] if first is None else any_keys(obj)  # both: merge the rare way

        return candidates

    def _any_keys(self, obj: Any) -> Sequence[T]:
        first: tuple[tuple[int, ...], tuple[T, ...]] | None = None
        more: list[tuple[tuple[int, ...], tuple[T, ...]]] | None = None
        for key in self._keys:
            value = key.get(obj)
            if type(value) is not str:
                value = "" if value is None else as_text(value)
            hit = key.buckets.get(value)
            if hit:
                if first is None:
                    first = hit
                elif more is None:
                    more = [first, hit]
                else:
                    more.append(hit)
        if first is None:
            return self._always_items
        if more is None:
            return first[1]  # the usual case: one bucket, pre-merged with the unkeyed items
        positions = [*self._always, *(p for hit in more for p in hit[0])]
        positions.sort()
        items = self._items
        return [items[p] for p in positions]
