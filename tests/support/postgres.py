"""A throwaway PostgreSQL cluster on a free port, for the tests of the PostgreSQL store.

Debian keeps the server binaries off PATH (`/usr/lib/postgresql/<v>/bin`), and
`initdb` refuses to run as root, so as root the cluster belongs to the
`postgres` user. `fsync=off` is for speed: these tests kill the daemon, never
the database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (.ci/run installs postgresql)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster in a temporary directory; yield its URL; stop and remove it."""
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="correlator-pg-"))
    data = base / "data"
    if as_root:
        shutil.chown(base, "postgres")
    port = free_port()
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run = [*prefix, _bin("pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*prefix, _bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        subprocess.run([*run, "-o", opts, "-l", str(base / "log"), "-w", "start"], check=True,
                       capture_output=True)  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
