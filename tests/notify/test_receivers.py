"""Receivers in the rules: secrets from the environment or files, what is delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.notify.receivers import integrations
from correlator.notify.secrets import secret
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


def test_webhooks_are_delivered_and_other_integrations_reported() -> None:
    built, skipped = integrations(
        [
            {"name": "hook", "webhook_configs": [{"url": "http://a"}, {"url": "http://b"}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "k"}]},
            {"name": "blackhole"},
            {"name": "broken", "webhook_configs": [{"max_alerts": 3}]},
        ],
        "http://correlator",
    )
    assert [w.url for w in built["hook"] if isinstance(w, Webhook)] == ["http://a", "http://b"]
    assert built["pager"] == built["blackhole"] == built["broken"] == []
    assert skipped == [
        "receiver pager: pagerduty_configs are not delivered yet",
        "receiver broken: webhook_configs: url (or url_file) is required",
    ]
