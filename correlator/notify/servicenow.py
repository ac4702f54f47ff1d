"""ServiceNow receivers (`servicenow_configs`): one incident per group, through the Table API.

- A firing notification of a group without a ticket creates an incident
  (`POST /api/now/table/<table>`, default `incident`: short description,
  description, urgency and impact from the highest severity, the
  `assignment_group` and `caller_id` configured, and `correlation_id` = the
  group key, so ServiceNow can tell a retry apart). The ticket's number and
  `sys_id` come back into each alert as `labels.ticket` and
  `labels.ticket_sys_id` (journaled, like an operator's action).
- A later firing notification adds work notes to that incident (`PATCH`).
- When every alert is resolved, the incident is resolved (`state` 6, with
  `close_code` and `close_notes`).

Keys: `url` (the instance, `https://example.service-now.com`), `username`,
`password` or `password_file`, `table`, `assignment_group`, `caller_id`,
`close_code` (`Solved (Permanently)`), `timeout`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from correlator.notify.secrets import secret
from correlator.notify.webhook import DeliveryError, payload
from correlator.timeparse import parse_duration

RESOLVED: Final = "6"
# Netcool severity → ServiceNow urgency and impact (1 high … 3 low)
_LEVEL: Final = {5: "1", 4: "1", 3: "2", 2: "3", 1: "3", 0: "3"}

Label = Callable[[str, str, str], Awaitable[None]]


class ServiceNow:
    kind = "servicenow"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        url = secret(config, "url").rstrip("/")
        if not url:
            raise ValueError("servicenow_configs: url (the instance) is required")
        self.endpoint = f"{url}/api/now/table/{config.get('table', 'incident')}"
        self.auth = (secret(config, "username"), secret(config, "password"))
        self.config = config
        self.timeout = parse_duration(config.get("timeout", 10.0))
        self.external_url = external_url
        self.label: Label | None = None  # set by the daemon: the ticket goes back into the alerts

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = payload(notification, self.external_url)
        rows = notification["alerts"]
        sys_id = next(
            (r["labels"]["ticket_sys_id"] for r in rows if r["labels"].get("ticket_sys_id")), None
        )
        text = "\n".join(
            f"{a['status']}: {a['annotations'].get('summary', a['labels']['alertname'])}"
            f" ({a['labels']['node']}, {a['labels']['severity']})"
            for a in body["alerts"]
        )
        if sys_id is None:
            if body["status"] != "firing":
                return  # resolved before a ticket was made: nothing to close
            await self._create(client, body, rows, text)
        elif body["status"] == "firing":
            await self._patch(client, sys_id, {"work_notes": text})
        else:
            fields = {
                "state": RESOLVED,
                "close_notes": text,
                "close_code": str(self.config.get("close_code", "Solved (Permanently)")),
            }
            await self._patch(client, sys_id, fields)

    async def _create(
        self, client: httpx.AsyncClient, body: dict[str, Any], rows: list[dict[str, Any]], text: str
    ) -> None:
        worst = max((r["severity"] for r in rows if r["status"] != "cleared"), default=1)
        names = ", ".join(sorted({a["labels"]["alertname"] for a in body["alerts"]}))
        fields = {
            "short_description": f"[{len(rows)}] {names}"[:160],
            "description": text,
            "urgency": _LEVEL[worst],
            "impact": _LEVEL[worst],
            "correlation_id": body["groupKey"][:100],
            "correlation_display": "correlator",
        }
        for key in ("assignment_group", "caller_id"):
            if self.config.get(key):
                fields[key] = str(self.config[key])
        answer = await self._call(client, "POST", self.endpoint, fields)
        result = answer.json().get("result", {})
        number, sys_id = str(result.get("number", "")), str(result.get("sys_id", ""))
        if self.label is not None and number:
            for row in rows:
                await self.label(str(row["identifier"]), "ticket", number)
                await self.label(str(row["identifier"]), "ticket_sys_id", sys_id)

    async def _patch(self, client: httpx.AsyncClient, sys_id: str, fields: dict[str, str]) -> None:
        await self._call(client, "PATCH", f"{self.endpoint}/{sys_id}", fields)

    async def _call(
        self, client: httpx.AsyncClient, method: str, url: str, fields: dict[str, str]
    ) -> httpx.Response:
        answer = await client.request(
            method,
            url,
            json=fields,
            auth=self.auth,
            timeout=self.timeout,
            headers={"Accept": "application/json"},
        )
        if not 200 <= answer.status_code < 300:
            raise DeliveryError(f"HTTP {answer.status_code} from ServiceNow: {answer.text[:200]}")
        return answer


class PolicyTicket:
    """A policy's `ticket` action: the ServiceNow integration its `servicenow:` keys describe."""

    kind = "servicenow"

    def __init__(self, external_url: str) -> None:
        self.external_url = external_url
        self.label: Label | None = None

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        ticket = ServiceNow(dict(notification["request"]), self.external_url)
        ticket.label = self.label
        await ticket.send(client, key, notification)
