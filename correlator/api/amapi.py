"""Alertmanager's API v2 for readers and silencers: amtool, Grafana's data source, Karma.

`GET /api/v2/alerts` and `GET /api/v2/alerts/groups` (`filter`, `silenced`,
`inhibited`, `active`, `receiver`), `GET /api/v2/status`,
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import Response

from correlator import __version__
from correlator.correlate.silences import PREFIX, Silence
from correlator.model import CLEARED, Alert
from correlator.notify.webhook import ZERO_TIME, alert_item, rfc3339
from correlator.ruleset.labelview import parse_label_matchers
from correlator.ruleset.matchers import Matcher
from correlator.ruleset.regex import full_match
from correlator.timeparse import parse_timestamp


class Silencing(Protocol):
    """What these endpoints need from the daemon."""

    def now(self) -> float: ...

    def rows(self) -> Iterable[Alert]: ...

    def suppressors(self, alert: Alert) -> tuple[str, ...]: ...

    def receivers_of(self, alert: Alert) -> list[str]: ...

    def receiver_names(self) -> list[str]: ...

    def alertmanager_config(self) -> str:
        """The rule files' Alertmanager sections as one YAML configuration."""

    def groups(self) -> list[tuple[dict[str, str], str, list[Alert]]]:
        """Every aggregation group: its labels, receiver and alerts."""
        ...

    def silence_list(self) -> list[Silence]: ...

    async def silence(self, spec: dict[str, Any]) -> str | None:
        """Add or change a silence, journaled; the reason when refused."""
        ...

    async def expire_silence(self, sid: str) -> str | None: ...


STARTED = time.time()
# the Alertmanager release whose API v2 this answers as: clients choose their API by it
# (Karma parses it as semver and needs at least 0.17.0); correlator's own is the revision
AM_VERSION = "0.27.0"


def register(api: FastAPI, service: Silencing) -> None:
    @api.get("/api/v2/alerts")
    async def alerts(query: Annotated[Listing, Depends(_listing)]) -> list[dict[str, Any]]:
        shown = _shown(service, query, by_receiver=True)
        return [item for item in map(shown, service.rows()) if item is not None]

    @api.get("/api/v2/alerts/groups")
    async def groups(query: Annotated[Listing, Depends(_listing)]) -> list[dict[str, Any]]:
        """Alertmanager's groups, filtered as its alerts are; a group left empty is left out."""
        shown = _shown(service, query, by_receiver=False)  # `receiver` is the group's here
        receiver_ok = full_match(query.receiver) if query.receiver else None
        out = []
        for labels, name, members in service.groups():
            if receiver_ok is not None and not receiver_ok(name):
                continue
            items = [item for item in map(shown, members) if item is not None]
            if items:
                out.append({"labels": labels, "receiver": {"name": name}, "alerts": items})
        return out

    @api.get("/api/v2/receivers")
    async def receivers() -> list[dict[str, str]]:
        return [{"name": name} for name in service.receiver_names()]

    @api.get("/api/v2/status")
    async def status() -> dict[str, Any]:
        return {
            "cluster": {"name": "", "status": "disabled", "peers": []},
            "versionInfo": {
                "version": AM_VERSION,
                "revision": f"correlator {__version__}",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
            },
            "config": {"original": service.alertmanager_config()},
            "uptime": rfc3339(STARTED),
        }

    @api.get("/api/v2/silences")
    async def silences(filter: Annotated[list[str] | None, Query()] = None) -> list[Any]:
        """Alertmanager's order: active (ending first), pending (starting first), expired
        (ended last first); a filter keeps the silences that hold each of its matchers."""
        wanted = [_matcher_item(m) for m in _matchers(filter or [])]
        now = service.now()
        chosen = [s for s in service.silence_list() if all(w in s.matchers for w in wanted)]
        by_state: dict[str, list[Silence]] = {"active": [], "pending": [], "expired": []}
        for silence in chosen:
            by_state[silence.state(now)].append(silence)
        by_state["active"].sort(key=lambda s: s.ends_at)
        by_state["pending"].sort(key=lambda s: s.starts_at)
        by_state["expired"].sort(key=lambda s: -s.ends_at)
        return [_silence(s, now) for state in by_state.values() for s in state]

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


@dataclass
class Listing:
    """The queries of Alertmanager's alert listings (alerts and groups)."""

    filter: list[str] | None = None
    silenced: bool = True
    inhibited: bool = True
    active: bool = True
    receiver: str | None = None


async def _listing(
    filter: Annotated[list[str] | None, Query()] = None,
    silenced: bool = True,
    inhibited: bool = True,
    active: bool = True,
    receiver: str | None = None,
) -> Listing:
    """The listing's query parameters (async: FastAPI would call a class from a thread)."""
    return Listing(filter, silenced, inhibited, active, receiver)


def _shown(
    service: Silencing, query: Listing, *, by_receiver: bool
) -> Callable[[Alert], dict[str, Any] | None]:
    """A row as an item of Alertmanager's alert listings, or None if the query
    leaves it out; a cleared row is resolved, and Alertmanager lists no resolved
    alert."""
    wanted = _matchers(query.filter or [])
    receiver_ok = full_match(query.receiver) if query.receiver and by_receiver else None

    def shown(row: Alert) -> dict[str, Any] | None:
        if row.status == CLEARED or not all(m.test(row) for m in wanted):
            return None
        item = _gettable(service, row)
        status = item["status"]
        if (
            (query.silenced or not status["silencedBy"])
            and (query.inhibited or not status["inhibitedBy"])
            and (query.active or status["state"] != "active")
            and (receiver_ok is None or any(receiver_ok(r["name"]) for r in item["receivers"]))
        ):
            return item
        return None

    return shown


def _matcher_item(m: Matcher) -> dict[str, Any]:
    """A parsed matcher as a silence holds it (Alertmanager's `isRegex`/`isEqual`)."""
    return {"name": m.name, "value": m.value, "isRegex": "~" in m.op, "isEqual": "!" not in m.op}


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
