"""Timeline scenarios through `correlator replay` over the example rules in rules/.

examples/storm.jsonl: a site loses its uplink (threshold), hosts behind a core
router are seen before the router (topology adopts them), a batch job never
finishes (pair), a database stops sending heartbeats (absence).
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


@pytest.fixture(scope="module")
def changes() -> list[dict[str, Any]]:
    """Every change of the storm scenario, replayed until three hours after the last event."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        status = main(["replay", str(EVENTS), "--rules", str(REPO / "rules"), "--until", "+3h"])
    assert status == 0
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


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
