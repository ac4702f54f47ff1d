"""`kind: flapping` — a row that keeps opening and clearing stops paging.

Nagios/Icinga-style flap detection over the alert table: every open/clear
transition of a matching row (created, reopened, cleared) is counted; at least
`changes` of them within `window` (closed: [t - window, t]) mark the row
flapping: label `flapping=true`, `suppressed_by` this rule, so its state-change
notifications are held. Each further transition pushes the release back. The
row is released (label removed, then unsuppressed) once it has been stable for
`stable_for` and fewer than `changes` transitions remain in the window — a
transition stops counting when it is exactly `window` old.

Per row we keep only its last `changes` transition times: the count in the
window reaches `changes` exactly when the oldest of them is inside it. State
is keyed by identifier and outlives a deleted row for `window`, so an alert
whose cleared row is deleted between flaps is still recognised when it comes
back; a re-created row of a flapping alert is held again at once.

Membership is re-checked at every opening and whenever an open row's fields
change (`updated`, `modified`; not `repeated`, which changes none): a row that
comes to match is counted from then on, and a watched row that stops matching
is forgotten, released first if it was flapping (journal says why). A cleared
row keeps the membership it had while open (its severity is 0).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import Field

from correlator.correlate.base import (
    CLEARED,
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
)
from correlator.errors import RuleFieldError
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import PROBLEM, Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Duration, Rule
from correlator.timeparse import format_duration

LABEL: Final = "flapping"
_UNMATCHED: Final = "the row no longer matches the rule"


class FlappingRule(Rule):
    kind: Literal["flapping"]
    changes: int = Field(5, ge=2)
    window: Duration = 3600.0
    stable_for: Duration = 900.0
    max_rows: int = Field(100_000, ge=1)


@dataclass(slots=True)
class _Track:
    """One row's recent transitions (at most `changes`, oldest first) and its flap state."""

    times: list[float] = field(default_factory=list)
    flapping: bool = False


class FlappingOperator(Operator):
    state = ("_rows", "_rechecking")
    state_types = (_Track,)
    kind = "flapping"
    transitions = frozenset((CREATED, REOPENED, CLEARED, DELETED, UPDATED, MODIFIED))

    def __init__(self, spec: FlappingRule) -> None:
        super().__init__(spec.name, spec)
        if spec.window <= 0:
            raise RuleFieldError(("window",), "window must be longer than 0s")
        target = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        self._is_target = all_of([*target, when] if when is not None else target)
        self._changes = spec.changes
        self._window = spec.window
        self._stable_for = spec.stable_for
        self._cap = spec.max_rows
        self._rows: dict[str, _Track] = {}
        self._rechecking: set[str] = set()  # rows being re-checked: their echoes are ignored

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        track = self._rows.get(ident)
        if transition in (UPDATED, MODIFIED):
            # Only a change of membership acts: most changes cost the one test.
            if (
                alert.status != STATUS_CLEARED
                and ident not in self._rechecking
                and self._member(alert) != (track is not None)
            ):
                self._recheck(transition, alert, track, now, ctx)
            return
        if transition == DELETED:
            if track is not None:
                self._maybe_forget(ident, track, now, ctx)
            return
        # Membership is (re)decided when the row opens: a cleared row has severity 0.
        if transition != CLEARED and not self._member(alert):
            if track is not None:
                self._leave(ident, track, now, ctx)
            return
        if track is None:
            if transition == CLEARED:
                return
            track = self._new_track(transition, ident, ctx)
            if track is None:
                return
        track.times.append(now)
        if len(track.times) > self._changes:
            del track.times[0]
        if not track.flapping and self._flapping_at(track, now):
            track.flapping = True
        if track.flapping:
            self._hold(alert, now, ctx)
            ctx.schedule(self._release_at(track), self, ident)

    def _member(self, alert: Alert) -> bool:
        return alert.type == PROBLEM and self._is_target(alert)

    def _new_track(self, transition: str, ident: str, ctx: Context) -> _Track | None:
        if len(self._rows) >= self._cap:
            self.refused(transition, ctx)
            return None
        track = self._rows[ident] = _Track()
        return track

    def _recheck(
        self, transition: str, alert: Alert, track: _Track | None, now: float, ctx: Context
    ) -> None:
        """An open row's fields changed and it came to match (no `track`) or stopped matching.

        A newcomer is counted from now on (its earlier transitions were not
        seen). Our own label and release publish `modified` for the same row;
        while one re-check acts, those echoes are ignored, so nothing loops.
        """
        if track is None:
            self._new_track(transition, alert.identifier, ctx)
            return
        self._rechecking.add(alert.identifier)
        try:
            self._leave(alert.identifier, track, now, ctx)
        finally:
            self._rechecking.discard(alert.identifier)

    def _leave(self, ident: str, track: _Track, now: float, ctx: Context) -> None:
        """A watched row stopped matching: release it if flapping, then forget it."""
        del self._rows[ident]
        if track.flapping:
            self._release(ident, track, now, ctx, why=_UNMATCHED)

    def _flapping_at(self, track: _Track, now: float) -> bool:
        """`changes` transitions in the closed window [now - window, now]."""
        return len(track.times) >= self._changes and track.times[0] >= now - self._window

    def _release_at(self, track: _Track) -> float:
        """Stable for `stable_for`, and the oldest counted transition has left the window."""
        return max(track.times[-1] + self._stable_for, track.times[0] + self._window)

    def _hold(self, alert: Alert, now: float, ctx: Context) -> None:
        """Suppress and label the row (again, for a re-created row); idempotent."""
        window = format_duration(self._window)
        ctx.suppress(
            alert, now, self.name, f"{self._changes} open/clear transitions within {window}"
        )
        if alert.labels.get(LABEL) != "true":
            alert.labels[LABEL] = "true"
            ctx.modify(
                alert,
                now,
                self.name,
                f"flapping: {self._changes} open/clear transitions within {window}; "
                f"notifications held until stable for {format_duration(self._stable_for)}",
            )

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        assert isinstance(key, str)
        track = self._rows.get(key)
        if track is None:
            return
        if track.flapping:
            if self._release_at(track) > now:
                return  # a later transition moved the release; its own timer is queued
            self._release(key, track, now, ctx)
        self._maybe_forget(key, track, now, ctx)

    def _release(
        self, ident: str, track: _Track, now: float, ctx: Context, *, why: str = ""
    ) -> None:
        """Label off first, then unsuppress: the released notification shows the row as it is."""
        track.flapping = False
        row = ctx.table.get(ident)
        if row is None:
            return
        why = why or (
            f"stable for {format_duration(now - track.times[-1])}, fewer than "
            f"{self._changes} transitions within {format_duration(self._window)}"
        )
        if row.labels.pop(LABEL, None) is not None:
            ctx.modify(row, now, self.name, f"no longer flapping: {why}")
        ctx.unsuppress(row, now, self.name, why)

    def _maybe_forget(self, ident: str, track: _Track, now: float, ctx: Context) -> None:
        """Drop the state of a deleted row once its transitions have left the window."""
        if track.flapping or ctx.table.get(ident) is not None:
            return  # kept while flapping or while the row lives (DELETED calls again)
        due = track.times[-1] + self._window if track.times else now
        if due <= now:
            del self._rows[ident]
        else:
            ctx.schedule(due, self, ident)

    def size(self) -> int:
        return len(self._rows)

    def retire(self, alert: Alert, now: float) -> None:
        """Released by a reload: the `flapping` label goes with the hold it explained."""
        if alert.labels.get(LABEL) == "true":
            del alert.labels[LABEL]
            alert.note(now, self.name, "no longer flapping: the rule was removed or changed")


def build(spec: FlappingRule, env: BuildEnv) -> FlappingOperator:
    return FlappingOperator(spec)
