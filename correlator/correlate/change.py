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
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import Field

from correlator.correlate.base import CREATED, REOPENED, BuildEnv, Context, Operator
from correlator.correlate.grouping import FieldKey
from correlator.model import PROBLEM, Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Duration, FieldNames, Matchers, Rule
from correlator.timeparse import format_duration

ANNOTATION: Final = "suspect_change"
MAX_PER_KEY: Final = 16  # recent changes kept per `on` values; the oldest goes first

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


class ChangeOperator(Operator):
    kind = "change"
    transitions = frozenset((CREATED, REOPENED))

    def __init__(self, spec: ChangeRule) -> None:
        super().__init__(spec.name, spec)
        if spec.within <= 0:
            raise ValueError("within must be longer than 0s")
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
        self._windows: dict[Key, list[_Change]] = {}  # ascending by time

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
        insort(changes, _Change(at, occ.identifier, occ.summary))
        if len(changes) > MAX_PER_KEY:
            del changes[0]
        ctx.schedule(at + self._within, self, key)

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """An alert was created or reopened: is a change window open for it?"""
        if alert.type != PROBLEM:
            return
        changes = self._windows.get(self._on.of(alert))
        if not changes or not self._is_target(alert) or self._is_change(alert):
            return
        suspect = self._suspect(changes, alert.last_occurrence)
        if suspect is None or alert.annotations.get(ANNOTATION) == suspect.identifier:
            return
        alert.annotations[ANNOTATION] = suspect.identifier
        ago = format_duration(max(alert.last_occurrence - suspect.at, 0.0))
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
        """Drop changes whose window has ended; forget the key when none is left."""
        assert isinstance(key, tuple)
        changes = self._windows.get(key)
        if changes is None:
            return
        changes[:] = [c for c in changes if c.at + self._within > now]
        if not changes:
            del self._windows[key]

    def size(self) -> int:
        return len(self._windows)


def build(spec: ChangeRule, env: BuildEnv) -> ChangeOperator:
    return ChangeOperator(spec)
