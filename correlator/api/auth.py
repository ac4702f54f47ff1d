"""Bearer tokens with roles (DESIGN.md §6): viewer reads, operator acts, admin reloads.

With tokens configured, every `/api/*` and `/-/*` request needs
`Authorization: Bearer <token>`: 401 without a known token, 403 for a role
that may not; `/healthz`, `/readyz` and `/metrics` stay open. The token's
name is who acted, in the journal. Without tokens the daemon listens on a
loopback address only (the configuration refuses anything else).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse, Response

RANK = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    secret: str


def required_role(method: str, path: str) -> str | None:
    """The least role a request needs; None for the open endpoints."""
    if path.startswith("/-/"):
        return "admin"
    if not path.startswith("/api/"):
        return None
    return "viewer" if method in ("GET", "HEAD") else "operator"


def find(tokens: Sequence[Token], header: str) -> Token | None:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return None
    found = None
    for token in tokens:  # every token compared, in constant time each
        if hmac.compare_digest(token.secret.encode(), given.strip().encode()):
            found = token
    return found


def middleware(
    tokens: Sequence[Token],
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        role = required_role(request.method, request.url.path)
        if role is None or not tokens:
            return await call_next(request)
        token = find(tokens, request.headers.get("authorization", ""))
        if token is None:
            headers = {"WWW-Authenticate": "Bearer"}
            return JSONResponse({"error": "a valid bearer token is required"}, 401, headers)
        if RANK[token.role] < RANK[role]:
            return JSONResponse({"error": f"role {token.role!r} may not; needs {role!r}"}, 403)
        request.state.who = token.name
        return await call_next(request)

    return check
