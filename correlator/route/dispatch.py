"""Notifications through the routing tree, timed as Alertmanager times them.

Every change of a row routes it through the tree. Each route it ends at puts
it in an aggregation group: the route plus the values of the route's
`group_by` labels (every label with `...`). A new group is flushed after
`group_wait`, then every `group_interval` while it holds alerts. A flush
sends one notification (a `notification` change: the receiver and the
alerts) when Alertmanager's notification log would: an alert fires that the
last notification did not carry, everything resolved since the last one, a
resolved alert is new and the receiver sends resolved ones, or
`repeat_interval` has passed. Firing means open or acknowledged and not
suppressed (inhibited, in maintenance, silenced); a resolved alert is a
cleared one, left out when its `send_resolved` annotation is "false"
(maintenance) or its receiver does not send resolved alerts. A route's mute
time intervals (or its active ones, outside them) skip the flush. Resolved
alerts leave the group at the next flush (muted or not, as in Alertmanager);
an empty group is dropped.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from correlator.correlate.base import (
    ACKNOWLEDGED,
    CLEARED,
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    SUPPRESSED,
    UNSUPPRESSED,
    UPDATED,
    Context,
    Operator,
)
from correlator.model import CLEARED as CLEARED_STATUS
from correlator.model import NOTIFICATION, Alert, Change
from correlator.route.intervals import TimeIntervals
from correlator.route.tree import Route
from correlator.ruleset.labelview import label_value

NAME: Final = "route"  # the dispatcher's name among the engine's rules (reserved)

# Alertmanager's default `send_resolved` per integration; a receiver sends resolved
# alerts when any of its integrations does
_SENDS_RESOLVED: Final = {"webhook": True, "pagerduty": True, "opsgenie": True, "slack": False,
                          "email": False, "servicenow": True, "kafka": True, "mqtt": True,
                          "exec": True}  # fmt: skip


def sends_resolved(receiver: Mapping[str, Any]) -> bool:
    """Whether a receiver wants resolved alerts (a receiver with no integration: yes)."""
    integrations = [
        (key.removesuffix("_configs"), config)
        for key, configs in receiver.items()
        if key.endswith("_configs") and isinstance(configs, list)
        for config in configs
    ]
    if not integrations:
        return True
    return any(
        bool(config.get("send_resolved", _SENDS_RESOLVED.get(kind, True)))
        if isinstance(config, dict)
        else _SENDS_RESOLVED.get(kind, True)
        for kind, config in integrations
    )


@dataclass(slots=True, eq=False)
class _Group:
    """One aggregation group: its alerts and what its last notification carried."""

    key: str
    route: str  # the route's id
    labels: dict[str, str]  # the group labels
    alerts: dict[str, Alert] = field(default_factory=dict)
    due: float = 0.0  # the next flush
    firing: list[str] = field(default_factory=list)  # sent as firing last time
    resolved: list[str] = field(default_factory=list)  # sent as resolved last time
    sent_at: float | None = None


class Dispatcher(Operator):
    """The routing tree as a rule of the engine: groups, timers, notifications."""

    kind: ClassVar[str] = "route"
    transitions = frozenset(
        (
            CREATED,
            UPDATED,
            REOPENED,
            CLEARED,
            DELETED,
            ACKNOWLEDGED,
            MODIFIED,
            SUPPRESSED,
            UNSUPPRESSED,
        )
    )
    state = ("_groups", "_of")
    state_types = (_Group,)

    def __init__(
        self, spec: Any, tree: Route, resolved: Mapping[str, bool], intervals: TimeIntervals
    ) -> None:
        super().__init__(NAME, spec)
        self._routes = {route.id(): route for route in tree.walk()}
        self._tree = tree
        self._sends_resolved = dict(resolved)
        self._intervals = intervals
        self._groups: dict[str, _Group] = {}
        self._of: dict[str, list[str]] = {}  # identifier → keys of the groups holding it

    def size(self) -> int:
        return len(self._groups)

    def groups(self) -> list[tuple[dict[str, str], str, list[Alert]]]:
        """Every aggregation group: its labels, its receiver and its alerts (the API's view)."""
        return [
            (dict(g.labels), self._routes[g.route].opts.receiver, list(g.alerts.values()))
            for g in self._groups.values()
        ]

    def adopt(self, old: Operator) -> None:
        """An edited tree keeps the groups of the routes it still has (same route id):
        what they sent is remembered, so an edit does not notify everything again."""
        if isinstance(old, Dispatcher):
            for key, group in old._groups.items():
                if group.route in self._routes:
                    self._groups[key] = group

    def start(self, now: float, ctx: Context) -> None:
        """Loaded with alerts open: they are grouped (new groups wait first)."""
        for group in self._groups.values():  # adopted: their timers were the old rule's
            group.due = max(group.due, now)
            ctx.schedule(group.due, self, group.key)
        for alert in list(ctx.table.rows.values()):
            if alert.status != CLEARED_STATUS:
                self.on_transition(CREATED, alert, now, ctx)
        for group in self._groups.values():  # an open alert the edit routes elsewhere leaves
            for ident, alert in list(group.alerts.items()):
                if alert.status != CLEARED_STATUS and group.key not in self._of.get(ident, ()):
                    del group.alerts[ident]

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        held = self._of.get(ident, [])
        if transition == DELETED:
            return  # a deleted row was cleared first: its group sends it as resolved
        keys = []
        for route in self._tree.match(alert):
            labels = self._group_labels(route, alert)
            key = f"{route.id()}:{sorted(labels.items())}"
            keys.append(key)
            group = self._groups.get(key)
            if group is None:
                if alert.status == CLEARED_STATUS:
                    continue  # a resolution never opens a group
                group = self._groups[key] = _Group(key, route.id(), labels)
                group.due = now + route.opts.group_wait
                ctx.schedule(group.due, self, key)
            group.alerts[ident] = alert
        for key in held:
            if key not in keys:  # its labels moved it: it leaves that group
                group = self._groups.get(key)
                if group is not None:
                    group.alerts.pop(ident, None)
        if keys:
            self._of[ident] = keys
        else:
            self._of.pop(ident, None)

    def _group_labels(self, route: Route, alert: Alert) -> dict[str, str]:
        if route.opts.group_by_all:
            return {"alertname": label_value(alert, "alertname"), **alert.labels}
        return {name: label_value(alert, name) for name in sorted(route.opts.group_by)}

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        group = self._groups.get(str(key))
        if group is None or group.due != now:
            return
        route = self._routes[group.route]
        if not self._muted(route, now):
            self._flush(group, route, now, ctx)
        for ident, alert in list(group.alerts.items()):  # resolved, and flushed: gone
            if alert.status == CLEARED_STATUS:
                del group.alerts[ident]
                self._leave(ident, group.key)
        if not group.alerts:
            del self._groups[group.key]
            return
        group.due = now + route.opts.group_interval
        ctx.schedule(group.due, self, group.key)

    def _leave(self, ident: str, key: str) -> None:
        keys = self._of.get(ident)
        if keys is not None and key in keys:
            keys.remove(key)
            if not keys:
                del self._of[ident]

    def _muted(self, route: Route, now: float) -> bool:
        opts = route.opts
        if any(self._intervals.active(name, now) for name in opts.mute_time_intervals):
            return True
        active = opts.active_time_intervals
        return bool(active) and not any(self._intervals.active(name, now) for name in active)

    def _wants_resolved(self, route: Route, alert: Alert) -> bool:
        return (
            self._sends_resolved.get(route.opts.receiver, True)
            and alert.annotations.get("send_resolved") != "false"
        )

    def _flush(self, group: _Group, route: Route, now: float, ctx: Context) -> None:
        firing = [
            a for a in group.alerts.values()
            if a.status != CLEARED_STATUS and a.suppressed_by is None
        ]  # fmt: skip
        resolved = [
            a for a in group.alerts.values()
            if a.status == CLEARED_STATUS and self._wants_resolved(route, a)
        ]  # fmt: skip
        firing_ids = [a.identifier for a in firing]
        resolved_ids = [a.identifier for a in resolved]
        if not self._needs_update(group, route, firing_ids, resolved_ids, now):
            return
        if firing or resolved:  # all resolved, to a receiver that is not told: nothing to send
            receiver = route.opts.receiver
            alerts = [*firing, *resolved]
            group_view = {"key": group.key, "labels": dict(group.labels)}
            ctx.emit(Change(now, NOTIFICATION, receiver=receiver, alerts=alerts, group=group_view))
        group.firing, group.resolved, group.sent_at = firing_ids, resolved_ids, now

    def _needs_update(
        self, group: _Group, route: Route, firing: list[str], resolved: list[str], now: float
    ) -> bool:
        """Alertmanager's notification log: is this flush worth a notification?"""
        if group.sent_at is None:
            return bool(firing)
        if not set(firing) <= set(group.firing):
            return True
        if not firing:
            return bool(group.firing)  # all resolved since: tell it (once)
        if resolved and not set(resolved) <= set(group.resolved):
            return True
        return group.sent_at <= now - route.opts.repeat_interval
