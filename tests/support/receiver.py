"""A real HTTP endpoint for receiver tests: records every request, answers as told."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from support.postgres import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class Endpoint:
    """`answers` are used in turn (the last one repeats); `delay` holds an answer back."""

    url: str
    answers: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    reply: Any = None  # a JSON body for every answer
    requests: list[Received] = field(default_factory=list)

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def until(self, count: int, seconds: float = 20.0) -> list[Received]:
        async with asyncio.timeout(seconds):
            while len(self.requests) < count:  # noqa: ASYNC110 - another task serves them
                await asyncio.sleep(0.01)
        return self.requests


@contextlib.asynccontextmanager
async def endpoint(path: str = "/hook") -> AsyncIterator[Endpoint]:
    port = free_port()
    state = Endpoint(f"http://127.0.0.1:{port}{path}")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        status = state.answers[min(len(state.requests), len(state.answers) - 1)]
        if state.delay:
            delay, state.delay = state.delay, 0.0  # only the first request is held back
            await asyncio.sleep(delay)
        state.requests.append(
            Received(
                request.method,
                request.url.path,
                dict(request.headers),
                orjson.loads(body) if body else None,
                status,
            )
        )
        content = orjson.dumps(state.reply) if state.reply is not None else b""
        await Response(content, status_code=status, media_type="application/json")(
            scope, receive, send
        )

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's own flag
        await asyncio.sleep(0.01)
    try:
        yield state
    finally:
        server.should_exit = True
        await task
