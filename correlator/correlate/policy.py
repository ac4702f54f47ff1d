"""`policies:` — Netcool Impact's automation: when a row is created, updated, cleared,
acknowledged, escalated (by an escalate rule) or is the root cause of an incident that
opened, changed or closed, and it matches, run actions on it, in order.

- `lookup: {table, key, into}`: the table row under the rendered key (or the
  table's `default:` row) is merged into the alert's `labels` (or
  `annotations`), every column but the key;
- `set: {field: template}`: `severity`, `summary`, `labels.<k>`,
  `annotations.<k>`, rendered over the alert as it stands (after the lookups
  before it);
- `notify: <receiver>`: a notification of the alert to that receiver
  (delivered by the daemon through its outbox, shown by `replay`);
- `webhook: {url, method, headers, body}`: an HTTP request rendered over the
  alert (the body defaults to the alert's JSON), sent through the outbox;
- `exec: {command, timeout, env}`: a runbook run by the daemon, its argument
  list rendered over the alert, its output journaled (see the exec receiver);
- `publish: {kafka: {bootstrap_servers, topic}}` or `{mqtt: {url, topic}}`:
  the alert's JSON to a topic (Kafka keyed by identifier), through the outbox;
- `ticket: {servicenow: {...}}`: a ServiceNow incident for the alert, opened
  on a firing row, noted on an update, resolved on a cleared one (the
  ServiceNow receiver's keys and behaviour; the number comes back as
  `labels.ticket`).

Enrichment is part of the engine's decision: it shows in `replay` and rule
tests, and the routing tree sees the enriched row (policies run before it).
What a policy changed is one `modified` change with a journal note naming it.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from correlator.correlate.base import (
    ACKNOWLEDGED,
    CLEARED,
    CREATED,
    ESCALATED,
    INCIDENT,
    REOPENED,
    UPDATED,
    Context,
    Operator,
)
from correlator.correlate.settable import check_names, get, put, rendered
from correlator.model import NOTIFICATION, Alert, Change
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.paths import alert_context
from correlator.ruleset.schema import Duration, Rule, Strict, TemplateText
from correlator.ruleset.tables import Table
from correlator.ruleset.templates import Template

WEBHOOK: Final = "#webhook"  # the daemon's built-in receiver of policies' webhooks
EXEC: Final = "#exec"  # … of their runbook commands
PUBLISH: Final = "#publish"  # … of what they publish to Kafka or MQTT
TICKET: Final = "#ticket"  # … and of their tickets (ServiceNow)

TRIGGERS: Final = {
    "create": (CREATED, REOPENED),  # a reopened row is a new episode
    "update": (UPDATED,),
    "clear": (CLEARED,),
    "acknowledge": (ACKNOWLEDGED,),
    "escalate": (ESCALATED,),  # an escalate rule escalated the row
    "incident": (INCIDENT,),  # an incident opened, changed or closed: its root-cause row
}


class LookupSpec(Strict):
    table: str
    key: TemplateText
    into: Literal["labels", "annotations"] = "labels"


class WebhookSpec(Strict):
    """An HTTP request rendered over the alert (the body defaults to the alert's JSON)."""

    url: TemplateText
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, TemplateText] = {}
    body: TemplateText | None = None


class ExecSpec(Strict):
    """A runbook command: an argument list (each rendered over the alert, never a shell)."""

    command: list[TemplateText] = Field(min_length=1)
    timeout: Duration = 30.0
    env: dict[str, str] = {}


class PublishSpec(Strict):
    """The alert's JSON to a Kafka topic (keyed by identifier) or an MQTT topic (QoS 1)."""

    kafka: dict[str, str] | None = None  # bootstrap_servers, topic
    mqtt: dict[str, str] | None = None  # url, topic

    @model_validator(mode="after")
    def _one(self) -> PublishSpec:
        target = self.kafka if self.kafka is not None else self.mqtt
        if (self.kafka is None) == (self.mqtt is None) or not target or "topic" not in target:
            raise ValueError("publish needs exactly one of kafka and mqtt, with a topic")
        return self


class ActionSpec(Strict):
    """One action: exactly one of its keys."""

    lookup: LookupSpec | None = None
    set_: dict[str, TemplateText] | None = Field(None, alias="set")
    notify: str | None = Field(None, min_length=1)
    webhook: WebhookSpec | None = None
    exec_: ExecSpec | None = Field(None, alias="exec")
    publish: PublishSpec | None = None
    # ServiceNow: `{servicenow: {url, username, password_file, ...}}` (the receiver's keys)
    ticket: dict[str, dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one(self) -> ActionSpec:
        keys = ("lookup", "set_", "notify", "webhook", "exec_", "publish", "ticket")
        given = [k for k in keys if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an action is exactly one of lookup, set, notify, webhook, exec, publish, ticket"
            )
        if self.ticket is not None and set(self.ticket) != {"servicenow"}:
            raise ValueError("ticket takes servicenow: {url, username, password, ...}")
        return self

    @field_validator("set_")
    @classmethod
    def _fields(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            check_names(value)
        return value


class PolicySpec(Rule):
    on: list[Literal["create", "update", "clear", "acknowledge", "escalate", "incident"]] = Field(
        min_length=1
    )
    actions: list[ActionSpec] = Field(min_length=1)


class PolicyOperator(Operator):
    kind = "policy"

    def __init__(self, spec: PolicySpec, tables: dict[str, Table]) -> None:
        # a table's rows are part of what the rule is: a changed table is a changed rule
        content = tuple(
            sorted((n, repr(sorted(t.rows.items())), repr(t.default)) for n, t in tables.items())
        )
        super().__init__(spec.name, (spec, content))
        self.transitions = frozenset(t for trigger in spec.on for t in TRIGGERS[trigger])
        when = when_alert(spec.when)
        matchers = [m.test for m in compile_matchers(spec.match)]
        self._matches = all_of([*matchers, when] if when is not None else matchers)
        self._actions: list[tuple[str, Any]] = []
        for action in spec.actions:
            if action.lookup is not None:
                lookup = action.lookup
                step = (tables[lookup.table], Template(lookup.key), lookup.into)
                self._actions.append(("lookup", step))
            elif action.set_ is not None:
                templates = {name: Template(text) for name, text in action.set_.items()}
                self._actions.append(("set", templates))
            elif action.ticket is not None:
                self._actions.append(("ticket", dict(action.ticket["servicenow"])))
            elif action.publish is not None:
                where = action.publish
                target = {"kafka": where.kafka} if where.kafka is not None else {"mqtt": where.mqtt}
                self._actions.append(("publish", target))
            elif action.exec_ is not None:
                run = action.exec_
                argv = [Template(part) for part in run.command]
                self._actions.append(("exec", (argv, run.timeout, dict(run.env))))
            elif action.webhook is not None:
                hook = action.webhook
                self._actions.append(
                    (
                        "webhook",
                        (
                            hook.method,
                            Template(hook.url),
                            {name: Template(text) for name, text in hook.headers.items()},
                            Template(hook.body) if hook.body is not None else None,
                        ),
                    )
                )
            else:
                self._actions.append(("notify", action.notify))

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        if not self._matches(alert):
            return
        # a closing incident's root cause may have been deleted since it cleared: its
        # receivers still hear of the close, with the row as it was last, but nothing
        # is enriched or noted on a row that is gone (no change is published for it)
        live = ctx.table.get(alert.identifier) is alert
        changed: list[str] = []
        for what, step in self._actions:
            if what == "lookup":
                if live:
                    changed += self._lookup(alert, *step)
            elif what == "set":
                if live:
                    changed += self._set(alert, step, now, ctx)
            elif what == "ticket":
                ctx.emit(Change(now, NOTIFICATION, receiver=TICKET, alerts=[alert], request=step))
                changed.append("ticket " + ("resolved" if alert.status == CLEARED else "updated"))
            elif what == "publish":
                ctx.emit(Change(now, NOTIFICATION, receiver=PUBLISH, alerts=[alert], request=step))
                ((kind, target),) = step.items()
                changed.append(f"published to {kind} {target['topic']}")
            elif what == "exec":
                argv, timeout, env = step
                context = alert_context(alert)
                command = [part.render(context) for part in argv]
                request = {"command": command, "timeout": timeout, "env": env}
                ctx.emit(Change(now, NOTIFICATION, receiver=EXEC, alerts=[alert], request=request))
                changed.append(f"ran {command[0]}")
            elif what == "webhook":
                request = _request(alert, *step)
                ctx.emit(
                    Change(now, NOTIFICATION, receiver=WEBHOOK, alerts=[alert], request=request)
                )
                changed.append(f"called {request['url']}")
            else:
                ctx.emit(Change(now, NOTIFICATION, receiver=step, alerts=[alert]))
                changed.append(f"notified {step}")
        if changed and live:
            ctx.modify(alert, now, self.name, f"policy {self.name}: " + ", ".join(changed))

    def _lookup(self, alert: Alert, table: Table, key: Template, into: str) -> list[str]:
        value = key.render(alert_context(alert))
        row = table.get(value)
        if row is None:
            return [f"no {value!r} in the table"]
        target = alert.labels if into == "labels" else alert.annotations
        changed = [f"{into}.{k}={v}" for k, v in row.items() if target.get(k) != v]
        target.update(row)
        return changed or [f"looked up {value!r}"]

    def _set(
        self, alert: Alert, templates: dict[str, Template], now: float, ctx: Context
    ) -> list[str]:
        changed = []
        bad = partial(ctx.count, "bad_value", self.name)
        for name, value in rendered(alert, templates, now, self.name, bad):
            if get(alert, name) != value:
                put(alert, name, value)
                changed.append(f"{name}={value}")
        return changed


def _request(
    alert: Alert,
    method: str,
    url: Template,
    headers: dict[str, Template],
    body: Template | None,
) -> dict[str, Any]:
    """A policy's webhook rendered over the alert as it stands."""
    context = alert_context(alert)
    return {
        "method": method,
        "url": url.render(context),
        "headers": {name: value.render(context) for name, value in headers.items()},
        "body": body.render(context)
        if body is not None
        else orjson.dumps(alert.to_dict()).decode(),
    }
