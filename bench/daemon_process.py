"""`correlator run` as its own process for the benchmarks: a config in a temp dir, ready-wait.

`BENCH_PROFILE=FILE` runs the daemon under a profiler (its figures are then
not comparable): cProfile when FILE ends in `.prof`, else pyinstrument (not a
dependency: `pip install pyinstrument` in the venv), whose text report goes
to FILE. `BENCH_WRAP=COMMAND` starts it under a command such as valgrind, for
instruction counts. `cpu_seconds` reads a process's CPU time, the daemon's cost of a
phase with the other core's load left out.
"""

from __future__ import annotations

import json
import os
import shlex
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


def daemon_command(config: Path) -> list[str]:
    """`correlator run -c CONFIG`, under the profiler `BENCH_PROFILE` asks for, after
    the command prefix `BENCH_WRAP` gives (e.g. `valgrind --tool=cachegrind`)."""
    run = ["run", "-c", str(config)]
    wrap = shlex.split(os.environ.get("BENCH_WRAP", ""))
    profile = os.environ.get("BENCH_PROFILE")
    if not profile:
        return [*wrap, sys.executable, "-m", "correlator", *run]
    if profile.endswith(".prof"):
        return [*wrap, sys.executable, "-m", "cProfile", "-o", profile, "-m", "correlator", *run]
    return [*wrap, sys.executable, "-m", "pyinstrument", "-o", profile, "-m", "correlator", *run]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def page_faults(pid: int) -> int:
    """Minor page faults of a process so far: memory given back to the OS and taken again."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM")


def wait_ready(client: httpx.Client, path: str) -> None:
    """Poll `path` until it answers 200 (a server starting up refuses connections first)."""
    while True:
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)


@contextmanager
def running(config: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """Start the daemon, wait for /readyz, yield it and a client; SIGTERM it at the end."""
    daemon = subprocess.Popen(daemon_command(config))  # noqa: S603
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, "/readyz")
            yield daemon, client
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
