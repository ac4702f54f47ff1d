"""The integrations of the receivers in the rules (Alertmanager's `receivers:` block).

Delivered today: `webhook_configs`, `pagerduty_configs` (Events API v2),
`slack_configs` (incoming webhooks), `exec_configs` (a runbook command),
`kafka_configs`, `mqtt_configs`, `email_configs` (SMTP) and
`servicenow_configs` (Table API). Other integrations (Opsgenie, ...) are
accepted in the rules, reported once at load, and not delivered; a receiver
with none of its own (Alertmanager's null receiver) receives nothing, as in
Alertmanager.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from correlator.correlate.policy import EXEC, PUBLISH, TICKET, WEBHOOK
from correlator.notify.brokers import KafkaReceiver, MqttReceiver, PolicyPublish
from correlator.notify.deliver import Integration
from correlator.notify.email import Email
from correlator.notify.exec import Exec, PolicyExec
from correlator.notify.pagerduty import PagerDuty
from correlator.notify.servicenow import PolicyTicket, ServiceNow
from correlator.notify.slack import Slack
from correlator.notify.webhook import PolicyWebhook, Webhook

KINDS: dict[str, Callable[[dict[str, Any], str], Integration]] = {
    "webhook_configs": Webhook,
    "pagerduty_configs": PagerDuty,
    "slack_configs": Slack,
    "exec_configs": Exec,
    "kafka_configs": KafkaReceiver,
    "mqtt_configs": MqttReceiver,
    "email_configs": Email,
    "servicenow_configs": ServiceNow,
}


def integrations(
    receivers: Sequence[dict[str, Any]], external_url: str
) -> tuple[dict[str, list[Integration]], list[str]]:
    """Each receiver's deliverable integrations, and what cannot be delivered (warnings)."""
    built: dict[str, list[Integration]] = {}
    skipped: list[str] = []
    for receiver in receivers:
        name = str(receiver.get("name", ""))
        found: list[Integration] = []
        for key, configs in receiver.items():
            if not key.endswith("_configs") or not isinstance(configs, list):
                continue
            kind = KINDS.get(key)
            if kind is None:
                skipped.append(f"receiver {name}: {key} are not delivered yet")
                continue
            for config in configs:
                try:
                    found.append(kind(dict(config), external_url))
                except ValueError as exc:
                    skipped.append(f"receiver {name}: {exc}")
        built[name] = found
    built[WEBHOOK] = [PolicyWebhook()]  # policies' `webhook` and `exec` actions
    built[EXEC] = [PolicyExec(external_url)]
    built[PUBLISH] = [PolicyPublish()]
    built[TICKET] = [PolicyTicket(external_url)]
    return built, skipped
