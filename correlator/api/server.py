"""The HTTP service under uvicorn as the daemon runs it: on its address, its signals left alone.

Apart from the app so that how the API is served (no access log, no lifespan,
how long requests open at shutdown may take) is said in one place, and the
app only starts and stops the server.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import uvicorn

from correlator.api.http import Service, create_api


def http_server(
    service: Service, address: tuple[str, int], shutdown_timeout: float
) -> uvicorn.Server:
    """The server of the service's API; `serve()` runs it, `should_exit` ends it."""
    host, port = address
    config = uvicorn.Config(
        create_api(service),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # requests still open at SIGTERM are cut after this (they are not acknowledged)
        timeout_graceful_shutdown=math.ceil(shutdown_timeout),
    )
    return _Server(config)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: `correlator run` owns SIGTERM and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
