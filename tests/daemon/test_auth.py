"""Bearer tokens and roles on the daemon's HTTP API."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.daemon import Running

from correlator.app import App
from correlator.config import Config, ConfigError

TOKENS = {
    "tokens": [
        {"name": "grafana", "role": "viewer", "token": "v-secret"},
        {"name": "noc-alice", "role": "operator", "token": "o-secret"},
        {"name": "ops", "role": "admin", "token": "a-secret"},
    ]
}


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_roles_gate_the_api_and_the_journal_names_the_token(daemon: Running) -> None:
    """401 without a known token, 403 for a role that may not; probes and metrics stay
    open; an operator's action is journaled under the token's name."""
    event = {"node": "db1", "alertgroup": "Disk"}
    async with daemon(auth=TOKENS) as (_, client):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/api/v1/alerts")).status_code == 401
        assert (await client.get("/api/v1/alerts", headers=_as("wrong"))).status_code == 401
        assert (await client.get("/api/v1/alerts", headers=_as("v-secret"))).status_code == 200
        refused = await client.post("/api/v1/events", json=event, headers=_as("v-secret"))
        assert refused.status_code == 403
        ok = await client.post("/api/v1/events", json=event, headers=_as("o-secret"))
        assert ok.status_code == 200
        acked = await client.post("/api/v1/alerts/db1:Disk::/ack", headers=_as("o-secret"))
        assert acked.json()["journal"][-1]["who"] == "noc-alice"
        assert (await client.post("/-/reload", headers=_as("o-secret"))).status_code == 403
        assert (await client.post("/-/reload", headers=_as("a-secret"))).status_code == 200


def test_an_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    """The daemon refuses to start (exit 2 from the CLI) rather than run without the token."""
    auth = {"tokens": [{"name": "noc", "role": "operator", "token_file": str(tmp_path / "x")}]}
    config = Config(rules=tmp_path, auth=auth)
    with pytest.raises(ConfigError, match="auth token noc: cannot read"):
        App(config)
