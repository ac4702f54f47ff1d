"""Receivers in the rules: secrets from the environment or files, what is delivered."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from correlator.notify.pagerduty import event
from correlator.notify.receivers import integrations
from correlator.notify.secrets import secret
from correlator.notify.slack import message
from correlator.notify.webhook import Webhook


def test_secrets_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_HOST", "hooks.example")
    (tmp_path / "url").write_text("https://from-a-file.example/x\n")
    assert secret({"url": "https://${HOOK_HOST}/a"}, "url") == "https://hooks.example/a"
    assert secret({"url_file": str(tmp_path / "url")}, "url") == "https://from-a-file.example/x"
    assert secret({}, "url") == ""
    with pytest.raises(ValueError, match="NOPE is not set"):
        secret({"url": "${NOPE}"}, "url")
    with pytest.raises(ValueError, match="url_file"):
        secret({"url_file": str(tmp_path / "missing")}, "url")


def test_what_is_delivered_and_what_is_reported() -> None:
    built, skipped = integrations(
        [
            {"name": "hook", "webhook_configs": [{"url": "http://a"}, {"url": "http://b"}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "k"}]},
            {"name": "mail", "email_configs": [{"to": "noc@example.com"}]},
            {"name": "ticket", "servicenow_configs": [{"instance": "x"}]},
            {"name": "genie", "opsgenie_configs": [{"api_key": "x"}]},
            {"name": "blackhole"},
            {"name": "broken", "webhook_configs": [{"max_alerts": 3}]},
        ],
        "http://correlator",
    )
    assert [w.url for w in built["hook"] if isinstance(w, Webhook)] == ["http://a", "http://b"]
    assert [i.kind for i in built["pager"]] == ["pagerduty"]
    assert built["mail"] == built["ticket"] == built["genie"] == []
    assert built["blackhole"] == built["broken"] == []
    assert skipped == [
        "receiver mail: email_configs: from is required",
        "receiver ticket: servicenow_configs: url (the instance) is required",
        "receiver genie: opsgenie_configs are not delivered yet",
        "receiver broken: webhook_configs: url (or url_file) is required",
    ]


ROWS: list[dict[str, Any]] = [
    {
        "identifier": "db1:Disk::",
        "node": "db1",
        "alertgroup": "Disk",
        "severity": 5,
        "summary": "disk 99% full",
        "status": "open",
        "labels": {"team": "dba"},
        "annotations": {},
        "first_occurrence": 1767225600.0,
        "state_change": 1767225600.0,
    },
]


def test_pagerduty_events_trigger_then_resolve_one_incident() -> None:
    notification = {"receiver": "pager", "group": {"key": "g1", "labels": {}}, "alerts": ROWS}
    trigger = event(notification, "R0UTING", "http://correlator")
    assert trigger == {
        "routing_key": "R0UTING",
        "event_action": "trigger",
        "dedup_key": hashlib.sha256(b"g1").hexdigest(),
        "payload": {
            "summary": "[FIRING:1] Disk: disk 99% full",
            "source": "db1",
            "severity": "critical",
            "custom_details": {
                "firing": [
                    {"alertname": "Disk", "node": "db1", "severity": "critical", "team": "dba"}
                ],
                "resolved": [],
                "severity": "critical",
            },
        },
        "client": "correlator",
        "client_url": "http://correlator",
    }
    cleared = [{**ROWS[0], "status": "cleared", "severity": 0}]
    resolve = event({**notification, "alerts": cleared}, "R0UTING", "")
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])


def test_slack_messages_are_block_kit() -> None:
    notification = {"receiver": "chat", "alerts": ROWS}
    sent = message(notification, {"channel": "#dba"}, "")
    assert sent == {
        "text": "[FIRING:1] Disk",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "[FIRING:1] Disk"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*disk 99% full*\nfiring · critical · `db1`\n`team=dba`",
                },
            },
        ],
        "channel": "#dba",
    }
