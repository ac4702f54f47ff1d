"""`kind: incident` — a cascade of related alerts is one incident, not a page per alert.

Matching alerts with equal `group_by` values join the group's current incident
while each arrives within `window` of the group's most recent member (a closed
interval); one that comes later starts a new incident. The group outlives its
window by the engine's `max_lateness`, so a member delivered
late but inside the window still joins. An incident opens once it has
`min_members` members; below that it is pending, and is dropped with its group
or when all its members clear. A member beyond `max_members` starts the group's
next incident (counted as `incident_cap`).

Incidents are objects of their own, not synthetic alerts: they are published as
`incident.opened` / `incident.updated` / `incident.closed` changes carrying the
incident as a dict (id, rule, title, status, severity, group, members,
root_cause, opened_at, updated_at, closed_at). Members get `incident` = the id
and, except the root cause itself, `parent` = the root cause's identifier
(unless another rule already set a parent: a parent this rule did not write is
never overwritten; nor is one written that would close a loop of parents,
counted as `parent_cycle`; a topology or threshold parent that would close one
through ours wins, see `correlate.parents`). The root cause is the earliest member (occurrence
time, then serial) among those matching `root_cause:`, or among all when none
does. Severity is the highest among open members (0 once closed); the incident
closes when every member has cleared and never reopens: a member that reopens
later joins the group's next incident, and the parent the closed one wrote is
replaced (or unset, journal note) rather than left pointing into it.

Ids are `<rule>:<group values>:<start>`, start being the first member's
occurrence time as `YYYYmmddTHHMMSSZ` (UTC), with `.2`, `.3`, ... when the rule
starts more than one incident of a group in one second (a counter of the rule,
kept while a late member could still start one there): deterministic in replay
and tests, unique across reloads and restarts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from correlator.correlate.base import (
    CLEARED,
    CREATED,
    DELETED,
    INCIDENT,
    MODIFIED,
    REOPENED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
    ParentLink,
)
from correlator.correlate.grouping import FieldKey
from correlator.correlate.incident_title import TitleContext
from correlator.correlate.synthetic import SyntheticAlert, group_values
from correlator.errors import RuleFieldError
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import INCIDENT_CLOSED, INCIDENT_OPENED, INCIDENT_UPDATED, Alert, Change
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.paths import last_segment
from correlator.ruleset.schema import Duration, FieldNames, Matchers, Rule, TemplateText
from correlator.ruleset.templates import Template
from correlator.snapshot import derived

Key = tuple[str, ...]


_DEFAULT_TITLE: Final = "{{ summary }}{% if count > 1 %} (+{{ count - 1 }} related){% endif %}"
_SHORT: Final = 60_000  # a summary this long renders as it is (Jinja2 cuts at 64 KiB)
_BITS: Final = 32  # per severity level in `_Incident.counts`: room for 4 billion members
_ONE: Final = tuple(1 << (_BITS * level) for level in range(6))  # one open member at a level


class IncidentRule(Rule):
    kind: Literal["incident"]
    group_by: FieldNames
    window: Duration
    min_members: int = Field(1, ge=1)
    max_members: int = Field(1000, ge=1)
    title: TemplateText = _DEFAULT_TITLE
    root_cause: Matchers = []
    max_incidents: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> IncidentRule:
        if self.window <= 0:
            raise RuleFieldError(("window",), "window must be longer than 0s")
        if self.max_members < self.min_members:
            raise RuleFieldError(("max_members",), "max_members must be at least min_members")
        return self


@dataclass(slots=True, eq=False)
class _Member:
    alert: Alert
    at: float  # occurrence time it joined with
    root_ok: bool  # matches `root_cause:`
    # the row's severity and whether it is open, as the rule was last told (counted in
    # `_Incident.counts`; a change of anything else cannot alter the view)
    severity: int
    open: bool = True


# What `_view` compares of the last published view: title, status, severity,
# root cause, member count, opened_at, closed_at. A storm keeps an incident per
# alert, so the view itself (a dict of eleven, with a list and a dict) is not kept.
Shown = tuple[str, str, int, str | None, int, float | None, float | None]


@dataclass(slots=True, eq=False)
class _Incident:
    """One incident; its `group` is rebuilt from `key` when shown (one fewer dict and tuple each)."""

    id: str
    key: Key
    members: dict[str, _Member] = field(default_factory=dict)  # join order
    root: _Member | None = None
    opened_at: float | None = None
    updated_at: float | None = None
    closed_at: float | None = None
    shown: Shown | None = None  # the last published view, as `_view` compares it
    severity: int | None = None  # max over open members; None: to be recomputed
    # open members per severity as the rule was told of them, `_BITS` bits a level (see
    # `_told`); None: to be counted from the rows (after a restore)
    counts: int | None = derived(None)


@dataclass(slots=True, eq=False)
class _Group:
    """The group's current incident: members up to `last` + window join it.

    The group is kept until `last` + window + max_lateness, so that a member
    delivered late but inside the window still finds it.
    """

    current: _Incident | None
    last: float


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")


def _better(a: _Member, b: _Member) -> bool:
    """Whether `a` is a better root cause than `b`: a root_cause match, then the earliest."""
    if a.root_ok != b.root_ok:
        return a.root_ok
    return (a.at, a.alert.serial) < (b.at, b.alert.serial)


class IncidentOperator(Operator):
    state = ("_groups", "_of", "_live", "_issued", "_issued_at", "_newest")
    state_types = (_Member, _Incident, _Group)
    kind = "incident"
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED))

    def __init__(self, spec: IncidentRule, max_lateness: float = 300.0) -> None:
        super().__init__(spec.name, spec)
        scope = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        self._matches = all_of([*scope, when] if when is not None else scope)
        roots = compile_matchers(spec.root_cause)
        self._root_ok = all_of([m.test for m in roots]) if roots else None
        self._fields = FieldKey(spec.group_by)
        short = [last_segment(name) for name in spec.group_by]
        self._names = short if len(set(short)) == len(short) else list(spec.group_by)
        self._window = spec.window
        self._grace = max_lateness  # how long a group outlives its window, for late members
        self._min, self._max = spec.min_members, spec.max_members
        self._cap = spec.max_incidents
        self._title = Template(spec.title)
        self._title_reads_members = "members" in spec.title
        self._default_title = spec.title == _DEFAULT_TITLE
        self._context = SyntheticAlert(spec.name, None)  # the template context of alert: specs
        self._groups: dict[Key, _Group] = {}
        self._of: dict[str, _Incident] = {}  # member identifier → its live incident
        self._live: dict[str, _Incident] = {}  # pending and open incidents by id
        self._issued: dict[str, int] = {}  # id without suffix → incidents started with it
        self._issued_at: deque[tuple[float, str]] = deque()  # (start, base id), to forget them
        self._newest = float("-inf")  # the latest occurrence time of a joining alert

    # -- transitions -------------------------------------------------------------

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        inc = self._of.get(ident)
        if inc is not None:
            member = inc.members.get(ident)
            if member is None:
                inc.severity = None
            elif member.alert is not alert:
                return  # a row deleted since (its identifier made again): not the member's
            else:
                is_open = alert.status != STATUS_CLEARED
                if (
                    transition in (UPDATED, MODIFIED)
                    and member is not inc.root  # the title reads the root's fields
                    and member.severity == alert.severity
                    and member.open == is_open
                    and not self._title_reads_members
                ):
                    return  # nothing the incident shows has changed (often our own note)
                _tell(inc, member, alert.severity, is_open)
        if transition in (CLEARED, DELETED):
            if inc is not None:
                if transition == DELETED:
                    del self._of[ident]
                self._member_cleared(inc, now, ctx)
            return
        if inc is not None:
            if inc.opened_at is not None:
                self._publish(inc, now, ctx)  # severity or title may have changed
            return
        if alert.status != STATUS_CLEARED and self._matches(alert):
            self._join(transition, alert, now, ctx)
        if transition == REOPENED:
            self._release(alert, now, ctx)

    def _release(self, alert: Alert, now: float, ctx: Context) -> None:
        """Unset a parent left by a closed incident on a member that reopened.

        Unless the alert is now in an open incident of this rule (whose root
        cause `_adopt` already made its parent), the parent points into a
        closed incident; a parent another rule set since is left alone.
        """
        inc = self._of.get(alert.identifier)
        if inc is not None and inc.opened_at is not None:
            return
        link = ctx.parent_link(alert)
        if link is not None and link.rule == self.name:
            why = f"parent {link.parent} unset: its incident closed"
            ctx.set_parent(alert, None, now, self.name, why)

    def _join(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """An open matching alert that belongs to no live incident of this rule."""
        key = self._fields.of(alert)
        at = alert.last_occurrence
        if at > self._newest:
            self._newest = at
        group = self._groups.get(key)
        if group is not None and at > group.last + self._window:
            self._close_window(group)  # the window ran out: this member starts a new incident
        inc = group.current if group is not None else None
        if inc is not None and len(inc.members) >= self._max:
            ctx.count("incident_cap", self.name)
            inc = None  # the old incident stays open; this member starts the next one
        if inc is None or group is None:
            found = self._new(transition, key, group, at, ctx)
            if found is None:
                return
            group, inc = found
        member = _Member(
            alert, at, self._root_ok(alert) if self._root_ok else False, alert.severity
        )
        counts = inc.counts
        gone = inc.members.get(alert.identifier)  # a row made again under its identifier
        if gone is not None and gone.open:  # (rows are deleted once cleared: not seen so far)
            inc.severity = None
            if counts is not None:
                counts -= _ONE[gone.severity]
        if counts is not None:  # the first member's value is shared, not a sum made anew
            inc.counts = counts + _ONE[alert.severity] if counts else _ONE[alert.severity]
        inc.members[alert.identifier] = member
        if inc.severity is not None:
            inc.severity = max(inc.severity, alert.severity)
        self._of[alert.identifier] = inc
        if at > group.last:
            group.last = at
            ctx.schedule(at + self._window + self._grace, self, key)
        if inc.opened_at is None:
            if len(inc.members) >= self._min:
                self._open(inc, now, ctx)
            return
        moved = inc.root is None or _better(member, inc.root)
        if moved:
            inc.root = member
        self._publish(inc, now, ctx, INCIDENT_UPDATED)  # a new member: it did change
        self._adopt(inc, inc.members.values() if moved else (member,), now, ctx)

    def _new(
        self, transition: str, key: Key, group: _Group | None, at: float, ctx: Context
    ) -> tuple[_Group, _Incident] | None:
        if len(self._live) >= self._cap or (group is None and len(self._groups) >= self._cap):
            self.refused(transition, ctx)
            return None
        if group is None:
            group = self._groups[key] = _Group(None, at)
            ctx.schedule(at + self._window + self._grace, self, key)
        ident = self._id(key, at, ctx)
        inc = group.current = self._live[ident] = _Incident(ident, key, counts=0)
        return group, inc

    def _id(self, key: Key, at: float, ctx: Context) -> str:
        """`<rule>:<group values>:<start>`, `.2`, `.3`, ... for starts in the same second.

        The suffix counter is the rule's, not the group's: it outlives the
        group, so an incident started by a late member never reuses an id. A
        start is remembered while another one could still fall in its second
        (the engine refuses events older than its newest by more than
        `max_lateness`), at most `max_incidents` of them.
        """
        base = ":".join((self.name, *key, _stamp(at)))
        self._prune(ctx, full=True)
        issued = self._issued
        n = issued.get(base, 0) + 1
        if n == 1:
            self._issued_at.append((at, base))
        ident = base if n == 1 else f"{base}.{n}"
        while ident in self._live:  # a live id is never reused, whatever the clocks did
            n += 1
            ident = f"{base}.{n}"
        issued[base] = n
        return ident

    def _prune(self, ctx: Context, *, now: float = float("-inf"), full: bool = False) -> None:
        """Forget starts no new member can share a second with; make room for one when `full`.

        A member can be no older than the newest joining alert, or the clock `now`, minus
        `max_lateness`.
        """
        horizon = max(self._newest, now) - self._grace
        issued, order = self._issued, self._issued_at
        while order and (order[0][0] + 1.0 < horizon or (full and len(issued) >= self._cap)):
            if order[0][0] + 1.0 >= horizon:
                ctx.count("incident_id_cap", self.name)  # forgotten early: an id may repeat
            issued.pop(order.popleft()[1], None)

    def _member_cleared(self, inc: _Incident, now: float, ctx: Context) -> None:
        counts = _told(inc, ctx)
        if counts is not None:
            still_open = counts != 0
        else:  # newest first: members clear roughly in the order they joined
            still_open = any(
                m.alert.status != STATUS_CLEARED for m in reversed(inc.members.values())
            )
        if still_open:
            if inc.opened_at is not None:
                self._publish(inc, now, ctx)
            return
        if inc.opened_at is not None:
            inc.closed_at = now
            self._publish(inc, now, ctx, INCIDENT_CLOSED)
        self._forget(inc)  # closed, or a pending incident with nothing left open

    # -- timers ------------------------------------------------------------------

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """The group's window and the grace for late members ran out: forget the group."""
        assert isinstance(key, tuple)
        group = self._groups.get(key)
        if group is not None and group.last + self._window + self._grace <= now:
            del self._groups[key]
            self._close_window(group)
            self._prune(ctx, now=now)

    def _close_window(self, group: _Group) -> None:
        """No member may join the group's current incident any more."""
        inc = group.current
        group.current = None
        if inc is not None and inc.opened_at is None:
            self._forget(inc)  # never reached min_members

    def _forget(self, inc: _Incident) -> None:
        self._live.pop(inc.id, None)
        for ident in inc.members:
            if self._of.get(ident) is inc:
                del self._of[ident]
        group = self._groups.get(inc.key)
        if group is not None and group.current is inc:
            group.current = None

    # -- publishing --------------------------------------------------------------

    def _open(self, inc: _Incident, now: float, ctx: Context) -> None:
        inc.opened_at = now
        for member in inc.members.values():
            if inc.root is None or _better(member, inc.root):
                inc.root = member
        self._publish(inc, now, ctx, INCIDENT_OPENED)
        self._adopt(inc, inc.members.values(), now, ctx)

    def _title_of(self, inc: _Incident, root: Alert | None, count: int) -> str:
        """The incident's title; the default one without Jinja2 (it is rendered per publish,
        and its count changes with every member, so the template's memo seldom holds it)."""
        if self._default_title and root is not None:
            summary = root.summary
            if type(summary) is str and len(summary) < _SHORT:
                return summary if count <= 1 else f"{summary} (+{count - 1} related)"
        members = inc.members.values()
        alerts = [m.alert for m in members] if self._title_reads_members else []
        pairs = self._group(inc)
        context = TitleContext(self._context, pairs, group_values(pairs), root, alerts, count)
        return self._title.render(context)

    def _group(self, inc: _Incident) -> tuple[tuple[str, str], ...]:
        """(name, value) per group_by field: the incident's `group`."""
        return tuple(zip(self._names, inc.key, strict=True))

    def _view(self, inc: _Incident, ctx: Context, *, changed_only: bool) -> dict[str, Any] | None:
        """The published incident; None when `changed_only` and it is the one last shown.

        A member list only grows, so an equal length means an equal list: an
        unchanged incident costs no list of its members and no dict.
        """
        members = inc.members.values()
        root = inc.root.alert if inc.root is not None else None
        title = self._title_of(inc, root, len(members))
        if inc.severity is None:
            inc.severity = _highest_open(inc, ctx)
        status = "closed" if inc.closed_at is not None else "open"
        root_cause = root.identifier if root is not None else None
        shown = (
            title,
            status,
            inc.severity,
            root_cause,
            len(members),
            inc.opened_at,
            inc.closed_at,
        )
        if changed_only and inc.shown == shown:
            return None
        inc.shown = shown
        return {
            "id": inc.id,
            "rule": self.name,
            "title": title,
            "status": status,
            "severity": inc.severity,
            "group": dict(self._group(inc)),
            "members": list(inc.members),
            "root_cause": root_cause,
            "opened_at": inc.opened_at,
            "updated_at": inc.updated_at,
            "closed_at": inc.closed_at,
        }

    def _publish(self, inc: _Incident, now: float, ctx: Context, kind: str | None = None) -> None:
        """Emit the incident if it changed (or as `kind`); views are never mutated once sent."""
        view = self._view(inc, ctx, changed_only=kind is None)
        if view is None:
            return
        kind = kind or INCIDENT_UPDATED
        inc.updated_at = view["updated_at"] = now
        ctx.emit(Change(now, kind, incident=view))
        if inc.root is not None:  # policies `on: [incident]` act on the root cause
            ctx.signal(INCIDENT, inc.root.alert, now)

    def _adopt(self, inc: _Incident, members: Iterable[_Member], now: float, ctx: Context) -> None:
        """Point members at the incident and non-root members at the root cause."""
        assert inc.root is not None
        root = inc.root.alert
        title = inc.shown[0] if inc.shown else ""
        for member in list(members):
            alert = member.alert
            if ctx.table.get(alert.identifier) is not alert:
                continue  # deleted meanwhile
            notes = []
            if alert.incident != inc.id:
                alert.incident = inc.id
                notes.append(f"joined incident {inc.id} ({title})")
            want = None if alert is root else root.identifier
            link = ctx.parent_link(alert)
            if alert.parent != want and (link is None or link.rule == self.name):
                if want is None:
                    notes.append("root cause: parent unset")
                    ctx.set_parent(alert, None, now, self.name, "; ".join(notes))
                    continue
                notes.append(f"parent {want} (root cause)")
                mine = ParentLink(want, self.name, self.kind)
                if ctx.set_parent(alert, mine, now, self.name, "; ".join(notes)):
                    continue
                notes.pop()  # refused: it would close a loop of parents
            elif notes and alert is root:
                notes.append("root cause")
            if notes:
                ctx.modify(alert, now, self.name, "; ".join(notes), links_only=True)

    def size(self) -> int:
        return len(self._groups) + len(self._of) + len(self._issued)


def _tell(inc: _Incident, member: _Member, severity: int, is_open: bool) -> None:
    """What a member's row is now: its record, the counts and the incident's severity."""
    was_open, old = member.open, member.severity
    if was_open == is_open and (old == severity or not is_open):
        member.severity = severity
        return  # the same level (a cleared member's severity does not count)
    counts = inc.counts
    if counts is not None:
        counts = counts - _ONE[old] if was_open else counts
        inc.counts = counts + _ONE[severity] if is_open else counts
    member.severity, member.open = severity, is_open
    highest = inc.severity
    if highest is not None:
        level, before = (severity if is_open else 0), (old if was_open else 0)
        if level >= highest:
            inc.severity = level
        elif before >= highest:
            inc.severity = None  # the highest one dropped: recomputed for the next view


def _highest_open(inc: _Incident, ctx: Context) -> int:
    """The highest severity among the incident's open members (0 when none is open)."""
    counts = _told(inc, ctx)
    if counts is not None:  # the highest level with a count
        return (counts.bit_length() - 1) // _BITS if counts else 0
    levels = (m.alert.severity for m in inc.members.values() if m.alert.status != STATUS_CLEARED)
    return max(levels, default=0)


def _told(inc: _Incident, ctx: Context) -> int | None:
    """The incident's counts of open members per severity, if they are the rows' own.

    They are what the rule was told of each member, so they match the rows only
    while no other change is being delivered (`ctx.depth` 1: the one in hand,
    already counted); inside a nested delivery an earlier rule may have changed
    a member this rule has not heard of yet, and the caller scans the rows.
    An incident restored from a snapshot without counts is counted here.
    """
    if ctx.depth != 1:
        return None
    if inc.counts is None:
        counts = 0
        for member in inc.members.values():
            member.open = member.alert.status != STATUS_CLEARED
            if member.open:
                counts += _ONE[member.severity]
        inc.counts = counts
    return inc.counts


def build(spec: IncidentRule, env: BuildEnv) -> IncidentOperator:
    return IncidentOperator(spec, env.max_lateness)
