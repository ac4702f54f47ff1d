"""`kind: escalate` — an alert nobody took within `after` gets louder, once.

A matching alert that stays open (not acknowledged, not cleared) for `after`
gets the `set:` values (templates over the alert: `severity`, `summary`,
`labels.<k>`, `annotations.<k>`) and, with `receiver:`, one notification
(`Change(kind="notification")`). The escalation is a `modified` transition
with the journal note `escalated by <rule>`; policies with `on: [escalate]`
will hook in there.

The clock starts when the alert opens (or first matches while open) and stops
for good on acknowledge, clear or deletion. A reopen starts a new episode: the
clock restarts and label/annotation values the escalation set are put back
(unless something else changed them since). Time spent inside a maintenance
window does not count: the clock pauses while `Context.in_maintenance` holds
and resumes from where it stood when the window releases the alert.

After the escalation, `set:` values are sticky for the episode: they are
pinned on the row (`Alert.pinned`), and the table folds every deduplicated
occurrence as if it carried them (a pinned severity is a floor: a higher
occurrence severity still wins). So a repeat never announces a lowered value,
not even for an instant to rules dispatched before this one. The table drops
the pins when the cleared row reopens.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal

from pydantic import Field, field_validator

from correlator.correlate.base import (
    ACKNOWLEDGED,
    CLEARED,
    CREATED,
    DELETED,
    ESCALATED,
    MODIFIED,
    REOPENED,
    SUPPRESSED,
    UNSUPPRESSED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
    Shared,
)
from correlator.correlate.settable import MAPS, Value, check_names, get, put, rendered
from correlator.errors import RuleFieldError
from correlator.model import NOTIFICATION, OPEN, Alert, Change
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Duration, Rule, TemplateText
from correlator.ruleset.templates import Template
from correlator.timeparse import format_duration


class EscalateRule(Rule):
    kind: Literal["escalate"]
    after: Duration
    set_: dict[str, TemplateText] = Field({}, alias="set")
    receiver: str | None = Field(None, min_length=1)
    max_alerts: int = Field(100_000, ge=1)

    @field_validator("after")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise RuleFieldError(("after",), "after must be longer than 0s")
        return value

    @field_validator("set_")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        check_names(value)
        return value


@dataclass(slots=True, eq=False)
class _Clock:
    """Open-and-unacknowledged time of one alert; `elapsed` is what counted before `started`."""

    alert: Alert
    started: float
    elapsed: float = 0.0
    paused: bool = False


Applied = tuple[tuple[str, Value, Value], ...]  # (name, value set, value found) per field
Outcome = tuple[Applied, dict[str, int | str], str]  # what an escalation keeps, pins, notes


@dataclass(slots=True, eq=False)
class _Escalated:
    """What an escalation set on an alert, and what it found there (for a reopen).

    `applied` is (name, value set, value found) per field, in `set:` order: one
    tuple rather than two dicts, as a storm keeps one of these per alert.
    """

    alert: Alert
    applied: Applied = ()


# Transitions of a timed alert that only re-check it: it may have stopped matching,
# or a maintenance window may have taken or released it.
_CHANGES: Final = frozenset((CREATED, UPDATED, MODIFIED, SUPPRESSED, UNSUPPRESSED))


class EscalateOperator(Operator):
    state = ("_clocks", "_done")
    state_types = (_Clock, _Escalated)
    kind = "escalate"
    resets_on_reopen = True  # puts back the labels it set, before other rules see the reopen
    transitions = frozenset(
        (
            *(CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED, ACKNOWLEDGED),
            *(SUPPRESSED, UNSUPPRESSED),  # maintenance holds and releases the alert
        )
    )

    def __init__(self, spec: EscalateRule) -> None:
        super().__init__(spec.name, spec)
        scope = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        self._matches = all_of([*scope, when] if when is not None else scope)
        self._after = spec.after
        self._set = {name: Template(text) for name, text in spec.set_.items()}
        self._receiver = spec.receiver
        self._cap = spec.max_alerts
        self._clocks: dict[str, _Clock] = {}
        self._done: dict[str, _Escalated] = {}
        self._outcomes: Shared[Applied, Outcome] = Shared()  # see `_outcome`

    def start(self, now: float, ctx: Context) -> None:
        """A rule loaded while alerts are open times them from now (a reload never pages a burst)."""
        for alert in list(ctx.table.rows.values()):
            self._begin(CREATED, alert, now, ctx)

    # -- transitions -------------------------------------------------------------

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        clock = self._clocks.get(ident)
        if clock is not None and clock.alert is alert and transition in _CHANGES:
            # The common case first: a timed alert changed (or was held or let go).
            # A rule may match on `suppressed_by`, so a hold is re-checked too.
            if transition != CREATED and not self._matches(alert):
                del self._clocks[ident]  # it no longer qualifies: the clock stops
                return
            held = alert.suppressed_by is not None and ctx.in_maintenance(alert)
            if held != clock.paused:
                self._sync(clock, held, now, ctx)
            return
        if transition in (ACKNOWLEDGED, CLEARED, DELETED):
            self._clocks.pop(ident, None)
            if transition == DELETED:
                self._done.pop(ident, None)
            return
        if transition == REOPENED:
            self._clocks.pop(ident, None)
            done = self._done.pop(ident, None)
            self._begin(REOPENED, alert, min(alert.last_occurrence, now), ctx)
            if done is not None and done.alert is alert:
                self._reset(done, now, ctx)
            return
        if ident in self._done:
            return  # escalated: nothing more this episode (the table holds the values)
        # A row met later than its creation (it came to match, or the cap refused it
        # then) is timed from now: nothing records when its episode began.
        since = min(alert.first_occurrence, now) if transition == CREATED else now
        self._begin(transition, alert, since, ctx)

    def _begin(self, transition: str, alert: Alert, since: float, ctx: Context) -> None:
        """Start the clock of an open, matching alert."""
        if alert.status != OPEN or not self._matches(alert):
            return
        if len(self._clocks) + len(self._done) >= self._cap:
            self.refused(transition, ctx)
            return
        held = alert.suppressed_by is not None and ctx.in_maintenance(alert)
        clock = self._clocks[alert.identifier] = _Clock(alert, since, paused=held)
        if not held:
            self._arm(clock, ctx)

    def _sync(self, clock: _Clock, held: bool, now: float, ctx: Context) -> None:
        """Pause while a maintenance window holds the alert; resume when it lets go.

        `held` is `ctx.in_maintenance` of the alert, read by the caller; an alert
        nobody suppresses (`suppressed_by` None) is not held, so most callers
        learn it without asking the engine.
        """
        if held and not clock.paused:
            clock.elapsed += max(now - clock.started, 0.0)
            clock.paused = True
        elif clock.paused and not held:
            clock.started, clock.paused = now, False
            left = format_duration(max(self._after - clock.elapsed, 0.0))
            clock.alert.note(now, self.name, f"maintenance over: escalation in {left}")
            self._arm(clock, ctx)

    def _arm(self, clock: _Clock, ctx: Context) -> None:
        ctx.schedule(clock.started + self._after - clock.elapsed, self, clock.alert.identifier)

    # -- the escalation ------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        assert isinstance(key, str)
        clock = self._clocks.get(key)
        if clock is None or clock.paused or clock.started + self._after - clock.elapsed > now:
            return  # stopped, paused or restarted since this timer was set
        alert = clock.alert
        if ctx.table.get(key) is not alert or alert.status != OPEN or not self._matches(alert):
            del self._clocks[key]
            return
        if alert.suppressed_by is not None and ctx.in_maintenance(alert):
            self._sync(clock, True, now, ctx)
            return
        del self._clocks[key]
        self._escalate(alert, now, ctx)

    def _escalate(self, alert: Alert, now: float, ctx: Context) -> None:
        bad = partial(ctx.count, "bad_value", self.name)
        applied = []  # `set:` names each field once
        for name, value in rendered(alert, self._set, now, self.name, bad):
            applied.append((name, value, get(alert, name)))
            put(alert, name, value)
        done, pins, why = self._outcome(tuple(applied))
        self._done[alert.identifier] = _Escalated(alert, done)
        if done:  # a new dict: a snapshot of the row (pair) may share the old one
            alert.pinned = {**alert.pinned, **pins} if alert.pinned else pins
        ctx.modify(alert, now, self.name, why)
        ctx.count("escalated", self.name)
        if self._receiver is not None:
            ctx.emit(Change(now, NOTIFICATION, receiver=self._receiver, alerts=[alert]))
        ctx.signal(ESCALATED, alert, now)  # policies `on: [escalate]`

    def _outcome(self, applied: Applied) -> Outcome:
        """What an escalation keeps, pins and notes, shared by the escalations that set
        and found the same values (in a storm, all of them: a few hundred bytes per alert).

        Nothing here is mutated once made: a row's `pinned` is replaced, never changed.
        """
        known = self._outcomes.get(applied)
        if known is not None:
            return known
        pins = {name: value for name, value, _ in applied if value is not None}
        why = (
            f"escalated by {self.name}: open and unacknowledged for {format_duration(self._after)}"
        )
        if applied:
            why += "; set " + ", ".join(f"{k}={v}" for k, v, _ in applied)
        if self._receiver is not None:
            why += f"; notified {self._receiver}"
        return self._outcomes.keep(applied, (applied, pins, why))

    def _reset(self, done: _Escalated, now: float, ctx: Context) -> None:
        """A reopen is a new episode: put back the labels/annotations the escalation replaced."""
        alert = done.alert
        restored = []
        for name, value, found in done.applied:
            if name.startswith(MAPS) and get(alert, name) == value:
                put(alert, name, found)
                restored.append(name)
        if restored:
            ctx.modify(
                alert, now, self.name, "reopened: escalation reset, restored " + ", ".join(restored)
            )

    def size(self) -> int:
        return len(self._clocks) + len(self._done)


def build(spec: EscalateRule, env: BuildEnv) -> EscalateOperator:
    return EscalateOperator(spec)
