"""Alertmanager's API v2 for readers and silencers: amtool, Grafana's data source, Karma.

`GET /api/v2/alerts` (`filter`, `silenced`, `inhibited`, `active`,
`receiver`), `GET /api/v2/alerts/groups`, `GET /api/v2/status`,
`GET /api/v2/receivers`, and silences: `POST /api/v2/silences`,
`GET /api/v2/silences`, `GET /api/v2/silence/{id}`, `DELETE
/api/v2/silence/{id}`, in Alertmanager's JSON shapes. An alert there is a row
not cleared, its labels being its label view (see the webhook); it is
`suppressed` when anything suppresses it, `silencedBy` the silences and
`inhibitedBy` the rules among its suppressors.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response

from correlator import __version__
from correlator.correlate.silences import PREFIX, Silence
from correlator.model import CLEARED, Alert
from correlator.notify.webhook import ZERO_TIME, alert_item, rfc3339
from correlator.ruleset.labelview import parse_label_matchers
from correlator.ruleset.regex import full_match
from correlator.timeparse import parse_timestamp


class Silencing(Protocol):
    """What these endpoints need from the daemon."""

    def now(self) -> float: ...

    def rows(self) -> Iterable[Alert]: ...

    def suppressors(self, alert: Alert) -> tuple[str, ...]: ...

    def receivers_of(self, alert: Alert) -> list[str]: ...

    def receiver_names(self) -> list[str]: ...

    def groups(self) -> list[tuple[dict[str, str], str, list[Alert]]]:
        """Every aggregation group: its labels, receiver and alerts."""
        ...

    def silence_list(self) -> list[Silence]: ...

    async def silence(self, spec: dict[str, Any]) -> str | None:
        """Add or change a silence, journaled; the reason when refused."""
        ...

    async def expire_silence(self, sid: str) -> str | None: ...


STARTED = time.time()


def register(api: FastAPI, service: Silencing) -> None:
    @api.get("/api/v2/alerts")
    async def alerts(
        filter: Annotated[list[str] | None, Query()] = None,
        silenced: bool = True,
        inhibited: bool = True,
        active: bool = True,
        receiver: str | None = None,
    ) -> list[dict[str, Any]]:
        wanted = _matchers(filter or [])
        receiver_ok = full_match(receiver) if receiver else None
        out = []
        for row in service.rows():
            if row.status == CLEARED or not all(m.test(row) for m in wanted):
                continue
            item = _gettable(service, row)
            status = item["status"]
            if status["silencedBy"] and not silenced:
                continue
            if status["inhibitedBy"] and not inhibited:
                continue
            if status["state"] == "active" and not active:
                continue
            if receiver_ok and not any(receiver_ok(r["name"]) for r in item["receivers"]):
                continue
            out.append(item)
        return out

    @api.get("/api/v2/alerts/groups")
    async def groups() -> list[dict[str, Any]]:
        return [
            {
                "labels": labels,
                "receiver": {"name": receiver},
                "alerts": [_gettable(service, a) for a in members if a.status != CLEARED],
            }
            for labels, receiver, members in service.groups()
        ]

    @api.get("/api/v2/receivers")
    async def receivers() -> list[dict[str, str]]:
        return [{"name": name} for name in service.receiver_names()]

    @api.get("/api/v2/status")
    async def status() -> dict[str, Any]:
        return {
            "cluster": {"name": "", "status": "disabled", "peers": []},
            "versionInfo": {
                "version": __version__,
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
            },
            "config": {"original": ""},
            "uptime": rfc3339(STARTED),
        }

    @api.get("/api/v2/silences")
    async def silences(filter: Annotated[list[str] | None, Query()] = None) -> list[Any]:
        wanted = [(m.name, m.value) for m in _matchers(filter or [])]
        now = service.now()
        return [
            _silence(s, now)
            for s in service.silence_list()
            if all(any(x["name"] == n and x["value"] == v for x in s.matchers) for n, v in wanted)
        ]

    @api.get("/api/v2/silence/{sid}")
    async def one_silence(sid: str) -> dict[str, Any]:
        for s in service.silence_list():
            if s.id == sid:
                return _silence(s, service.now())
        raise HTTPException(404, f"silence {sid} not found")

    @api.post("/api/v2/silences")
    async def post_silence(body: dict[str, Any]) -> dict[str, str]:
        try:
            spec = _postable(body, service.now())
        except (ValueError, TypeError, KeyError) as exc:
            raise HTTPException(400, str(exc)) from None
        refused = await service.silence(spec)
        if refused is not None:
            raise HTTPException(400, refused)
        return {"silenceID": spec["id"]}

    @api.delete("/api/v2/silence/{sid}")
    async def delete_silence(sid: str) -> Response:
        refused = await service.expire_silence(sid)
        if refused is not None:
            raise HTTPException(404, refused)
        return Response(status_code=200)


def _matchers(lines: list[str]) -> list[Any]:
    try:
        return [m for line in lines for m in parse_label_matchers(line)]
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def _gettable(service: Silencing, row: Alert) -> dict[str, Any]:
    item = alert_item(row.to_dict())
    holders = service.suppressors(row)
    silenced = [h.removeprefix(PREFIX) for h in holders if h.startswith(PREFIX)]
    inhibited = [h for h in holders if not h.startswith(PREFIX)]
    return {
        "labels": item["labels"],
        "annotations": item["annotations"],
        "startsAt": item["startsAt"],
        "endsAt": rfc3339(row.expire_at) if row.expire_at is not None else ZERO_TIME,
        "updatedAt": rfc3339(max(row.last_occurrence, row.state_change)),
        "generatorURL": item["generatorURL"],
        "fingerprint": item["fingerprint"],
        "receivers": [{"name": name} for name in service.receivers_of(row)],
        "status": {
            "state": "suppressed" if holders else "active",
            "silencedBy": silenced,
            "inhibitedBy": inhibited,
            "mutedBy": [],
        },
    }


def _silence(silence: Silence, now: float) -> dict[str, Any]:
    return {
        "id": silence.id,
        "status": {"state": silence.state(now)},
        "updatedAt": rfc3339(silence.updated_at),
        "matchers": silence.matchers,
        "startsAt": rfc3339(silence.starts_at),
        "endsAt": rfc3339(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    }


def _postable(body: dict[str, Any], now: float) -> dict[str, Any]:
    """A PostableSilence as the engine takes it (times as epoch seconds, an id given)."""
    matchers = [
        {
            "name": str(m["name"]),
            "value": str(m["value"]),
            "isRegex": bool(m.get("isRegex", False)),
            "isEqual": bool(m.get("isEqual", True)),
        }
        for m in body["matchers"]
    ]
    starts = parse_timestamp(body["startsAt"])
    ends = parse_timestamp(body["endsAt"])
    return {
        "id": str(body.get("id") or uuid.uuid4()),
        "matchers": matchers,
        "startsAt": max(starts, now) if starts < now else starts,
        "endsAt": ends,
        "createdBy": str(body.get("createdBy", "")),
        "comment": str(body.get("comment", "")),
    }
