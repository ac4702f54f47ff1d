"""Slack incoming webhooks (`slack_configs`), the message in Block Kit.

A header with the status and the alert names, one section per alert (its
summary, node, severity and labels), and the plain `text` Slack shows in
notifications. `channel` and `username` are passed on when set.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from correlator.notify.secrets import secret
from correlator.notify.webhook import payload, post_json
from correlator.timeparse import parse_duration

MAX_SECTIONS: Final = 40  # Slack takes 50 blocks per message


def message(
    notification: dict[str, Any], config: dict[str, Any], external_url: str
) -> dict[str, Any]:
    body = payload(notification, external_url)
    names = ", ".join(sorted({a["labels"]["alertname"] for a in body["alerts"]}))
    title = f"[{body['status'].upper()}:{len(body['alerts'])}] {names}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    for alert in body["alerts"][:MAX_SECTIONS]:
        labels = alert["labels"]
        lines = [
            f"*{alert['annotations'].get('summary', labels['alertname'])}*",
            f"{alert['status']} · {labels['severity']} · `{labels['node']}`",
            " ".join(
                f"`{k}={v}`"
                for k, v in sorted(labels.items())
                if k not in ("alertname", "severity", "node")
            ),
        ]
        text = "\n".join(line for line in lines if line)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if len(body["alerts"]) > MAX_SECTIONS:
        more = len(body["alerts"]) - MAX_SECTIONS
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]}
        )
    out: dict[str, Any] = {"text": title, "blocks": blocks}
    for key in ("channel", "username"):
        if config.get(key):
            out[key] = str(config[key])
    return out


class Slack:
    kind = "slack"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        self.url = secret(config, "api_url")
        if not self.url:
            raise ValueError("slack_configs: api_url (or api_url_file) is required")
        self.config = config
        self.timeout = parse_duration(config.get("timeout", 10.0))
        self.external_url = external_url

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = message(notification, self.config, self.external_url)
        await post_json(client, self.url, body, self.timeout, what="Slack")
