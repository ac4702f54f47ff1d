"""Run the whole daemon in-process (`App`) on free ports, with its state in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.daemon import Running
from support.postgres import free_port

from correlator.app import App
from correlator.config import Config


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """An empty rules directory; tests write their rule files into it."""
    path = tmp_path / "rules"
    path.mkdir()
    (path / "rules.yaml").write_text("{}\n")
    return path


@pytest.fixture
def daemon(tmp_path: Path, rules_dir: Path) -> Running:
    """`async with daemon(**config) as (app, client)`: a running daemon and an HTTP client.

    The same state URL is used by every daemon of one test, so a second one
    restores what the first committed.
    """
    state = f"sqlite:///{tmp_path}/state.db"

    @contextlib.asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
        port = free_port()
        settings: dict[str, Any] = {
            "rules": rules_dir,
            "state": {"url": state, "commit_interval": 0.002},
            "http": {"listen": f"127.0.0.1:{port}"},
            "dead_letter": {"file": str(tmp_path / "dead-letter.jsonl")},
        }
        settings["http"].update(overrides.pop("http", {}))
        settings.update(overrides)
        app = App(Config(**settings))
        task = asyncio.create_task(app.run())
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            try:
                await _until_listening(client, task)
                yield app, client
            finally:
                app.stop()
                await task

    return running


async def _until_listening(client: httpx.AsyncClient, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(15):
        while True:
            if task.done():
                task.result()
                raise AssertionError("the daemon stopped before it listened")
            try:
                await client.get("/healthz")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.02)
