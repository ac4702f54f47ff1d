"""E-mail receivers (`email_configs`), over SMTP with aiosmtplib.

Alertmanager's keys: `to`, `from`, `smarthost` (`host:port`), `auth_username`,
`auth_password` (or `auth_password_file`), `require_tls` (true: STARTTLS, and
refuse a server without it), `tls_config` (`ca_file`, `insecure_skip_verify`),
`headers` (extra ones; `Subject` overrides). The message is plain text: a
subject with the status and alert names, then one paragraph per alert
(summary, node, severity, labels, since when); the webhook payload's JSON is
attached for tools that read mail.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import orjson

from correlator.notify.secrets import secret
from correlator.notify.webhook import payload
from correlator.timeparse import parse_duration


def message(
    notification: dict[str, Any], config: dict[str, Any], external_url: str
) -> EmailMessage:
    body = payload(notification, external_url)
    names = ", ".join(sorted({a["labels"]["alertname"] for a in body["alerts"]}))
    mail = EmailMessage()
    mail["Subject"] = f"[{body['status'].upper()}:{len(body['alerts'])}] {names}"
    mail["From"] = str(config["from"])
    mail["To"] = str(config["to"])
    for name, value in (config.get("headers") or {}).items():
        del mail[str(name)]
        mail[str(name)] = str(value)
    paragraphs = []
    for alert in body["alerts"]:
        labels = alert["labels"]
        others = ", ".join(
            f"{k}={v}"
            for k, v in sorted(labels.items())
            if k not in ("alertname", "node", "severity")
        )
        paragraphs.append(
            f"{alert['annotations'].get('summary', labels['alertname'])}\n"
            f"  {alert['status']} · {labels['severity']} · {labels['node']}"
            f" · since {alert['startsAt']}\n  {others}".rstrip()
        )
    if external_url:
        paragraphs.append(f"correlator: {external_url}")
    mail.set_content("\n\n".join(paragraphs) + "\n")
    mail.add_attachment(
        orjson.dumps(body),
        maintype="application",
        subtype="json",
        filename="alertmanager-webhook.json",
    )
    return mail


class Email:
    kind = "email"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        for key in ("to", "from", "smarthost"):
            if not config.get(key):
                raise ValueError(f"email_configs: {key} is required")
        host, _, port = str(config["smarthost"]).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("email_configs: smarthost must be host:port")
        self.host, self.port = host, int(port)
        self.config = config
        self.username = secret(config, "auth_username")
        self.password = secret(config, "auth_password")
        self.require_tls = bool(config.get("require_tls", True))
        tls = config.get("tls_config") or {}
        self.context = ssl.create_default_context(cafile=tls.get("ca_file"))
        if tls.get("insecure_skip_verify"):
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.timeout = parse_duration(config.get("timeout", 10.0))
        self.external_url = external_url

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        mail = message(notification, self.config, self.external_url)
        mail["X-Correlator-Action"] = key
        await aiosmtplib.send(
            mail,
            hostname=self.host,
            port=self.port,
            start_tls=True if self.require_tls else None,
            tls_context=self.context,
            username=self.username or None,
            password=self.password or None,
            timeout=self.timeout,
        )
