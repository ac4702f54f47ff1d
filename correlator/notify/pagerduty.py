"""PagerDuty's Events API v2 (`pagerduty_configs`): one event per notification.

The event triggers while any alert of the group fires and resolves once all
are resolved; its `dedup_key` is derived from the group key, so PagerDuty
keeps one incident per group, as Alertmanager's integration does. `summary`
names the alerts, `severity` is the highest among them in PagerDuty's words,
`custom_details` lists them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import httpx

from correlator.model import SEVERITY_NAMES
from correlator.notify.secrets import secret
from correlator.notify.webhook import payload, post_json
from correlator.timeparse import parse_duration

EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
# Netcool severities in PagerDuty's four words
_SEVERITY: Final = {5: "critical", 4: "error", 3: "warning", 2: "warning", 1: "info", 0: "info"}


def event(notification: dict[str, Any], routing_key: str, external_url: str) -> dict[str, Any]:
    body = payload(notification, external_url)
    rows = notification["alerts"]
    firing = body["status"] == "firing"
    worst = max((row["severity"] for row in rows if row["status"] != "cleared"), default=0)
    names = sorted({row["alertgroup"] for row in rows})
    summary = f"[{body['status'].upper()}:{len(rows)}] {', '.join(names)}"
    if len(rows) == 1 and rows[0]["summary"]:
        summary += f": {rows[0]['summary']}"
    return {
        "routing_key": routing_key,
        "event_action": "trigger" if firing else "resolve",
        "dedup_key": hashlib.sha256(body["groupKey"].encode()).hexdigest(),
        "payload": {
            "summary": summary[:1024],
            "source": rows[0]["node"] if rows else "correlator",
            "severity": _SEVERITY[worst],
            "custom_details": {
                "firing": [a["labels"] for a in body["alerts"] if a["status"] == "firing"],
                "resolved": [a["labels"] for a in body["alerts"] if a["status"] == "resolved"],
                "severity": SEVERITY_NAMES[worst],
            },
        },
        "client": "correlator",
        "client_url": external_url,
    }


class PagerDuty:
    kind = "pagerduty"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        self.routing_key = secret(config, "routing_key")
        if not self.routing_key:
            raise ValueError("pagerduty_configs: routing_key (or routing_key_file) is required")
        self.url = secret(config, "url") or EVENTS_URL
        self.timeout = parse_duration(config.get("timeout", 10.0))
        self.external_url = external_url

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = event(notification, self.routing_key, self.external_url)
        await post_json(client, self.url, body, self.timeout, what="PagerDuty")
