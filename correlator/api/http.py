"""The HTTP service (FastAPI): ingest, Alertmanager's alert POST, alert reads, probes, metrics.

Ingest bodies are read raw and parsed with orjson (a pydantic model per item
would cost more than the engine). An ingest answers only once the batch is
durable; a bad item is rejected with its index and reason and the rest kept
(400 when nothing was accepted); a body over the limit is refused with 413.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, Protocol

import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from correlator.api import amapi, auth
from correlator.api.alertmanager import BadAlert, to_event
from correlator.api.amapi import Silencing
from correlator.api.auth import Token
from correlator.api.filters import select
from correlator.errors import RuleSetError
from correlator.model import Alert
from correlator.sources.base import Durable, Received, Refused, Rejected


class Service(Silencing, Protocol):
    """What the HTTP layer needs from the running daemon."""

    registry: CollectorRegistry
    max_body_bytes: int
    tokens: list[Token]

    @property
    def max_lateness(self) -> float:
        """The engines' (an Alertmanager alert's `endsAt` is judged by it)."""
        ...

    def rows(self) -> Iterable[Alert]:
        """Every row of every engine (scope)."""
        ...

    def row(self, identifier: str) -> Alert | None: ...

    @property
    def incidents(self) -> Mapping[str, dict[str, Any]]:
        """Incidents as last published, by id (open ones and the latest closed ones)."""
        ...

    def now(self) -> float: ...

    async def act(self, action: str, identifier: str, who: str, value: str = "") -> str | None:
        """An operator's action, journaled; the reason when refused."""
        ...

    async def history(
        self, since: float, until: float, identifier: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Deleted rows in [since, until), oldest first (the store's history)."""
        ...

    async def reload(self) -> str:
        """Load the rules directory and swap it in; raise RuleSetError (the old rules stay)."""
        ...

    async def submit(self, messages: list[Received]) -> Durable: ...

    def readiness(self) -> dict[str, bool]:
        """Each condition of readiness (state restored, every source connected)."""
        ...


class _ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


Acting = Callable[[Request, str, str, str], Awaitable[Response]]


def _route(act: Acting, action: str, key: str) -> Callable[[Request, str], Awaitable[Response]]:
    """One endpoint per action (a closure, so `action` is not a request parameter)."""

    async def route(request: Request, identifier: str) -> Response:
        return await act(request, identifier, action, key)

    return route


def who(request: Request) -> str:
    """Who acted, for the journal: the token's name, or `api` without auth."""
    return str(getattr(request.state, "who", "api"))


def create_api(service: Service) -> FastAPI:
    api = FastAPI(title="correlator", default_response_class=_ORJSONResponse)
    if service.tokens:  # without tokens it lets everything through: no per-request wrapper
        api.middleware("http")(auth.middleware(service.tokens))
    amapi.register(api, service)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> Response:
        checks = service.readiness()
        status = 200 if all(checks.values()) else 503
        return _ORJSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @api.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    @api.post("/api/v1/events")
    async def post_events(request: Request) -> Response:
        """One event (a JSON object) or an array of them."""
        body = await _input_body(request, service)
        items = body if isinstance(body, list) else [body]
        return await _ingest(service, items)

    @api.post("/api/v2/alerts")
    async def post_alerts(request: Request) -> Response:
        """Alertmanager's API as Prometheus and amtool use it: an array of postable alerts."""
        body = await _input_body(request, service)
        if not isinstance(body, list):
            why = "expected a JSON array of alerts"
            await _ingest(service, [Refused(body, why)])
            raise HTTPException(400, why)
        now = service.now()
        lateness = service.max_lateness
        try:
            events: list[Any] = [to_event(alert, now, lateness) for alert in body]
        except BadAlert:  # one by one: the bad ones are dead-lettered in their places
            events = [_mapped(alert, now, lateness) for alert in body]
        return await _ingest(service, events, body)

    @api.post("/-/reload")
    async def reload() -> Response:
        """200 with what loaded, or 400 with every `file:line:col` error (nothing changes)."""
        try:
            loaded = await service.reload()
        except RuleSetError as exc:
            errors = [str(error) for error in exc.errors]
            return _ORJSONResponse({"errors": errors}, status_code=400)
        return _ORJSONResponse({"loaded": loaded})

    @api.get("/api/v1/alerts")
    async def list_alerts(
        filter: Annotated[list[str] | None, Query()] = None,
        sort: str = "-last_occurrence",
        limit: Annotated[int, Query(ge=0, le=10_000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        rows_now = service.rows()
        try:
            rows, total = select(rows_now, filter or [], sort, limit, offset)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"alerts": [row.to_dict() for row in rows], "total": total}

    @api.get("/api/v1/alerts/{identifier:path}")
    async def get_alert(identifier: str) -> dict[str, Any]:
        row = service.row(identifier)
        if row is None:
            raise HTTPException(404, f"no alert {identifier!r}")
        return row.to_dict()

    async def act(request: Request, identifier: str, action: str, key: str = "") -> Response:
        value = ""
        if key:
            body = await _json_body(request, service.max_body_bytes)
            if not isinstance(body, dict) or key not in body:
                raise HTTPException(400, f"expected a JSON object with {key!r}")
            value = str(body[key])
        refused = await service.act(action, identifier, who(request), value)
        if refused is not None:
            raise HTTPException(404 if refused.startswith("no alert") else 400, refused)
        row = service.row(identifier)
        return _ORJSONResponse(row.to_dict() if row is not None else {"identifier": identifier})

    for action, key in (("ack", ""), ("unack", ""), ("assign", "owner"), ("journal", "text"),
                        ("clear", ""), ("severity", "severity")):  # fmt: skip
        api.add_api_route(
            f"/api/v1/alerts/{{identifier:path}}/{action}",
            _route(act, action, key),
            methods=["POST"],
            name=f"alert_{action}",
            summary=f"{action} an alert (a journal line with who and when, a change on the sinks)",
        )

    @api.get("/api/v1/history")
    async def history(
        since: float = 0.0,
        until: float = float("inf"),
        identifier: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """Rows deleted in [since, until) (epoch seconds), oldest first: for MTTA/MTTR reports."""
        rows = await service.history(since, min(until, 1e18), identifier, limit)
        return {"history": rows}

    @api.get("/api/v1/incidents")
    async def list_incidents(
        status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    ) -> dict[str, Any]:
        found = [i for i in service.incidents.values() if status is None or i["status"] == status]
        found.reverse()  # most recently changed first
        return {"incidents": found, "total": len(found)}

    @api.get("/api/v1/incidents/{incident_id:path}")
    async def get_incident(incident_id: str) -> dict[str, Any]:
        incident = service.incidents.get(incident_id)
        if incident is None:
            raise HTTPException(404, f"no incident {incident_id!r}")
        return incident

    @api.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException) -> Response:
        return _ORJSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @api.exception_handler(ConnectionAbortedError)
    async def _stopping(request: Request, exc: ConnectionAbortedError) -> Response:
        """The engine is shutting down (or failed): nothing was taken; send it again later."""
        return _ORJSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    return api


async def _json_body(request: Request, limit: int) -> Any:
    try:
        return orjson.loads(await _body(request, limit))
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"not JSON: {exc}") from None


async def _input_body(request: Request, service: Service) -> Any:
    """An ingest body parsed; one that is not JSON is dead-lettered as any source's is."""
    raw = await _body(request, service.max_body_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        await _ingest(service, [Refused(raw, str(exc), "not_json")])
        raise HTTPException(400, f"not JSON: {exc}") from None


async def _body(request: Request, limit: int) -> bytes:
    """The raw body; 413 past `limit` bytes (declared or read), without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _mapped(alert: Any, now: float, lateness: float) -> dict[str, Any] | Refused:
    try:
        return to_event(alert, now, lateness)
    except BadAlert as exc:
        return Refused(alert, str(exc))


async def _ingest(service: Service, events: list[Any], parsed: list[Any] | None = None) -> Response:
    """Submit, wait until durable, answer with what was accepted and what was not (and why).

    The items go as one parsed batch: the pipeline journals them as one entry and
    dead-letters the rest, each reported by its index in the body.
    """
    rejected: list[Rejected] = []
    count = len(events)  # the pipeline empties `events` and `parsed` once they are answered
    if events:
        message = Received(b"", "http", events=events, parsed=parsed)
        rejected = await (await service.submit([message]))
    accepted = count - len(rejected)
    body = {
        "accepted": accepted,
        "rejected": [{"index": i, "reason": why} for i, why in rejected],
    }
    return _ORJSONResponse(body, status_code=200 if accepted else 400)
