"""Runbooks as receivers (`exec_configs`): a command run with the notification on stdin.

`command` is an argument list, never a shell string (no quoting to get
wrong, nothing for an alert's text to inject). The process gets the
webhook payload (Alertmanager's JSON) on standard input, a restricted
environment (`PATH`, `LANG` and the `env` given, nothing of the daemon's),
and `timeout` seconds (30) before it is killed. Exit status 0 is success,
anything else a failure that is retried; the first 2,000 characters of its
output go into the journal of each alert it was about.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx
import orjson

from correlator.notify.webhook import DeliveryError, payload
from correlator.timeparse import parse_duration

OUTPUT_KEPT: Final = 2000
Note = Callable[[str, str], Awaitable[None]]


class Exec:
    kind = "exec"

    def __init__(self, config: dict[str, Any], external_url: str) -> None:
        command = config.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(part, str) for part in command)
        ):
            raise ValueError("exec_configs: command must be a non-empty list of strings")
        self.command = [str(part) for part in command]
        self.timeout = parse_duration(config.get("timeout", 30.0))
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            **{str(k): str(v) for k, v in (config.get("env") or {}).items()},
        }
        self.external_url = external_url
        self.note: Note | None = None  # set by the daemon: the output goes to the journal

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        body = orjson.dumps(payload(notification, self.external_url))
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**self.env, "CORRELATOR_ACTION_KEY": key},
        )
        try:
            async with asyncio.timeout(self.timeout):
                output, _ = await process.communicate(body)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise DeliveryError(f"{self.command[0]} timed out after {self.timeout:g} s") from None
        text = output.decode(errors="replace").strip()[:OUTPUT_KEPT]
        if self.note is not None and text:
            for row in notification.get("alerts", ()):
                with contextlib.suppress(Exception):  # a row deleted since has no journal
                    await self.note(str(row["identifier"]), f"{self.command[0]}: {text}")
        if process.returncode != 0:
            raise DeliveryError(f"{self.command[0]} exited with {process.returncode}: {text[:200]}")


class PolicyExec:
    """A policy's `exec` action: the command the engine rendered, run like an exec receiver."""

    kind = "exec"

    def __init__(self, external_url: str) -> None:
        self.external_url = external_url
        self.note: Note | None = None

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        runbook = Exec(dict(notification["request"]), self.external_url)
        runbook.note = self.note
        await runbook.send(client, key, notification)
