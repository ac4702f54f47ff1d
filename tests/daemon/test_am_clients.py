"""What Grafana's Alertmanager data source and Karma read, in the shapes their clients decode.

Both use clients generated from Alertmanager's OpenAPI definitions (go-openapi):
a missing required field or a wrong type fails the whole answer. The schemas
below restate those definitions (`api/v2/openapi.yaml`: `gettableAlert`,
`alertGroup`, `gettableSilence`, `alertmanagerStatus`, `receiver`) as JSON
Schema, plus what Karma dereferences beyond them (a matcher's `isEqual`, a
semver `versionInfo.version` of at least 0.17.0). Every answer is checked
against them with the queries those clients send, on a table with active,
silenced and inhibited alerts and active, pending and expired silences.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from support.daemon import AM_EVENTS, AM_ROUTING, Running, write_rules

LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
TIME = {"type": "string", "format": "date-time"}
STRINGS = {"type": "array", "items": {"type": "string"}}
RECEIVER = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
ALERT = {
    "type": "object",
    "properties": {
        "labels": LABELS,
        "annotations": LABELS,
        "generatorURL": {"type": "string"},
        "receivers": {"type": "array", "items": RECEIVER},
        "fingerprint": {"type": "string"},
        "startsAt": TIME,
        "updatedAt": TIME,
        "endsAt": TIME,
        "status": {
            "type": "object",
            "properties": {
                "state": {"enum": ["unprocessed", "active", "suppressed"]},
                "silencedBy": STRINGS,
                "inhibitedBy": STRINGS,
            },
            "required": ["state", "silencedBy", "inhibitedBy"],
        },
    },
    "required": [
        "labels", "receivers", "fingerprint", "startsAt", "updatedAt", "endsAt",
        "annotations", "status",
    ],
}  # fmt: skip
GROUP = {
    "type": "object",
    "properties": {
        "labels": LABELS,
        "receiver": RECEIVER,
        "alerts": {"type": "array", "items": ALERT},
    },
    "required": ["labels", "receiver", "alerts"],
}
MATCHER = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "value": {"type": "string"},
        "isRegex": {"type": "boolean"},
        "isEqual": {"type": "boolean"},
    },
    "required": ["name", "value", "isRegex", "isEqual"],  # Karma dereferences isEqual
}
SILENCE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {
            "type": "object",
            "properties": {"state": {"enum": ["expired", "active", "pending"]}},
            "required": ["state"],
        },
        "updatedAt": TIME,
        "matchers": {"type": "array", "items": MATCHER, "minItems": 1},
        "startsAt": TIME,
        "endsAt": TIME,
        "createdBy": {"type": "string"},
        "comment": {"type": "string"},
    },
    "required": [
        "id", "status", "updatedAt", "matchers", "startsAt", "endsAt", "createdBy", "comment",
    ],
}  # fmt: skip
VERSION_KEYS = ["version", "revision", "branch", "buildUser", "buildDate", "goVersion"]
STATUS = {
    "type": "object",
    "properties": {
        "cluster": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "status": {"enum": ["ready", "settling", "disabled"]},
                "peers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "address": {"type": "string"}},
                        "required": ["name", "address"],
                    },
                },
            },
            "required": ["status"],
        },
        "versionInfo": {
            "type": "object",
            "properties": {key: {"type": "string"} for key in VERSION_KEYS},
            "required": VERSION_KEYS,
        },
        "config": {
            "type": "object",
            "properties": {"original": {"type": "string"}},
            "required": ["original"],
        },
        "uptime": TIME,
    },
    "required": ["cluster", "versionInfo", "config", "uptime"],
}

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    """RFC 3339 with a zone, as Go's strfmt.DateTime parses it."""
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def _valid(answer: Any, schema: dict[str, Any]) -> Any:
    jsonschema.validate(answer, schema, format_checker=FORMATS)
    return answer


def _silence(node: str, start: float, end: float, **matcher: Any) -> dict[str, Any]:
    m = {"name": "node", "value": node, "isRegex": False, "isEqual": True, **matcher}
    return {"matchers": [m], "startsAt": start, "endsAt": end, "createdBy": "ops", "comment": "x"}


async def test_grafana_and_karma_read_every_answer_they_ask_for(
    daemon: Running, rules_dir: Path
) -> None:
    write_rules(rules_dir, AM_ROUTING)
    async with daemon() as (_, client):
        events = [*AM_EVENTS, {"node": "h3", "alertgroup": "HostDown", "labels": {"site": "c"}}]
        assert (await client.post("/api/v1/events", json=events)).status_code == 200
        now = time.time()
        silences = [
            _silence("h3", now - 1, now + 7200),  # active, ends last
            _silence("h9", now - 1, now + 3600, isRegex=True),  # active, ends first
            _silence("h8", now + 600, now + 900),  # pending
        ]
        ids = [
            (await client.post("/api/v2/silences", json=s)).json()["silenceID"] for s in silences
        ]
        expired = await client.post("/api/v2/silences", json=_silence("h7", now - 1, now + 60))
        assert (await client.delete(f"/api/v2/silence/{expired.json()['silenceID']}")).is_success

        status = _valid((await client.get("/api/v2/status")).json(), STATUS)
        major, minor, patch = map(int, status["versionInfo"]["version"].split("."))
        assert (major, minor, patch) >= (0, 17, 0)  # Karma: semver.MustParse, then >=0.17.0
        config = yaml.safe_load(status["config"]["original"])  # Grafana shows the routing tree
        assert config["route"]["receiver"] == "noc"
        assert [r["name"] for r in config["receivers"]] == ["noc", "pager"]
        _valid((await client.get("/api/v2/receivers")).json(), {"type": "array", "items": RECEIVER})

        def nodes(answer: list[dict[str, Any]]) -> list[str]:
            return sorted(
                a["labels"]["node"] for a in _valid(answer, {"type": "array", "items": ALERT})
            )

        grafana = {"active": "true", "silenced": "false", "inhibited": "false"}
        assert nodes((await client.get("/api/v2/alerts", params=grafana)).json()) == ["h1", "sw"]
        assert nodes((await client.get("/api/v2/alerts")).json()) == ["h1", "h2", "h3", "sw"]
        only_muted = {"active": "false", "filter": 'alertname="HostDown"'}
        assert nodes((await client.get("/api/v2/alerts", params=only_muted)).json()) == ["h2", "h3"]

        def groups(answer: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
            _valid(answer, {"type": "array", "items": GROUP})
            return sorted(
                (
                    g["receiver"]["name"],
                    g["labels"]["site"],
                    sorted(a["labels"]["node"] for a in g["alerts"]),
                )
                for g in answer
            )

        karma = (await client.get("/api/v2/alerts/groups")).json()
        assert groups(karma) == [
            ("noc", "b", ["h2", "sw"]),
            ("noc", "c", ["h3"]),
            ("pager", "a", ["h1"]),
        ]
        unmuted = (await client.get("/api/v2/alerts/groups", params=grafana)).json()
        assert groups(unmuted) == [("noc", "b", ["sw"]), ("pager", "a", ["h1"])]  # c: left empty
        paged = {"receiver": "pag.*", "filter": 'site=~"a|b"'}
        assert groups((await client.get("/api/v2/alerts/groups", params=paged)).json()) == [
            ("pager", "a", ["h1"])
        ]

        listed = _valid(
            (await client.get("/api/v2/silences")).json(), {"type": "array", "items": SILENCE}
        )
        assert [(s["id"], s["status"]["state"]) for s in listed[:3]] == [
            (ids[1], "active"),
            (ids[0], "active"),
            (ids[2], "pending"),
        ]
        assert listed[3]["status"]["state"] == "expired"
        equal = (await client.get("/api/v2/silences", params={"filter": 'node="h9"'})).json()
        regex = (await client.get("/api/v2/silences", params={"filter": 'node=~"h9"'})).json()
        assert (equal, [s["id"] for s in regex]) == ([], [ids[1]])  # same name, type and value
        _valid((await client.get(f"/api/v2/silence/{ids[0]}")).json(), SILENCE)
