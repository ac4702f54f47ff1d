"""Restart time: from `correlator run` to ready with N open alerts in the store.

Writes a journal of N events (each a new alert, as the daemon journals them:
the raw event and the `now` it was processed at, after the rule set's entry)
straight into a SQLite store, then starts `correlator run` on it and times
how long until `/readyz` answers 200: first from the journal alone (the worst
case: a crash with a whole journal not yet snapshotted), then, after a clean
stop saved a snapshot, from that snapshot (the usual restart). Alertmanager
keeps no alerts across a restart at all.

Run: `.venv/bin/python bench/restart.py [--alerts N]`; the last line is one JSON
object with `seconds_to_ready` (from the snapshot), `seconds_to_ready_journal`,
`snapshot_bytes` and `alerts`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
from daemon_process import free_port, running, write_config
from engine import calibration_ms  # bench/engine.py: the machine's speed right now

from correlator.ruleset.version import RuleVersion
from correlator.store.base import EVENT, RULES, Batch, Entry
from correlator.store.sql import open_store


def _event(seq: int, now: float) -> bytes:
    labels = {"site": f"s{seq % 50}", "team": f"t{seq % 20}"}
    event = {"node": f"host-{seq}", "alertgroup": "DiskFull", "severity": "major"}
    return orjson.dumps({**event, "labels": labels, "timestamp": now})


async def _fill(url: str, rules: RuleVersion, alerts: int) -> None:
    store = open_store(url)
    await store.open()
    try:
        now = time.time()
        first = Entry(1, now, RULES, rules.digest.encode())
        await store.commit(Batch("default", [first], rulesets={rules.digest: rules.blob}))
        for start in range(0, alerts, 10_000):
            entries = [
                Entry(seq + 2, now, EVENT, _event(seq, now))
                for seq in range(start, min(start + 10_000, alerts))
            ]
            await store.commit(Batch("default", entries))
    finally:
        await store.close()


def _time_to_ready(config: Path, port: int, alerts: int) -> float:
    """Start the daemon, time it to ready, check the table, stop it (SIGTERM: a snapshot)."""
    started = time.perf_counter()
    with running(config, port) as (_, client):
        ready = time.perf_counter() - started
        total = client.get("/api/v1/alerts", params={"limit": 0}).json()["total"]
    assert total == alerts, total
    return ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=1_000_000)
    args = parser.parse_args()
    before = calibration_ms()
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp) / "rules"
        rules_dir.mkdir()
        (rules_dir / "rules.yaml").write_text("{}\n")
        asyncio.run(_fill(f"sqlite:///{tmp}/state.db", RuleVersion.read(rules_dir), args.alerts))
        port = free_port()
        # no snapshot while replaying; SIGTERM then saves one (however long it takes here)
        config = write_config(
            Path(tmp), port, state={"url": f"sqlite:///{tmp}/state.db",
            "snapshot_entries": args.alerts * 10}, shutdown_timeout="10m",
        )  # fmt: skip
        journal = _time_to_ready(config, port, args.alerts)
        with contextlib.closing(sqlite3.connect(Path(tmp) / "state.db")) as db:
            (snapshot_bytes,) = db.execute("SELECT length(data) FROM snapshots").fetchone()
        ready = _time_to_ready(config, port, args.alerts)
    result = {"alerts": args.alerts, "seconds_to_ready": round(ready, 1),
              "seconds_to_ready_journal": round(journal, 1), "snapshot_bytes": snapshot_bytes,
              "calibration_ms": [round(before, 2), round(calibration_ms(), 2)]}  # fmt: skip
    print(f"{args.alerts:,} open alerts: ready after {result['seconds_to_ready']} s from the "
          f"snapshot, {result['seconds_to_ready_journal']} s from the journal alone; "
          f"calibration {result['calibration_ms']} ms")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
