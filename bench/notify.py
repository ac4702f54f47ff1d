"""Notifications per second: alerts in over HTTP, routed, grouped, delivered to a webhook.

Starts a local HTTP endpoint that counts what it receives (answering 200 at
once) and `correlator run` as its own process with a routing tree that gives
every alert its own group (`group_by: [node]`, `group_wait: 0s`) and a
webhook receiver pointing at the endpoint. N alerts are posted in batches of
1,000; the clock runs from the first post until the endpoint has received
one notification per alert. Every notification passes through the outbox
(written with its journal batch, read back, sent, removed), as in production.

Run: `.venv/bin/python bench/notify.py [--alerts N]`; the last line is one JSON
object with `notifications_per_second`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from daemon_process import free_port, running, write_config
from engine import calibration_ms  # bench/engine.py: the machine's speed right now

RULES = """
route: {receiver: sink, group_by: [node], group_wait: 0s, group_interval: 1h}
receivers: [{name: sink, webhook_configs: [{url: "%s"}]}]
"""


class Counter:
    """An ASGI endpoint that counts notifications and the alerts in them."""

    def __init__(self) -> None:
        self.alerts = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.alerts += len(json.loads(body)["alerts"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _serve(app: Counter, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20_000)
    args = parser.parse_args()
    before = calibration_ms()
    sink_port, port = free_port(), free_port()
    counter = Counter()
    server = _serve(counter, sink_port)
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        rules.mkdir()
        (rules / "rules.yaml").write_text(RULES % f"http://127.0.0.1:{sink_port}/hook")
        config = write_config(Path(tmp), port)
        with running(config, port) as (_, client):
            bodies = [
                [{"node": f"n{i}", "alertgroup": "Down"} for i in range(s, s + 1000)]
                for s in range(0, args.alerts, 1000)
            ]
            started = time.perf_counter()
            for body in bodies:
                client.post("/api/v1/events", json=body).raise_for_status()
            while counter.alerts < args.alerts:
                time.sleep(0.01)
            seconds = time.perf_counter() - started
    server.should_exit = True
    result = {
        "alerts": args.alerts,
        "notifications_per_second": round(args.alerts / seconds),
        "calibration_ms": [round(before, 2), round(calibration_ms(), 2)],
    }
    print(f"{args.alerts:,} alerts → {args.alerts:,} notifications delivered in {seconds:.1f} s: "
          f"{result['notifications_per_second']:,}/s; calibration {result['calibration_ms']} ms")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
