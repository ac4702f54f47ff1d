"""The outbox's last resort: a notification given up is dead-lettered, whatever the sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest

from correlator.notify.deliver import Deliverer
from correlator.notify.webhook import DeliveryError
from correlator.sinks import dead_letter
from correlator.sinks.dead_letter import DeadLetter
from correlator.store.base import Action


class _AwayThenBack:
    """A dead-letter sink whose broker is away for the first two writes."""

    def __init__(self) -> None:
        self.calls = 0
        self.kept: list[DeadLetter] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write(self, letters: list[DeadLetter]) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise ConnectionError("broker away")
        self.kept += letters


class _Outbox:
    def __init__(self) -> None:
        self.done: list[str] = []

    async def actions_done(self, keys: Sequence[str]) -> None:
        self.done += keys

    async def action_retry(self, key: str, attempts: int, due: float, error: str) -> None:
        raise AssertionError("the last attempt is not retried")


class _Failing:
    async def send(self, client: httpx.AsyncClient, key: str, notification: dict[str, Any]) -> None:
        raise DeliveryError("HTTP 500 from the receiver")


async def test_a_notification_given_up_waits_for_its_dead_letter_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The give-up's dead letter is retried while its sink is away (it used to raise, which
    ended the delivery loop), then the action leaves the outbox as given up."""
    monkeypatch.setattr(dead_letter, "DEAD_LETTER_RETRY", (0.01, 0.02))
    sink, outbox, notes = _AwayThenBack(), _Outbox(), []

    async def note(identifier: str, text: str) -> None:
        notes.append((identifier, text))

    deliverer = Deliverer(
        outbox,  # type: ignore[arg-type]
        lambda: {"hook": [_Failing()]},  # type: ignore[dict-item]
        clock=lambda: 100.0,
        dead_letter=sink,
        note=note,
        max_attempts=1,
    )
    payload = orjson.dumps({"alerts": [{"identifier": "web-1:HTTPErrors::"}]})
    action = Action("s:7:0", "s", "hook", payload, 99.0)
    async with httpx.AsyncClient() as client:
        await deliverer._round(client, [action])
    assert sink.calls == 3
    assert [(d.source, d.reason) for d in sink.kept] == [("receiver:hook", "undeliverable")]
    assert deliverer.dead == 1 and outbox.done == ["s:7:0"]  # given up: out of the outbox
    assert notes and notes[0][0] == "web-1:HTTPErrors::"
