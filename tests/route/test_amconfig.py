"""The rule files' Alertmanager sections as one configuration, for `/api/v2/status`."""

from __future__ import annotations

import yaml

from correlator.route.amconfig import MASK, alertmanager_config


def test_sections_of_every_file_join_and_literal_secrets_are_masked() -> None:
    first = {
        "normalize": [{"name": "x"}],
        "route": {"receiver": "noc", "routes": [{"receiver": "pager"}]},
        "receivers": [
            {"name": "noc", "webhook_configs": [{"url": "http://hook", "http_config": {
                "authorization": {"credentials": "literal"}}}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "${PD_KEY}"}]},
        ],
    }  # fmt: skip
    second = {
        "receivers": [
            {"name": "mail", "email_configs": [{"auth_password": "hunter2", "to": "a@b"}]},
            {
                "name": "snow",
                "servicenow_configs": [
                    {"password_file": "/run/secrets/snow", "url": "https://snow.example"}
                ],
            },
            {"name": "chat", "slack_configs": [{"api_url": "https://hooks/T0/B0/x"}]},
            {"name": "hook", "webhook_configs": [{"headers": {"Authorization": "Bearer x"}}]},
        ],
        "inhibit_rules": [{"source_matchers": ['a="b"'], "target_matchers": ['c="d"']}],
        "mute_time_intervals": [{"name": "night", "time_intervals": [{"times": []}]}],
    }
    config = yaml.safe_load(alertmanager_config([first, second]))
    assert list(config) == ["route", "receivers", "inhibit_rules", "mute_time_intervals"]
    assert config["route"] == first["route"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert list(receivers) == ["noc", "pager", "mail", "snow", "chat", "hook"]
    assert receivers["snow"]["servicenow_configs"][0]["url"] == "https://snow.example"
    assert receivers["chat"]["slack_configs"][0]["api_url"] == MASK
    assert receivers["noc"]["webhook_configs"][0]["url"] == MASK
    auth = receivers["noc"]["webhook_configs"][0]["http_config"]["authorization"]
    assert auth == {"credentials": MASK}
    assert receivers["pager"]["pagerduty_configs"][0]["routing_key"] == "${PD_KEY}"
    assert receivers["mail"]["email_configs"][0] == {"auth_password": MASK, "to": "a@b"}
    assert receivers["snow"]["servicenow_configs"][0]["password_file"] == "/run/secrets/snow"
    assert receivers["hook"]["webhook_configs"][0]["headers"] == {"Authorization": MASK}
    assert alertmanager_config([{"normalize": []}]) == ""
