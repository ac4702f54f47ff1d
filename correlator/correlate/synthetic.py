"""The alerts correlation rules raise: identifier, fields and template context.

Identifier: `correlator:<rule>` then `:<value>` per group value, unless the
`alert:` sets `identifier`. Severity: the `alert:`'s, else the highest among
the members if that is at least 1 (indeterminate), else major. Templates see the triggering alert's fields,
`group` (each value under its name as written and under its last dotted
segment), `count`, `members` (the matching alerts) and `rule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from correlator.model import PROBLEM, Alert, parse_severity
from correlator.ruleset.paths import alert_context, last_segment
from correlator.ruleset.schema import AlertSpec
from correlator.ruleset.templates import Template, compile_map

Group = Sequence[tuple[str, Any]]

INDETERMINATE: Final = 1
MAJOR: Final = 4
_OWN_NAMES: Final = frozenset(("group", "count", "members", "rule"))  # not the trigger's


def default_severity_of(members: Sequence[Alert], trigger: Alert | None) -> int:
    """The severity of a synthetic alert whose `alert:` sets none.

    The highest among the members (the trigger's when there are none), but
    never 0: an open alert is not "clear", and the events that raise one (job
    starts, restarts, heartbeats) are often severity 0 or unset. With no
    member of severity 1 or more the default is major, as for `absence`.
    """
    severities = [m.severity for m in members] or ([trigger.severity] if trigger else [])
    top = max(severities, default=0)
    return top if top >= INDETERMINATE else MAJOR


def group_values(group: Group) -> dict[str, Any]:
    """`group` as templates see it: each value under its name and its last segment."""
    values: dict[str, Any] = {}
    for name, value in group:
        values[name] = value
        values.setdefault(last_segment(name), value)
    return values


def group_key(group: Group) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for _, v in group)


class SyntheticAlert:
    """A compiled `alert:` section."""

    def __init__(self, rule: str, spec: AlertSpec | None) -> None:
        spec = spec or AlertSpec()
        self.rule = rule
        self._single = {
            name: Template(value)
            for name in ("identifier", "node", "alertgroup", "alertkey", "severity", "summary")
            if (value := getattr(spec, name)) is not None
        }
        self._labels = compile_map(spec.labels)
        self._annotations = compile_map(spec.annotations)
        self.expire_after = spec.expire_after
        # what the templates read: a storm's alert is raised again per member, and the
        # trigger's fields (a dict of every field) and the members are seldom among it
        templates = [*self._single.values(), *self._labels.values(), *self._annotations.values()]
        reads: frozenset[str] | None = frozenset()
        for template in templates:
            reads = None if reads is None or template.names is None else reads | template.names
        self._trigger_read = reads is None or not reads <= _OWN_NAMES
        self._members_read = reads is None or "members" in reads

    def context(
        self,
        group: Group,
        trigger: Alert | None,
        members: Sequence[Alert],
        count: int,
        *,
        whole: bool = True,
    ) -> dict[str, Any]:
        """What templates see; not `whole`: only what this alert's own templates read."""
        trigger_read = whole or self._trigger_read
        ctx: dict[str, Any] = alert_context(trigger) if trigger is not None and trigger_read else {}
        ctx.update(
            group=group_values(group),
            count=count,
            members=list(members) if whole or self._members_read else [],
            rule=self.rule,
        )
        return ctx

    def identifier(self, group: Group, ctx: dict[str, Any]) -> str:
        return self._render("identifier", ctx) or ":".join(
            ("correlator", self.rule, *group_key(group))
        )

    def _render(self, name: str, ctx: dict[str, Any]) -> str:
        """The `alert:` value, or "" when it sets none or renders empty (the default applies)."""
        template = self._single.get(name)
        return "" if template is None else template.render(ctx)

    def build(
        self,
        group: Group,
        now: float,
        *,
        trigger: Alert | None = None,
        members: Sequence[Alert] = (),
        count: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> Alert:
        """A new occurrence of the synthetic alert (not yet in the table)."""
        ctx = self.context(group, trigger, members, count, whole=False)
        if extra:
            ctx.update(extra)

        def render(name: str, default: str) -> str:
            return self._render(name, ctx) or default

        if text := self._render("severity", ctx).strip():
            try:
                severity = parse_severity(text)
            except ValueError:
                severity = MAJOR
        else:
            severity = default_severity_of(members, trigger)
        alert = Alert(  # positional, as in build_alert: raised again on every count change
            self.identifier(group, ctx),
            render("node", "correlator"),
            render("alertgroup", self.rule),
            severity,
            PROBLEM,
            render("summary", f"{self.rule}: {count} events"),
            render("alertkey", ":".join(group_key(group))),
            "correlator",  # manager
            self.rule,  # agent
            {k: t.render(ctx) for k, t in self._labels.items()},
            {k: t.render(ctx) for k, t in self._annotations.items()},
            0.0,  # first_occurrence: the table sets it
            now,  # last_occurrence
        )
        alert.expire_after = self.expire_after
        return alert
