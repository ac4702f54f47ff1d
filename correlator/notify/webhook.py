"""Alertmanager's webhook receiver (`webhook_configs`), its JSON payload version 4.

Anything that takes Alertmanager's webhooks takes ours: the same keys, an
alert's labels being its label view (labels, plus `alertname`, `node` and
`severity` unless it carries them), `summary` among its annotations, times in
RFC 3339 (`endsAt` of a firing alert is Alertmanager's zero time), and a
`fingerprint` that is stable for the row. Each request also carries an
`Idempotency-Key` header: the same for every retry of one notification.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import orjson

from correlator.model import SEVERITY_NAMES
from correlator.notify.secrets import secret
from correlator.timeparse import parse_duration

ZERO_TIME: Final = "0001-01-01T00:00:00Z"


def rfc3339(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_item(row: dict[str, Any]) -> dict[str, Any]:
    """One alert of the payload, from a row as `correlator replay` prints it."""
    resolved = row["status"] == "cleared"
    labels = {
        "alertname": row["alertgroup"],
        "node": row["node"],
        "severity": SEVERITY_NAMES[row["severity"]],
        **row["labels"],
    }
    annotations = dict(row["annotations"])
    if row["summary"]:
        annotations.setdefault("summary", row["summary"])
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(row["first_occurrence"]),
        "endsAt": rfc3339(row["state_change"]) if resolved else ZERO_TIME,
        "generatorURL": annotations.get("generatorURL", ""),
        "fingerprint": hashlib.sha256(row["identifier"].encode()).hexdigest()[:16],
    }


def payload(notification: dict[str, Any], external_url: str, max_alerts: int = 0) -> dict[str, Any]:
    """The webhook body for one notification (`max_alerts` 0: all of them)."""
    items = [alert_item(row) for row in notification["alerts"]]
    group = notification.get("group") or {}
    receiver = str(notification["receiver"])
    key = group.get("key") or f"{receiver}:" + ",".join(
        r["identifier"] for r in notification["alerts"]
    )
    kept = items[:max_alerts] if max_alerts else items
    return {
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": len(items) - len(kept),
        "status": "firing" if any(i["status"] == "firing" for i in items) else "resolved",
        "receiver": receiver,
        "groupLabels": dict(group.get("labels") or {}),
        "commonLabels": _common([i["labels"] for i in items]),
        "commonAnnotations": _common([i["annotations"] for i in items]),
        "externalURL": external_url,
        "alerts": kept,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


class Webhook:
    """One `webhook_configs` entry: POST the payload; any answer but 2xx is a failure."""

    kind = "webhook"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        url = secret(config, "url")
        if not url:
            raise ValueError("webhook_configs: url (or url_file) is required")
        self.url = url
        self.max_alerts = int(config.get("max_alerts", 0))
        self.timeout = parse_duration(config.get("timeout", 10.0))
        self.external_url = external_url

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = payload(notification, self.external_url, self.max_alerts)
        await post_json(client, self.url, body, self.timeout, {"Idempotency-Key": key})


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    seconds: float,
    headers: dict[str, str] | None = None,
    what: str = "",
) -> None:
    """POST a JSON body; any answer but 2xx raises DeliveryError (the action is retried)."""
    answer = await client.post(
        url,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=seconds,
    )
    if not 200 <= answer.status_code < 300:
        where = what or url
        raise DeliveryError(f"HTTP {answer.status_code} from {where}")


class DeliveryError(Exception):
    """A receiver refused or failed a notification (retried)."""


class PolicyWebhook:
    """A policy's `webhook` action: the request the engine rendered, sent as it is."""

    kind = "webhook"

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        request = notification["request"]
        answer = await client.request(
            request["method"],
            request["url"],
            content=str(request["body"]).encode(),
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                **request["headers"],
            },
            timeout=self.timeout,
        )
        if not 200 <= answer.status_code < 300:
            raise DeliveryError(f"HTTP {answer.status_code} from {request['url']}")
