"""Alertmanager's read API and silences over HTTP: shapes, filters, and a restart."""

from __future__ import annotations

import time
from pathlib import Path

from support.daemon import AM_EVENTS, AM_ROUTING, Running, write_rules


def _silence(**fields: object) -> dict[str, object]:
    now = time.time()
    return {
        "matchers": [{"name": "node", "value": "h1", "isRegex": False, "isEqual": True}],
        "startsAt": now - 1,
        "endsAt": now + 3600,
        "createdBy": "ops",
        "comment": "swap",
        **fields,
    }


async def test_alerts_groups_receivers_and_status(daemon: Running, rules_dir: Path) -> None:
    write_rules(rules_dir, AM_ROUTING)
    async with daemon() as (_, client):
        events = AM_EVENTS
        assert (await client.post("/api/v1/events", json=events)).status_code == 200
        alerts = (await client.get("/api/v2/alerts")).json()
        status = {a["labels"]["node"]: a["status"] for a in alerts}
        assert status["h2"] == {
            "state": "suppressed",
            "silencedBy": [],
            "inhibitedBy": ["inhibit-" + status["h2"]["inhibitedBy"][0][8:]],
            "mutedBy": [],
        }
        assert {a["labels"]["node"]: [r["name"] for r in a["receivers"]] for a in alerts} == {
            "h1": ["pager"],
            "h2": ["noc"],
            "sw": ["noc"],
        }
        active = (await client.get("/api/v2/alerts", params={"inhibited": "false"})).json()
        assert sorted(a["labels"]["node"] for a in active) == ["h1", "sw"]
        critical = await client.get("/api/v2/alerts", params={"filter": 'severity="critical"'})
        assert [a["labels"]["node"] for a in critical.json()] == ["h1"]
        by_receiver = await client.get("/api/v2/alerts", params={"receiver": "pag.*"})
        assert [a["labels"]["node"] for a in by_receiver.json()] == ["h1"]
        groups = (await client.get("/api/v2/alerts/groups")).json()
        assert sorted(
            (g["receiver"]["name"], g["labels"]["site"], len(g["alerts"])) for g in groups
        ) == [("noc", "b", 2), ("pager", "a", 1)]
        assert (await client.get("/api/v2/receivers")).json() == [
            {"name": "noc"},
            {"name": "pager"},
        ]
        assert (await client.get("/api/v2/status")).json()["cluster"]["status"] == "disabled"


async def test_silences_are_journaled_and_survive_a_restart(daemon: Running) -> None:
    async with daemon() as (app, client):
        await client.post("/api/v1/events", json={"node": "h1", "alertgroup": "HostDown"})
        made = await client.post("/api/v2/silences", json=_silence())
        sid = made.json()["silenceID"]
        assert app.row("h1:HostDown::").suppressed_by == f"silence:{sid}"  # type: ignore[union-attr]
        bad = await client.post("/api/v2/silences", json=_silence(matchers=[]))
        assert bad.status_code == 400 and "at least one matcher" in bad.text
        late = await client.post("/api/v2/silences", json=_silence(endsAt=time.time() - 5))
        assert late.status_code == 400
    async with daemon() as (app, client):
        assert app.row("h1:HostDown::").suppressed_by == f"silence:{sid}"  # type: ignore[union-attr]
        (listed,) = (await client.get("/api/v2/silences")).json()
        assert (listed["id"], listed["status"]["state"], listed["createdBy"]) == (
            sid,
            "active",
            "ops",
        )
        assert (await client.get(f"/api/v2/silence/{sid}")).json()["comment"] == "swap"
        assert (await client.delete(f"/api/v2/silence/{sid}")).status_code == 200
        assert app.row("h1:HostDown::").suppressed_by is None  # type: ignore[union-attr]
        assert (await client.delete("/api/v2/silence/nope")).status_code == 404
        assert (await client.get("/api/v2/silence/nope")).status_code == 404
        pending = await client.post(
            "/api/v2/silences", json=_silence(startsAt=time.time() + 600, endsAt=time.time() + 900)
        )
        listed = (await client.get(f"/api/v2/silence/{pending.json()['silenceID']}")).json()
        assert listed["status"]["state"] == "pending"
