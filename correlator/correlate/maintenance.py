"""`kind: maintenance` — planned work must not page: matching alerts are held while a window is active.

A window is absolute (`start` + `end` or `duration`) or recurring (`cron` +
`duration`), in a `timezone`. While one is active, every open matching alert is
suppressed (`suppressed_by` = the rule); at the window's end they are released.
Windows are half-open, [start, end): an alert at exactly `end` is not held.

Boundaries are timers computed from the schedule, never polling: the rule arms
one timer for the next boundary when it has alerts to act on, and re-arms it
when it fires. Escalation clocks stop while a maintenance rule holds an alert
(`pauses_escalation`, read by `Context.in_maintenance`); the hold and the release
always publish a transition so that escalate rules notice both.

An alert opened (created or reopened) inside a window is marked with the
annotations `maintenance: <rule>` and `send_resolved: "false"`: its recovery is
not notified, since nobody was paged for it (the route stage reads
`send_resolved`, as Alertmanager's receivers do). If it is still open when the
window ends the mark is removed: it is released like any alert and both its
firing and its recovery are notified.

Membership is re-checked whenever an open row's fields change (`updated`,
`modified`, and at every opening): a row whose labels come to match while a
window is active is held then (unmarked: its firing was already notified), and
a held row that stops matching is released at once, with a journal note. A
cleared row keeps the membership it had while open (its severity is 0).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Protocol
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter
from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

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
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Duration, Rule, Strict, ZoneName
from correlator.timeparse import format_duration

MAINTENANCE_ANNOTATION: Final = "maintenance"  # the rule whose window the alert was born in
SEND_RESOLVED_ANNOTATION: Final = "send_resolved"  # "false": the route stage sends no recovery
_BOUNDARY: Final = "boundary"
_UNMATCHED: Final = "no longer matches the rule"


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


# A YAML timestamp (an editor sees a string; naive times are in `timezone`) or epoch seconds.
WhenText = Annotated[
    datetime,
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}]}),
]


class Window(Strict):
    """One maintenance window: `start` + `end`/`duration`, or `cron` + `duration`."""

    start: WhenText | None = None
    end: WhenText | None = None
    cron: str | None = None
    duration: Duration | None = None
    timezone: ZoneName = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"bad cron expression {value!r}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Window:
        if self.cron is not None:
            if self.start is not None or self.end is not None:
                raise ValueError("a window has either cron + duration or start + end, not both")
            if not self.duration:
                raise ValueError("a cron window needs a duration longer than 0s")
            return self
        if self.start is None:
            raise ValueError("a window needs start (with end or duration) or cron (with duration)")
        if (self.end is None) == (self.duration is None):
            raise ValueError("an absolute window needs exactly one of end and duration")
        self.compile()  # end after start
        return self

    def compile(self) -> _Span:
        zone = ZoneInfo(self.timezone)
        if self.cron is not None:
            assert self.duration is not None
            return _Cron(self.cron, self.duration, zone)
        assert self.start is not None
        start = _epoch(self.start, zone)
        end = _epoch(self.end, zone) if self.end is not None else start + (self.duration or 0.0)
        if end <= start:
            raise ValueError("a window's end must be after its start")
        return _Absolute(start, end)


Windows = Annotated[
    list[Window],
    BeforeValidator(_one_or_many, json_schema_input_type=Window | list[Window]),
    Field(min_length=1),
]


class MaintenanceRule(Rule):
    kind: Literal["maintenance"]
    schedule: Windows
    max_alerts: int = Field(100_000, ge=1)


def _epoch(moment: datetime, zone: ZoneInfo) -> float:
    """Naive times are wall-clock times in the window's timezone."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Span(Protocol):
    def active(self, at: float) -> bool: ...

    def boundary_after(self, at: float) -> float | None: ...

    def describe(self) -> str: ...


class _Absolute:
    __slots__ = ("end", "start")

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def active(self, at: float) -> bool:
        return self.start <= at < self.end

    def boundary_after(self, at: float) -> float | None:
        if at < self.start:
            return self.start
        return self.end if at < self.end else None

    def describe(self) -> str:
        return f"{_iso(self.start)} to {_iso(self.end)}"


class _Cron:
    """A window opening at every cron fire time (wall clock in `zone`) for `duration`."""

    __slots__ = ("duration", "expr", "zone")

    def __init__(self, expr: str, duration: float, zone: ZoneInfo) -> None:
        self.expr, self.duration, self.zone = expr, duration, zone

    def _fire(self, at: float, *, previous: bool) -> float | None:
        try:
            it = croniter(self.expr, datetime.fromtimestamp(at, self.zone))
            return float(it.get_prev(float) if previous else it.get_next(float))
        except (CroniterError, ValueError, OverflowError):
            return None  # an expression that never fires (Feb 30) opens no window

    def _last_start(self, at: float) -> float | None:
        """The latest fire time <= at (fire times are whole seconds)."""
        return self._fire(float(int(at) + 1), previous=True)

    def active(self, at: float) -> bool:
        start = self._last_start(at)
        return start is not None and at < start + self.duration

    def boundary_after(self, at: float) -> float | None:
        upcoming = self._fire(at, previous=False)
        candidates = [] if upcoming is None or upcoming <= at else [upcoming]
        start = self._last_start(at)
        if start is not None and start + self.duration > at:
            candidates.append(start + self.duration)
        return min(candidates, default=None)

    def describe(self) -> str:
        return f"cron '{self.expr}' for {format_duration(self.duration)} ({self.zone.key})"


class Schedule:
    """The union of a rule's windows; the state at t is cached until the next boundary."""

    def __init__(self, spans: Sequence[_Span]) -> None:
        self._spans = tuple(spans)
        self._cache: tuple[float, float, bool] = (0.0, 0.0, False)  # [lo, hi) → active

    def state(self, at: float) -> tuple[bool, float | None]:
        """Whether a window is active at `at`, and the next time that may change."""
        lo, hi, active = self._cache
        if lo <= at < hi:
            return active, None if hi == float("inf") else hi
        active = any(span.active(at) for span in self._spans)
        bounds = [b for span in self._spans if (b := span.boundary_after(at)) is not None]
        until = min(bounds, default=None)
        self._cache = (at, float("inf") if until is None else until, active)
        return active, until

    def describe(self) -> str:
        return "; ".join(span.describe() for span in self._spans)


class MaintenanceOperator(Operator):
    state = ("_open", "_held", "_armed", "_rechecking")
    kind = "maintenance"
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED))
    pauses_escalation = True

    def __init__(self, spec: MaintenanceRule) -> None:
        super().__init__(spec.name, spec)
        scope = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        self._matches = all_of([*scope, when] if when is not None else scope)
        self._schedule = Schedule([window.compile() for window in spec.schedule])
        self._what = self._schedule.describe()
        self._cap = spec.max_alerts
        # matching alerts the rule tracks: open ones (held at the next start) and cleared
        # ones it still holds; `_held` is always a subset, so `_open` is the rule's size
        self._open: dict[str, Alert] = {}
        self._held: dict[str, Alert] = {}  # alerts this rule suppresses now
        self._armed: float | None = None  # the pending boundary timer
        self._rechecking: set[str] = set()  # rows being re-checked: their echoes are ignored

    def start(self, now: float, ctx: Context) -> None:
        """A rule loaded while alerts are open (reload, restart) holds them too: one pass."""
        for alert in list(ctx.table.rows.values()):
            if alert.status != STATUS_CLEARED and self._matches(alert):
                self._track(CREATED, alert, now, ctx, born=False)

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        if transition in (UPDATED, MODIFIED):
            # Only a change of membership acts: most changes cost the one test.
            if (
                alert.status != STATUS_CLEARED
                and ident not in self._rechecking
                and self._matches(alert) != (ident in self._open or ident in self._held)
            ):
                self._recheck(transition, alert, now, ctx)
        elif transition in (CREATED, REOPENED):
            if self._matches(alert):
                self._track(transition, alert, now, ctx, born=True)
            elif ident in self._open or ident in self._held:
                self._leave(alert, now, ctx)  # reopened with labels that no longer match
        elif transition == CLEARED:
            if ident not in self._held:  # a held row stays held (and tracked) until the end
                self._open.pop(ident, None)
        else:
            self._open.pop(ident, None)
            self._held.pop(ident, None)

    def _recheck(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """An open row's fields changed and it came to match (untracked) or stopped matching.

        Our own hold and release publish `modified` for the same row; while one
        re-check acts, those echoes are ignored, so no rule can make it loop.
        """
        ident = alert.identifier
        tracked = ident in self._open or ident in self._held
        if not tracked:
            active, until = self._schedule.state(now)
            if not active and until is None:
                return  # nothing ahead to hold it in
        self._rechecking.add(ident)
        try:
            if tracked:
                self._leave(alert, now, ctx)
            else:
                self._track(transition, alert, now, ctx, born=False)  # firing notified: no mark
        finally:
            self._rechecking.discard(ident)

    def _leave(self, alert: Alert, now: float, ctx: Context) -> None:
        """A tracked row stopped matching: forget it, and release it if held."""
        self._open.pop(alert.identifier, None)
        if self._held.pop(alert.identifier, None) is not None:
            self._release(alert, now, ctx, why=_UNMATCHED)

    def _track(
        self, transition: str, alert: Alert, now: float, ctx: Context, *, born: bool
    ) -> None:
        ident = alert.identifier
        active, until = self._schedule.state(now)
        if until is None and not active:
            if born:
                self._unmark(alert, now, ctx)
            return  # no window ahead: nothing to hold, ever
        if ident not in self._open and len(self._open) >= self._cap:
            self.refused(transition, ctx)
            return
        self._open[ident] = alert
        if active:
            self._hold(alert, now, ctx, born=born)
        elif born:
            self._unmark(alert, now, ctx)
        self._arm(now, ctx)

    # -- the window's edges ------------------------------------------------------

    def _arm(self, now: float, ctx: Context) -> None:
        _, until = self._schedule.state(now)
        if until is not None and (self._armed is None or until < self._armed):
            self._armed = until
            ctx.schedule(until, self, (_BOUNDARY, until))

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        assert isinstance(key, tuple)
        _, when = key
        if when != self._armed:
            return  # superseded by an earlier boundary, or already handled
        self._armed = None
        active, _ = self._schedule.state(now)
        if active:
            for alert in list(self._open.values()):
                if ctx.table.get(alert.identifier) is alert:
                    self._hold(alert, now, ctx, born=False)
        else:
            for alert in list(self._held.values()):
                self._release(alert, now, ctx)
                if alert.status == STATUS_CLEARED:
                    self._open.pop(alert.identifier, None)  # its episode is over
            self._held.clear()
            if self._schedule.state(now)[1] is None:
                self._open.clear()  # no window ahead: stop tracking
        if self._open or self._held:
            self._arm(now, ctx)

    def _hold(self, alert: Alert, now: float, ctx: Context, *, born: bool) -> None:
        if born:
            alert.annotations[MAINTENANCE_ANNOTATION] = self.name
            alert.annotations[SEND_RESOLVED_ANNOTATION] = "false"
            alert.note(
                now, self.name, "opened inside the maintenance window: no recovery notification"
            )
        self._held[alert.identifier] = alert
        already, shown = self.holds(alert, ctx), alert.suppressed_by
        ctx.suppress(alert, now, self.name, f"maintenance window {self._what}")  # or re-claims
        if already:
            return
        if shown is not None:  # another rule's suppression is shown: publish the hold anyway
            ctx.modify(alert, now, self.name, "in maintenance: escalation paused")

    def _release(
        self, alert: Alert, now: float, ctx: Context, *, why: str = "maintenance window ended"
    ) -> None:
        if ctx.table.get(alert.identifier) is not alert:
            return
        if alert.status != STATUS_CLEARED and self._unmark(alert, now, ctx, quiet=True):
            alert.note(now, self.name, f"released open ({why}): its recovery will be notified")
        if not self.holds(alert, ctx):
            return
        shown = alert.suppressed_by == self.name
        ctx.unsuppress(alert, now, self.name, why)
        if not shown:  # no transition was published for the release: publish one
            ctx.modify(alert, now, self.name, f"out of maintenance ({why}): escalation resumes")

    def _unmark(self, alert: Alert, now: float, ctx: Context, *, quiet: bool = False) -> bool:
        """Drop the born-in-maintenance mark (a new episode outside the window)."""
        if alert.annotations.get(MAINTENANCE_ANNOTATION) != self.name:
            return False
        del alert.annotations[MAINTENANCE_ANNOTATION]
        alert.annotations.pop(SEND_RESOLVED_ANNOTATION, None)
        if not quiet:
            ctx.modify(alert, now, self.name, "reopened outside maintenance: recovery is notified")
        return True

    def size(self) -> int:
        return len(self._open)

    def retire(self, alert: Alert, now: float) -> None:
        """Released by a reload: an open alert born in the window will notify its recovery."""
        if (
            alert.status != STATUS_CLEARED
            and alert.annotations.get(MAINTENANCE_ANNOTATION) == self.name
        ):
            del alert.annotations[MAINTENANCE_ANNOTATION]
            alert.annotations.pop(SEND_RESOLVED_ANNOTATION, None)
            alert.note(now, self.name, "released open by a reload: its recovery will be notified")


def build(spec: MaintenanceRule, env: BuildEnv) -> MaintenanceOperator:
    return MaintenanceOperator(spec)
