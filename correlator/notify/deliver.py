"""The outbox's deliverer: every committed notification reaches its receiver at least once.

A notification enters the outbox in the transaction of the journal batch that
made it (one action per integration of its receiver), so an action due when
the process died runs after the restart. The deliverer takes due actions from
the store, runs them (one group's in order, up to `concurrency` requests at
once), and removes those that succeeded; a failure is retried with exponential backoff
and jitter. An action that fails `max_attempts` times is dead-lettered, and
each alert it carried gets a journal note saying so. A receiver that fails
`breaker_failures` times in a row is not tried for `breaker_open` seconds (its
actions wait, their attempts uncounted): a dead endpoint costs nothing while
it is dead. Every request carries the action's idempotency key, so a receiver
that takes one sees a retry of a delivered action as the same request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
import structlog

from correlator.notify.webhook import DeliveryError
from correlator.sinks.dead_letter import DeadLetter, DeadLetterSink, write_retrying
from correlator.store.base import Action, Store

log = structlog.get_logger("correlator.notify")


class Integration(Protocol):
    kind: str

    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        """Deliver or raise (any exception is a failed attempt)."""


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


class Deliverer:
    def __init__(
        self,
        store: Store,
        integrations: Callable[[], Mapping[str, Sequence[Integration]]],
        *,
        clock: Callable[[], float],
        dead_letter: DeadLetterSink,
        note: Callable[[str, str], Awaitable[None]],
        max_attempts: int = 8,
        backoff: tuple[float, float] = (1.0, 300.0),
        breaker_failures: int = 5,
        breaker_open: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.integrations = integrations  # by receiver name, from the rules in force
        self.clock = clock
        self.dead_letter = dead_letter
        self.note = note  # a journal note on an alert: (identifier, text)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.breaker_failures = breaker_failures
        self.breaker_open = breaker_open
        self.concurrency = concurrency  # requests in flight (groups side by side)
        self.delivered = 0
        self.failed = 0  # attempts that failed
        self.dead = 0
        self._breakers: dict[str, _Breaker] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New actions were committed: look at the outbox now."""
        self._wake.set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        try:
            async with httpx.AsyncClient(limits=limits) as client:
                await self._loop(client)
        finally:  # producers and clients of broker receivers
            for found in self.integrations().values():
                for integration in found:
                    close = getattr(integration, "close", None)
                    if close is not None:
                        await close()

    async def _loop(self, client: httpx.AsyncClient) -> None:
        while True:
            self._wake.clear()
            actions = await self.store.due_actions(self.clock(), 1000)
            if actions:
                await self._round(client, actions)
                continue
            due = await self.store.next_action_due()
            delay = None if due is None else max(0.0, due - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _round(self, client: httpx.AsyncClient, actions: list[Action]) -> None:
        """Run due actions: one group's in order, up to `concurrency` at once.

        The ones that succeeded leave the outbox together at the end of the
        round (a crash before that sends them again: at least once).
        """
        lanes: dict[tuple[str, str], list[tuple[Action, dict[str, Any]]]] = {}
        for action in actions:
            notification = orjson.loads(action.payload)
            group = (notification.get("group") or {}).get("key", action.key)
            lanes.setdefault((action.receiver, str(group)), []).append((action, notification))
        done: list[str] = []
        slots = asyncio.Semaphore(self.concurrency)

        async def lane(items: list[tuple[Action, dict[str, Any]]]) -> None:
            for action, notification in items:
                async with slots:
                    if not await self._run(client, action, notification):
                        return  # the rest of the group waits for this one
                done.append(action.key)

        await asyncio.gather(*(lane(items) for items in lanes.values()))
        await self.store.actions_done(done)
        self.delivered += len(done)

    async def _run(
        self, client: httpx.AsyncClient, action: Action, notification: dict[str, Any]
    ) -> bool:
        """Run one action; True when it is done (sent, or dropped with its receiver)."""
        now = self.clock()
        breaker = self._breakers.setdefault(action.receiver, _Breaker())
        if breaker.open_until > now:  # the receiver is resting: wait, uncounted
            await self.store.action_retry(
                action.key, action.attempts, breaker.open_until, "circuit open"
            )
            return False
        integration = self._integration(action)
        if integration is None:
            log.warning("receiver gone from the rules: action dropped", action=action.key)
            return True
        try:
            await integration.send(client, action.key, notification)
        except Exception as exc:  # any failure is retried; the last one is dead-lettered
            await self._failed(action, breaker, _describe(exc), notification)
            return False
        breaker.failures = 0
        return True

    def _integration(self, action: Action) -> Integration | None:
        index = int(action.key.rsplit(":", 1)[1])
        found = self.integrations().get(action.receiver, ())
        return found[index] if index < len(found) else None

    async def _failed(
        self, action: Action, breaker: _Breaker, error: str, notification: dict[str, Any]
    ) -> None:
        now = self.clock()
        self.failed += 1
        breaker.failures += 1
        if breaker.failures >= self.breaker_failures:
            breaker.open_until = now + self.breaker_open
            breaker.failures = 0
            log.warning("receiver failing: circuit open", receiver=action.receiver, error=error)
        attempts = action.attempts + 1
        if attempts < self.max_attempts:
            low, high = self.backoff
            delay = min(high, low * 2 ** (attempts - 1)) * (0.5 + random.random())  # noqa: S311
            await self.store.action_retry(action.key, attempts, now + delay, error)
            return
        why = f"notification to {action.receiver} given up after {attempts} attempts: {error}"
        log.error("notification undeliverable", action=action.key, error=error)
        letter = DeadLetter(
            now, f"receiver:{action.receiver}", "undeliverable", why, action.payload
        )
        await write_retrying(self.dead_letter, [letter], "notifications")
        for row in notification.get("alerts", ()):
            with contextlib.suppress(Exception):  # a row deleted since has no journal
                await self.note(str(row["identifier"]), why)
        await self.store.actions_done([action.key])
        self.dead += 1


def _describe(exc: Exception) -> str:
    """What went wrong, for the journal note and the log (an httpx timeout has no text)."""
    text = str(exc)
    if isinstance(exc, DeliveryError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
