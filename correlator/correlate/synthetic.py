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

    def context(
        self, group: Group, trigger: Alert | None, members: Sequence[Alert], count: int
    ) -> dict[str, Any]:
        ctx: dict[str, Any] = alert_context(trigger) if trigger is not None else {}
        ctx.update(group=group_values(group), count=count, members=list(members), rule=self.rule)
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
        ctx = self.context(group, trigger, members, count)
        if extra:
            ctx.update(extra)

        def render(name: str, default: str) -> str:
            return self._render(name, ctx) or default

        severity = default_severity_of(members, trigger)
        if text := self._render("severity", ctx).strip():
            try:
                severity = parse_severity(text)
            except ValueError:
                severity = MAJOR
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
