"""`correlator alerts …`: a command-line client of the daemon's alert API.

`list` prints one line per alert (or the JSON with `--json`); the actions
print the row they changed. The daemon's answer decides the exit status:
0 done, 1 refused (unknown alert, bad value, no permission), 2 unreachable.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO
from urllib.parse import quote

import httpx
import orjson

from correlator.model import SEVERITY_NAMES

# the actions and the JSON key of their one argument
ACTIONS = {"ack": "", "unack": "", "clear": "", "assign": "owner", "journal": "text",
           "severity": "severity"}  # fmt: skip


def run(
    url: str, token: str | None, command: str, args: list[str], *, as_json: bool, out: TextIO
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            if command == "list":
                response = client.get("/api/v1/alerts", params=_list_params(args))
            else:
                response = _act(client, command, args)
    except httpx.TransportError as exc:
        print(f"correlator alerts: cannot reach {url}: {exc}", file=sys.stderr)
        return 2
    body = response.json() if response.content else {}
    if response.status_code >= 400:
        print(
            f"correlator alerts: {response.status_code}: {body.get('error', body)}", file=sys.stderr
        )
        return 1
    if as_json:
        out.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif command == "list":
        for row in body["alerts"]:
            out.write(_line(row) + "\n")
        out.write(f"{len(body['alerts'])} of {body['total']} alerts\n")
    else:
        out.write(_line(body) + "\n")
    return 0


def _list_params(args: list[str]) -> httpx.QueryParams:
    """`list [MATCHER ...]`: each argument is a filter (`severity>=major`, `node=~"db.*"`)."""
    return httpx.QueryParams({"filter": args, "limit": 1000})


def _act(client: httpx.Client, command: str, args: list[str]) -> httpx.Response:
    key = ACTIONS[command]
    identifier, *rest = args
    path = f"/api/v1/alerts/{quote(identifier, safe=':')}/{command}"
    body: dict[str, Any] | None = {key: " ".join(rest)} if key else None
    return client.post(path, json=body)


def _line(row: dict[str, Any]) -> str:
    severity = SEVERITY_NAMES[row["severity"]] if 0 <= row["severity"] <= 5 else row["severity"]
    owner = f" @{row['owner']}" if row.get("owner") else ""
    return (
        f"{row['identifier']}  {severity}  {row['status']}{owner}  tally {row['tally']}  "
        f"{row['summary']}"
    )


def default_url() -> str:
    return os.environ.get("CORRELATOR_URL", "http://127.0.0.1:8080")
