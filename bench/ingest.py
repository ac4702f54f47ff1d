"""HTTP ingest: 100,000 distinct Prometheus-style alerts to `POST /api/v2/alerts`, then again.

Starts `correlator run` as its own process (SQLite state in a temporary
directory, journal on, no rules), posts the alerts in batches of 1,000 over one
keep-alive connection (each answer comes once the batch is durable; the bodies
are encoded before the clock starts), then posts the same alerts again with a
later `endsAt`, as Prometheus re-sends them (the dedup path), and reads the
daemon's resident memory. The issue gave Alertmanager 0.25 ~70k/s and ~80k/s
re-sends on this machine kind at ~2.4 KB per alert.

`--alertmanager` runs the same phases against a real Alertmanager instead
(Debian's `prometheus-alertmanager`, 0.25 here; no clustering, its storage in
the temporary directory), so the two can be compared side by side on the same
machine in the same minutes: this VM's speed moves by 2-3x between days.

Run: `.venv/bin/python bench/ingest.py [--alerts N] [--batch N] [--alertmanager]`;
the last line is one JSON object with `server`, `alerts_per_second`,
`resend_alerts_per_second`, `bytes_per_alert` and the server's CPU time per
alert in each phase (`cpu_us_per_alert`, `resend_cpu_us_per_alert`: less
moved than wall time by other jobs on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from daemon_process import cpu_seconds, free_port, running, wait_ready, write_config
from engine import calibration_ms  # bench/engine.py: the machine's speed right now


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _alerts(n: int, start: int, starts_at: str, ends_at: str) -> list[dict[str, object]]:
    return [
        {
            "labels": {
                "alertname": "HighLoad",
                "instance": f"host-{i}:9100",
                "job": "node",
                "severity": "warning",
                "team": f"team-{i % 20}",
            },
            "annotations": {"summary": f"load is high on host-{i}"},
            "startsAt": starts_at,
            "endsAt": ends_at,
        }
        for i in range(start, start + n)
    ]


def _bodies(total: int, batch: int, ends_in: float) -> list[bytes]:
    """Every batch's JSON, made before the clock starts: the client's encoder is not timed.

    The alerts started ten minutes ago, within the daemon's `max_lateness` (1 d):
    until 2026-12-04 this was a fixed 2026-12-03 stamp, which from the next day on
    was stamped with each arrival instead, a different expiry at every re-send.
    `endsAt` is `ends_in` seconds ahead, as Prometheus sets it at each send (four
    evaluation intervals ahead): a re-send carries a later one, a new expiry.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ends_in))
    return [orjson.dumps(_alerts(batch, i, started, ends)) for i in range(0, total, batch)]


def _post_all(client: httpx.Client, bodies: list[bytes]) -> float:
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v2/alerts", content=body, headers=headers)
        response.raise_for_status()
    return time.perf_counter() - started


ALERTMANAGER_CONFIG = """
route: {receiver: discard}
receivers: [{name: discard}]
"""


@contextmanager
def _alertmanager(
    folder: Path, port: int
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """A real Alertmanager on `port` (one instance, no peers), ready, and a client."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise SystemExit("no Alertmanager: apt-get install prometheus-alertmanager")
    (folder / "alertmanager.yml").write_text(ALERTMANAGER_CONFIG)
    command = [binary, f"--config.file={folder / 'alertmanager.yml'}",
               f"--storage.path={folder}", f"--web.listen-address=127.0.0.1:{port}",
               "--cluster.listen-address=", "--log.level=warn"]  # fmt: skip
    server = subprocess.Popen(command)  # noqa: S603
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, "/-/ready")
            yield server, client
    finally:
        server.terminate()
        server.wait(timeout=60)


def _count(client: httpx.Client, alertmanager: bool) -> int:
    if alertmanager:
        return len(client.get("/api/v2/alerts").json())
    return int(client.get("/api/v1/alerts", params={"limit": 0}).json()["total"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--alertmanager", action="store_true", help="measure Alertmanager instead")
    args = parser.parse_args()
    port = free_port()
    before = calibration_ms()
    with tempfile.TemporaryDirectory() as tmp:
        if args.alertmanager:
            serving = _alertmanager(Path(tmp), port)
        else:
            serving = running(write_config(Path(tmp), port), port)
        with serving as (daemon, client):
            idle = _rss(daemon.pid)
            bodies = _bodies(args.alerts, args.batch, ends_in=240.0)
            resent = _bodies(args.alerts, args.batch, ends_in=300.0)  # a minute later
            cpu = [cpu_seconds(daemon.pid)]
            first = _post_all(client, bodies)
            cpu.append(cpu_seconds(daemon.pid))
            loaded = _rss(daemon.pid)
            again = _post_all(client, resent)
            cpu.append(cpu_seconds(daemon.pid))
            total = _count(client, args.alertmanager)
    assert total == args.alerts, total
    result = {
        "server": "alertmanager" if args.alertmanager else "correlator",
        "alerts": args.alerts,
        "batch": args.batch,
        "alerts_per_second": round(args.alerts / first),
        "resend_alerts_per_second": round(args.alerts / again),
        "bytes_per_alert": round((loaded - idle) / args.alerts),
        # the server's CPU per alert (all its threads): less moved by the other core's load
        "cpu_us_per_alert": round((cpu[1] - cpu[0]) / args.alerts * 1e6, 1),
        "resend_cpu_us_per_alert": round((cpu[2] - cpu[1]) / args.alerts * 1e6, 1),
        "rss_mb": round(loaded / 2**20),
        "calibration_ms": [round(before, 2), round(calibration_ms(), 2)],
    }
    print(f"{result['server']}: first send: {result['alerts_per_second']:,} alerts/s; re-send: "
          f"{result['resend_alerts_per_second']:,} alerts/s; "
          f"{result['bytes_per_alert']:,} bytes per alert (RSS {result['rss_mb']} MB); "
          f"CPU {result['cpu_us_per_alert']} / {result['resend_cpu_us_per_alert']} µs per alert; "
          f"calibration {result['calibration_ms']} ms (bench/engine.py's)")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
