"""`kind: change` — alerts born shortly after a change point at it as the suspect.

"What changed?" is the first question of every outage. Events matching
`change:` (deploys, config pushes, feature-flag flips) open a `within:` window
for their `on:` values; a problem alert matching `match`/`when` that is created
or reopened with its occurrence time inside that window gets the annotation
`suspect_change` = the change event's identifier, and a journal note naming
the change, how long before the alert it happened and the window it fell in.

Several open windows for the same `on` values: the most recent change at or
before the alert's time wins. Windows live in a dict keyed by the `on` values
(a bounded, time-sorted list of recent changes each), so an alert costs one
lookup; a timer drops each change when its window ends.

Arrival order does not matter within the lateness the engine accepts: the
alerts a target transition saw are also kept for the engine's `max_lateness`
after their time
(a bounded buffer per `on` values), and a change that arrives after them
annotates those it is the suspect of.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Hashable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import Final, Literal

from pydantic import Field

from correlator.correlate.base import CREATED, REOPENED, BuildEnv, Context, Operator
from correlator.correlate.grouping import FieldKey
from correlator.errors import RuleFieldError
from correlator.model import CLEARED, PROBLEM, Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Duration, FieldNames, Matchers, Rule
from correlator.timeparse import format_duration

ANNOTATION: Final = "suspect_change"
MAX_PER_KEY: Final = 16  # recent changes kept per `on` values; the oldest goes first
MAX_BORN_PER_KEY: Final = 256  # recent alerts kept per `on` values for a late change
HEAP_FROM: Final = 16  # more alerts waiting per `on` values than this: found by a heap
_WINDOW: Final = "window"  # timer: a change's window ends
_BORN: Final = "born"  # timer: buffered alerts stop waiting for a late change

Key = tuple[str, ...]


class ChangeRule(Rule):
    kind: Literal["change"]
    change: Matchers
    on: FieldNames
    within: Duration
    max_keys: int = Field(100_000, ge=1)


@dataclass(slots=True, order=True)
class _Change:
    at: float
    identifier: str
    summary: str


@dataclass(slots=True)
class _Born:
    """A target alert created or reopened at `at`, waiting for a change delivered late."""

    alert: Alert
    at: float


class _Waiting:
    """Per `on` values, a heap of (time, identifier) over the alerts waiting in `_born`.

    The next one done waiting is its top, so a timer firing costs the entries it drops,
    not a scan of up to `MAX_BORN_PER_KEY`. Only keys with more than `HEAP_FROM` alerts
    waiting get one (a storm gives most alerts a key of their own, and a heap per key
    would cost more memory than a scan of a few costs time). Derived from `_born`, not
    state: a key it lacks (after a restore) is rebuilt from `_born`. A reopen or an
    eviction leaves its old entry behind, skipped when met; a heap grown past twice its
    alerts is rebuilt.
    """

    __slots__ = ("_heaps",)

    def __init__(self) -> None:
        self._heaps: dict[Key, list[tuple[float, str]]] = {}

    def push(self, key: Key, born: dict[str, _Born], at: float, identifier: str) -> None:
        """`born` has just taken `identifier`'s wait, from `at`."""
        heap = self._heaps.get(key)
        if heap is None:
            if len(born) > HEAP_FROM:
                self._rebuild(key, born)
        elif len(heap) > 2 * len(born) + HEAP_FROM:
            self._rebuild(key, born)
        else:
            heappush(heap, (at, identifier))

    def release(self, key: Key, born: dict[str, _Born], grace: float, now: float) -> float | None:
        """Drop the alerts done waiting at `now`; the time the next one started (None: none)."""
        heap = self._heaps.get(key)
        if heap is None and len(born) > HEAP_FROM:
            heap = self._rebuild(key, born)
        if heap is None:
            for identifier in [i for i, e in born.items() if e.at + grace <= now]:
                del born[identifier]
            return min((e.at for e in born.values()), default=None)
        while heap and heap[0][0] + grace <= now:
            at, identifier = heappop(heap)
            if _live(born, at, identifier):
                del born[identifier]
        while heap and not _live(born, *heap[0]):
            heappop(heap)  # left by a reopen or an eviction
        return heap[0][0] if born else None

    def _rebuild(self, key: Key, born: dict[str, _Born]) -> list[tuple[float, str]]:
        heap = self._heaps[key] = [(e.at, i) for i, e in born.items()]
        heapify(heap)
        return heap

    def drop(self, key: Key) -> None:
        self._heaps.pop(key, None)


def _live(born: dict[str, _Born], at: float, identifier: str) -> bool:
    """Whether a heap entry is still the alert's wait (not an older episode or evicted)."""
    entry = born.get(identifier)
    return entry is not None and entry.at == at


class ChangeOperator(Operator):
    state = ("_windows", "_born")
    state_types = (_Change, _Born)
    kind = "change"
    transitions = frozenset((CREATED, REOPENED))

    def __init__(self, spec: ChangeRule, max_lateness: float = 300.0) -> None:
        super().__init__(spec.name, spec)
        if spec.within <= 0:
            raise RuleFieldError(("within",), "within must be longer than 0s")
        change = compile_matchers(spec.change)
        self._is_change = all_of([m.test for m in change])
        self.event_filter = self._is_change
        self.event_keys = [m for m in change if m.is_equality]
        target = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        self._is_target = all_of([*target, when] if when is not None else target)
        self._on = FieldKey(spec.on)
        self._within = spec.within
        self._cap = spec.max_keys
        self._grace = max_lateness  # how long an alert waits for a change delivered late
        self._windows: dict[Key, list[_Change]] = {}  # ascending by time
        self._born: dict[Key, dict[str, _Born]] = {}  # on values → identifier → alert
        self._waiting = _Waiting()

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        """A change happened: open (or move) its window for its `on` values."""
        key = self._on.of(occ)
        if not any(key):
            ctx.count("change_without_key", self.name)  # it says nothing about any alert
            return
        at = occ.last_occurrence
        changes = self._windows.get(key)
        if changes is None:
            if len(self._windows) >= self._cap:
                ctx.count("cap_hit", self.name)
                return
            changes = self._windows[key] = []
        for i, known in enumerate(changes):
            if known.identifier == occ.identifier:
                if known.at >= at:
                    return  # a repeat of this change delivered late: the window stands
                del changes[i]  # the same change again: its window moves to the new time
                break
        change = _Change(at, occ.identifier, occ.summary)
        insort(changes, change)
        if len(changes) > MAX_PER_KEY:
            del changes[0]  # the oldest change of these values is forgotten: counted
            ctx.count("cap_hit", self.name)
        # kept `max_lateness` past its window: an alert stamped inside may still arrive
        ctx.schedule(at + self._within + self._grace, self, (_WINDOW, key))
        self._annotate_born(key, changes, change, now, ctx)

    def _annotate_born(
        self, key: Key, changes: list[_Change], change: _Change, now: float, ctx: Context
    ) -> None:
        """A change delivered after alerts it is the suspect of: annotate them now."""
        born = self._born.get(key)
        if not born:
            return
        table = ctx.table
        start, end = change.at, change.at + self._within
        for entry in born.values():
            if not start <= entry.at <= end:
                continue  # outside the change's window: it cannot be this alert's suspect
            alert = entry.alert
            if table.get(alert.identifier) is not alert or alert.status == CLEARED:
                continue  # gone, or the episode is over: leave its history alone
            if self._suspect(changes, entry.at) is change:
                self._annotate(alert, change, entry.at, now, ctx)

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """An alert was created or reopened: is a change window open for it?"""
        if alert.type != PROBLEM or not self._is_target(alert):
            return
        key = self._on.of(alert)
        if not any(key) or self._is_change(alert):
            return  # no change can name it, or it is a change itself
        at = alert.last_occurrence
        self._remember_born(key, alert, at, ctx)
        changes = self._windows.get(key)
        suspect = self._suspect(changes, at) if changes else None
        if suspect is not None:
            self._annotate(alert, suspect, at, now, ctx)

    def _remember_born(self, key: Key, alert: Alert, at: float, ctx: Context) -> None:
        """Keep the alert `max_lateness` for a change that is stamped before it but arrives after."""
        born = self._born.get(key)
        if born is None:
            if len(self._born) >= self._cap:
                ctx.count("cap_hit", self.name)
                return
            born = self._born[key] = {}
            self._waiting.drop(key)
            ctx.schedule(at + self._grace, self, (_BORN, key))
        born.pop(alert.identifier, None)  # a reopen: only its newest episode waits
        born[alert.identifier] = _Born(alert, at)
        self._waiting.push(key, born, at, alert.identifier)
        if len(born) > MAX_BORN_PER_KEY:
            del born[next(iter(born))]  # the oldest arrival stops waiting
            ctx.count("cap_hit", self.name)

    def _annotate(
        self, alert: Alert, suspect: _Change, at: float, now: float, ctx: Context
    ) -> None:
        if alert.annotations.get(ANNOTATION) == suspect.identifier:
            return
        alert.annotations[ANNOTATION] = suspect.identifier
        ago = format_duration(max(at - suspect.at, 0.0))
        ctx.modify(
            alert,
            now,
            self.name,
            f"suspect change {suspect.identifier} ({suspect.summary}): {ago} before this "
            f"alert, inside its {format_duration(self._within)} window on "
            f"{self._on.describe(self._on.of(alert))}",
        )

    def _suspect(self, changes: list[_Change], at: float) -> _Change | None:
        """The most recent change at or before `at` whose window still covers `at`."""
        for change in reversed(changes):
            if change.at <= at:
                return change if at <= change.at + self._within else None
        return None

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """Drop changes whose window has ended, and alerts done waiting for a late change."""
        assert isinstance(key, tuple)
        what, group = key
        if what == _WINDOW:
            changes = self._windows.get(group)
            if changes is None:
                return
            changes[:] = [c for c in changes if c.at + self._within + self._grace > now]
            if not changes:
                del self._windows[group]
        elif what == _BORN:
            born = self._born.get(group)
            if born is None:
                return
            earliest = self._waiting.release(group, born, self._grace, now)
            if earliest is not None:
                ctx.schedule(earliest + self._grace, self, key)
            else:
                del self._born[group]
                self._waiting.drop(group)

    def size(self) -> int:
        return len(self._windows) + len(self._born)


def build(spec: ChangeRule, env: BuildEnv) -> ChangeOperator:
    return ChangeOperator(spec, env.max_lateness)
