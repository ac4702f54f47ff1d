"""`correlator run` as its own process for the benchmarks: a config in a temp dir, ready-wait."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, port: int, **settings: Any) -> Path:
    """An empty rules directory, SQLite state and HTTP on `port`, plus `settings`."""
    rules = folder / "rules"
    rules.mkdir(exist_ok=True)
    if not (rules / "rules.yaml").exists():
        (rules / "rules.yaml").write_text("{}\n")
    config = {
        "rules": str(rules), "state": {"url": f"sqlite:///{folder}/state.db"},
        "http": {"listen": f"127.0.0.1:{port}"}, "watch_rules": False,
        "engine": {"max_lateness": "1d"}, **settings,
    }  # fmt: skip
    path = folder / "correlator.yaml"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def running(config: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """Start the daemon, wait for /readyz, yield it and a client; SIGTERM it at the end."""
    correlator = Path(sys.executable).with_name("correlator")
    daemon = subprocess.Popen([str(correlator), "run", "-c", str(config)])  # noqa: S603
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield daemon, client
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
