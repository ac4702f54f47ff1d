"""Timeline scenarios through `correlator replay` over the example rules in rules/.

examples/storm.jsonl: a site loses its uplink (threshold), hosts behind a core
router are seen before the router (topology adopts them), a batch job never
finishes (pair), a database stops sending heartbeats (absence).

examples/night.jsonl (2026-03-10 from 21:55 UTC): a deploy is followed by
probe failures (change), a router goes down inside its upgrade window
(maintenance; its escalation waits for the window's end), an interface flaps
(flapping), a service degrades tier by tier (incident), a site loses power
and its warnings are muted (inhibit), a critical nobody takes escalates
(escalate).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from correlator.cli import main

REPO = Path(__file__).parent.parent
EVENTS = REPO / "examples" / "storm.jsonl"
T0 = 1767225600.0  # 2026-01-01T00:00:00Z, the scenario's origin
NIGHT = REPO / "examples" / "night.jsonl"
N0 = 1773179700.0  # 2026-03-10T21:55:00Z, the night's first event
MIN = 60.0


def _replay(events: Path, until: str) -> list[dict[str, Any]]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        status = main(["replay", str(events), "--rules", str(REPO / "rules"), "--until", until])
    assert status == 0
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture(scope="module")
def changes() -> list[dict[str, Any]]:
    """Every change of the storm scenario, replayed until three hours after the last event."""
    return _replay(EVENTS, "+3h")


@pytest.fixture(scope="module")
def night() -> list[dict[str, Any]]:
    """Every change of the night scenario, replayed until four hours after the last event."""
    return _replay(NIGHT, "+4h")


def _first(changes: list[dict[str, Any]], kind: str, identifier: str) -> dict[str, Any]:
    return next(
        c
        for c in changes
        if c["kind"] == kind and c.get("alert", {}).get("identifier") == identifier
    )


def test_site_storm_becomes_one_alert(changes: list[dict[str, Any]]) -> None:
    """Three hosts of ams1 unreachable within 2 m raise one site outage; members point at it."""
    raised = _first(changes, "alert.created", "correlator:site-outage:ams1")
    assert raised["at"] == T0 + 9
    assert raised["alert"]["manager"] == "correlator" and raised["alert"]["agent"] == "site-outage"
    member = _first(changes, "alert.updated", "ams-n0:NodeUnreachable::")
    assert member["alert"]["parent"] == "correlator:site-outage:ams1"
    assert "counted for labels.site=ams1" in member["alert"]["journal"][-1]["text"]


def test_late_root_adopts_earlier_symptoms(changes: list[dict[str, Any]]) -> None:
    """The core router's alert arrives after its hosts' and suppresses them, saying why."""
    for host in ("zrh3-app-01", "zrh3-app-02"):
        created = _first(changes, "alert.created", f"{host}:NodeUnreachable::")
        assert created["alert"]["suppressed_by"] is None  # nothing above it yet
        held = _first(changes, "alert.suppressed", f"{host}:NodeUnreachable::")
        assert held["at"] == T0 + 30
        assert held["alert"]["parent"] == "zrh3-core-1:NodeDown::"
        notes = [entry["who"] for entry in held["alert"]["journal"]]
        assert "uplink-topology" in notes


def test_lost_heartbeat_and_late_job(changes: list[dict[str, Any]]) -> None:
    """Silence for `for:` raises the dead-man alert; a start with no end raises at +within."""
    lost = _first(changes, "alert.created", "correlator:db-heartbeat:db1")
    assert lost["at"] == T0 + 60 + 120 and lost["alert"]["severity"] == 5
    late = _first(changes, "alert.created", "correlator:nightly-batch-late:batch-1:billing-export")
    assert late["at"] == T0 + 40 + 7200


def test_replay_is_deterministic(
    changes: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same events and rules give the same output, line for line."""
    assert main(["replay", str(EVENTS), "--rules", str(REPO / "rules"), "--until", "+3h"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert again == changes


def _all(changes: list[dict[str, Any]], kind: str, identifier: str) -> list[dict[str, Any]]:
    return [
        c
        for c in changes
        if c["kind"] == kind and c.get("alert", {}).get("identifier") == identifier
    ]


def _notes(change: dict[str, Any], who: str) -> list[str]:
    return [entry["text"] for entry in change["alert"]["journal"] if entry["who"] == who]


def test_probe_failure_points_at_the_deploy(night: list[dict[str, Any]]) -> None:
    """change: a checkout probe fails 2 m after checkout's deploy; the alert names the deploy."""
    probe = "checkout-web-1:443:HTTPProbeFailed::blackbox"
    marked = next(
        c
        for c in _all(night, "alert.updated", probe)
        if "suspect_change" in c["alert"]["annotations"]
    )
    assert marked["at"] == N0 + 2 * MIN
    assert marked["alert"]["annotations"]["suspect_change"] == "cd:Deploy:checkout@v2.14.0"
    assert any("alice deployed checkout v2.14.0" in t for t in _notes(marked, "deploy-suspect"))


def test_planned_work_does_not_page_until_the_window_ends(night: list[dict[str, Any]]) -> None:
    """maintenance + escalate: held from 22:05 to 02:00, its escalation clock paused meanwhile."""
    router = "core-r1:LinkDown:xe-0/1/0:"
    held = _first(night, "alert.suppressed", router)
    assert held["at"] == N0 + 10 * MIN and held["alert"]["suppressed_by"] == "core-r1-upgrade"
    assert held["alert"]["annotations"]["maintenance"] == "core-r1-upgrade"
    released = _first(night, "alert.unsuppressed", router)
    assert released["at"] == N0 + 245 * MIN  # 2026-03-11T02:00:00Z
    escalated = [
        c for c in _all(night, "alert.updated", router) if "priority" in c["alert"]["labels"]
    ]
    assert [c["at"] for c in escalated] == [N0 + 255 * MIN]  # 10 m of unpaused time later
    paged = [c for c in night if c["kind"] == "notification" and c["at"] == N0 + 255 * MIN]
    assert [c["receiver"] for c in paged] == ["oncall-pager"]


def test_a_flapping_interface_is_held_then_released(night: list[dict[str, Any]]) -> None:
    """flapping: the 5th transition in an hour holds it; it is let go once it settles."""
    port = "sw-3:LinkDown:ge-0/0/7"
    held = _first(night, "alert.suppressed", port)
    assert held["at"] == N0 + 19 * MIN and held["alert"]["suppressed_by"] == "interface-flapping"
    labelled = [
        c for c in _all(night, "alert.updated", port) if c["alert"]["labels"].get("flapping")
    ]
    assert labelled and labelled[0]["at"] == N0 + 19 * MIN
    released = _first(night, "alert.unsuppressed", port)
    assert released["at"] == N0 + 75 * MIN  # the 1st of the 5 transitions leaves the hour
    assert "flapping" not in released["alert"]["labels"]


def test_a_cascade_is_one_incident_rooted_at_the_database(night: list[dict[str, Any]]) -> None:
    """incident: db, api and web alerts of payments within 5 m: one incident, db the root cause."""
    opened = [c for c in night if c["kind"] == "incident.opened"]
    assert len(opened) == 1 and opened[0]["at"] == N0 + 26 * MIN
    incident = opened[0]["incident"]
    assert incident["root_cause"] == "pay-db-1:ReplicationLag::"
    assert incident["title"] == "payments: ReplicationLag on pay-db-1 (+1 related)"
    updated = [c["incident"] for c in night if c["kind"] == "incident.updated"]
    assert updated[-1]["members"] == [
        "pay-db-1:ReplicationLag::",
        "pay-api-1:HighErrorRate::",
        "pay-web-1:HighLatency::",
    ]
    web = _all(night, "alert.updated", "pay-web-1:HighLatency::")[-1]["alert"]
    assert web["parent"] == "pay-db-1:ReplicationLag::" and web["incident"] == incident["id"]


def test_site_power_mutes_warnings_until_it_returns(night: list[dict[str, Any]]) -> None:
    """inhibit: a warning on a site without power is muted, and released when power returns."""
    fan = "zrh1-sw-9:FanDegraded::"
    muted = _first(night, "alert.suppressed", fan)
    assert muted["at"] == N0 + 36 * MIN
    assert muted["alert"]["suppressed_by"] == "site-power-mutes-warnings"
    assert any(
        "zrh1-pdu:SitePowerFailure::" in t for t in _notes(muted, "site-power-mutes-warnings")
    )
    released = _first(night, "alert.unsuppressed", fan)
    assert released["at"] == N0 + 50 * MIN


def test_an_unacknowledged_critical_escalates(night: list[dict[str, Any]]) -> None:
    """escalate: a prod critical open 10 m without acknowledgement is raised to P1 and paged."""
    disk = "checkout-db-1:DiskFull::"
    escalated = _first(night, "alert.updated", disk)
    assert escalated["at"] == N0 + 55 * MIN
    assert escalated["alert"]["labels"]["priority"] == "P1"
    assert escalated["alert"]["annotations"]["escalated_to"] == "dba-oncall"
    page = next(c for c in night if c["kind"] == "notification" and c["at"] == N0 + 55 * MIN)
    assert page["receiver"] == "oncall-pager"
    assert [a["identifier"] for a in page["alerts"]] == [disk]
