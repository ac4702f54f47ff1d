"""The daemon over HTTP: ingest answers once durable, bad items rejected, restart restores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from support.daemon import Running, write_rules


def _rows(body: dict[str, object]) -> list[dict[str, object]]:
    rows = body["alerts"]
    assert isinstance(rows, list)
    return rows


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_events_in_alerts_out_and_a_restart_keeps_the_table(
    daemon: Running, backend: str, request: pytest.FixtureRequest
) -> None:
    """POST one event and an array; GET the table with a filter; after a restart the same
    table (tallies exact) is served, from SQLite and from PostgreSQL."""
    state = {}
    if backend == "postgresql":
        state = {"state": {"url": request.getfixturevalue("postgres_database")}}
    async with daemon(**state) as (app, client):
        assert app.store.dialect.name == backend
        one = await client.post("/api/v1/events", json={"node": "db1", "alertgroup": "Disk"})
        assert (one.status_code, one.json()) == (200, {"accepted": 1, "rejected": []})
        many = await client.post(
            "/api/v1/events",
            json=[{"node": "db1", "alertgroup": "Disk"}, {"node": "web1", "alertgroup": "Load"}],
        )
        assert many.json() == {"accepted": 2, "rejected": []}
        listed = (await client.get("/api/v1/alerts", params={"filter": 'node="db1"'})).json()
        assert listed["total"] == 1 and _rows(listed)[0]["tally"] == 2
        before = (await client.get("/api/v1/alerts", params={"sort": "serial"})).json()
    async with daemon(**state) as (_, client):
        after = (await client.get("/api/v1/alerts", params={"sort": "serial"})).json()
        assert after == before
        one = (await client.get("/api/v1/alerts/web1:Load::")).json()
        assert one["alertgroup"] == "Load"
        assert (await client.get("/api/v1/alerts/nope")).status_code == 404


async def test_a_bad_item_is_rejected_with_its_index_and_the_rest_kept(daemon: Running) -> None:
    """200 with the rejections when something was accepted, 400 when nothing was; 413 over
    the body limit; not JSON is 400. Every rejected item is in the dead-letter file."""
    async with daemon(http={"max_body_bytes": 2000}) as (app, client):
        mixed = await client.post(
            "/api/v1/events", json=[{"node": "a", "alertgroup": "X"}, {"node": "b"}, 7]
        )
        assert mixed.status_code == 200
        assert mixed.json() == {
            "accepted": 1,
            "rejected": [
                {"index": 1, "reason": "invalid: missing required field 'alertgroup'"},
                {"index": 2, "reason": "not_object: an event must be a JSON object"},
            ],
        }
        none = await client.post("/api/v1/events", json=[{"node": "b"}])
        assert none.status_code == 400 and none.json()["accepted"] == 0
        assert (await client.post("/api/v1/events", content=b"{oops")).status_code == 400
        limit = app.config.http.max_body_bytes
        big = await client.post("/api/v1/events", content=b" " * (limit + 1))
        assert big.status_code == 413
    letters = app.pipeline.dead_letter.path.read_bytes().splitlines()
    assert [orjson.loads(line)["reason"] for line in letters] == [
        "invalid",
        "not_object",
        "invalid",
        "not_json",  # the whole body, with its bytes
    ]
    assert orjson.loads(letters[-1])["raw"] == "{oops"


async def test_alertmanager_posts_become_alerts(daemon: Running) -> None:
    """`POST /api/v2/alerts` as Prometheus sends it: firing, re-sent, resolved; a bad item is
    rejected by index and dead-lettered with the alert as it came."""
    alert = {
        "labels": {"alertname": "HighLoad", "instance": "web1:9100", "severity": "critical"},
        "annotations": {"summary": "load is 12"},
        "startsAt": "2026-12-03T15:00:00Z",
        "endsAt": "2999-01-01T00:00:00Z",
    }
    async with daemon() as (app, client):
        sent = await client.post("/api/v2/alerts", json=[alert, {"labels": {}}])
        assert sent.status_code == 200
        assert sent.json()["rejected"] == [
            {"index": 1, "reason": "invalid: labels.alertname is missing or empty"}
        ]
        await client.post("/api/v2/alerts", json=[alert])
        (row,) = _rows((await client.get("/api/v1/alerts")).json())
        assert (row["node"], row["alertgroup"], row["severity"], row["tally"]) == (
            "web1:9100",
            "HighLoad",
            5,
            2,
        )
        assert row["summary"] == "load is 12"
        resolved = {**alert, "endsAt": "2026-12-03T15:01:00Z"}
        await client.post("/api/v2/alerts", json=[resolved])
        (row,) = _rows((await client.get("/api/v1/alerts")).json())
        assert row["status"] == "cleared"
        assert (await client.post("/api/v2/alerts", json={"labels": {}})).status_code == 400
        assert (await client.post("/api/v2/alerts", content=b"[{")).status_code == 400
        refused = await client.post("/api/v2/alerts", json=[{"labels": {"alertname": 7}}])
        assert refused.status_code == 400
        assert refused.json()["rejected"] == [
            {"index": 0, "reason": "invalid: labels.alertname must be a string"}
        ]
    letters = [
        orjson.loads(line) for line in app.pipeline.dead_letter.path.read_bytes().splitlines()
    ]
    assert [(d["source"], d["reason"], d["raw"]) for d in letters] == [
        ("http", "invalid", '{"labels":{}}'),
        ("http", "invalid", '{"labels":{}}'),  # not an array
        ("http", "not_json", "[{"),
        ("http", "invalid", '{"labels":{"alertname":7}}'),
    ]


async def test_probes_and_metrics(daemon: Running) -> None:
    """/healthz, /readyz once state is restored, /metrics with pre-created series."""
    async with daemon() as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"state_restored": True})
        await client.post("/api/v1/events", json=[{"node": "a", "alertgroup": "X"}, {"x": 1}])
        text = (await client.get("/metrics")).text
    assert 'correlator_events_total{outcome="accepted",source="http"} 1.0' in text
    assert 'correlator_events_total{outcome="dead_lettered",source="http"} 1.0' in text
    assert 'correlator_dead_letters_total{reason="invalid"} 1.0' in text
    assert 'correlator_alerts{severity="indeterminate",status="open"} 1.0' in text
    assert 'correlator_alerts{severity="critical",status="cleared"} 0.0' in text
    assert "correlator_engine_dedup_hits_total 0.0" in text
    assert "correlator_journal_commit_seconds_count" in text
    assert "correlator_journal_tail_entries 3.0" in text  # the rules, then two events


async def test_operators_act_on_alerts_and_a_restart_keeps_what_they_did(
    daemon: Running,
) -> None:
    """ack, unack, assign, journal, severity, clear: each a journal line with who, the row
    back, a change; unknown rows 404, bad values 400; the actions survive a restart."""
    ident = "db1:Disk::"
    async with daemon() as (_, client):
        await client.post("/api/v1/events", json={"node": "db1", "alertgroup": "Disk"})
        acked = (await client.post(f"/api/v1/alerts/{ident}/ack")).json()
        assert (acked["status"], acked["owner"]) == ("acknowledged", "api")
        assert (await client.post(f"/api/v1/alerts/{ident}/unack")).json()["status"] == "open"
        owner = await client.post(f"/api/v1/alerts/{ident}/assign", json={"owner": "alice"})
        assert owner.json()["owner"] == "alice"
        note = await client.post(f"/api/v1/alerts/{ident}/journal", json={"text": "on it"})
        assert note.json()["journal"][-1]["text"] == "on it"
        severity = await client.post(f"/api/v1/alerts/{ident}/severity", json={"severity": "major"})
        assert severity.json()["severity"] == 4
        bad = await client.post(f"/api/v1/alerts/{ident}/severity", json={"severity": "huge"})
        assert bad.status_code == 400
        assert (await client.post("/api/v1/alerts/nope/ack")).status_code == 404
        assert (await client.post(f"/api/v1/alerts/{ident}/assign", json={})).status_code == 400
        cleared = (await client.post(f"/api/v1/alerts/{ident}/clear")).json()
        assert cleared["status"] == "cleared"
        before = (await client.get(f"/api/v1/alerts/{ident}")).json()
    texts = [entry["text"] for entry in before["journal"]]
    assert texts == ["acknowledged", "unacknowledged", "assigned to alice", "on it",
                     "severity set to major", "cleared: by an operator"]  # fmt: skip
    async with daemon() as (_, client):
        assert (await client.get(f"/api/v1/alerts/{ident}")).json() == before


async def test_incidents_are_listed_open_and_closed(daemon: Running, rules_dir: Path) -> None:
    """An incident rule's incidents: listed by status, one by id, kept after a restart."""
    write_rules(
        rules_dir,
        """
        correlate:
          - name: db-incident
            kind: incident
            match: ['alertgroup="Down"']
            group_by: [labels.service]
            window: 5m
        """,
    )
    down = {"alertgroup": "Down", "labels": {"service": "db"}}
    async with daemon() as (_, client):
        await client.post("/api/v1/events", json=[{"node": "a", **down}, {"node": "b", **down}])
        listed = (await client.get("/api/v1/incidents", params={"status": "open"})).json()
        (incident,) = listed["incidents"]
        assert sorted(incident["members"]) == ["a:Down::", "b:Down::"]
        one = await client.get(f"/api/v1/incidents/{incident['id']}")
        assert one.json() == incident
        for node in "ab":
            await client.post("/api/v1/events", json={"node": node, "type": "resolution", **down})
        closed = (await client.get("/api/v1/incidents", params={"status": "closed"})).json()
        assert [i["id"] for i in closed["incidents"]] == [incident["id"]]
        assert (await client.get("/api/v1/incidents", params={"status": "open"})).json() == {
            "incidents": [],
            "total": 0,
        }
        assert (await client.get("/api/v1/incidents/nope")).status_code == 404
    async with daemon() as (_, client):
        after = (await client.get(f"/api/v1/incidents/{incident['id']}")).json()
        assert after["status"] == "closed"


async def test_deleted_rows_are_kept_in_the_history(daemon: Running) -> None:
    """Who acknowledged it and when, when it cleared, its last fields: queried by time."""
    async with daemon(engine={"delete_cleared_after": "200ms"}) as (app, client):
        await client.post("/api/v1/events", json={"node": "db1", "alertgroup": "Disk"})
        await client.post("/api/v1/alerts/db1:Disk::/ack")
        await client.post("/api/v1/alerts/db1:Disk::/clear")
        async with asyncio.timeout(10):
            while len(app.engine.table):  # noqa: ASYNC110 - the daemon's own deletion timer
                await asyncio.sleep(0.05)
        await client.post(
            "/api/v1/events", json={"node": "web1", "alertgroup": "Load"}
        )  # after the deletion commits
        (row,) = (await client.get("/api/v1/history", params={"since": 0})).json()["history"]
        assert (row["identifier"], row["acknowledged_by"], row["tally"]) == ("db1:Disk::", "api", 1)
        assert row["acknowledged_at"] <= row["cleared_at"] <= row["deleted_at"]
        assert row["alert"]["status"] == "cleared"
        later = await client.get("/api/v1/history", params={"since": row["deleted_at"] + 1})
        assert later.json() == {"history": []}


async def test_ingest_after_the_engine_stopped_is_refused_with_503(daemon: Running) -> None:
    """Once the committer has ended (shutdown, or a failed store) an input is refused at
    once with 503 and `Retry-After`, not held open until the process is killed."""
    async with daemon() as (app, client):
        await app.scopes.close_all()
        async with asyncio.timeout(5):
            late = await client.post("/api/v1/events", json={"node": "a", "alertgroup": "X"})
            alerts = [{"labels": {"alertname": "X"}}]
            prometheus = await client.post("/api/v2/alerts", json=alerts)
        assert late.status_code == prometheus.status_code == 503
        assert late.headers["retry-after"] == "5"
        assert "shutting down" in late.json()["error"]
