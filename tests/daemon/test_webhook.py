"""The webhook receiver against a real HTTP endpoint: Alertmanager's payload, retries, breaker."""

from __future__ import annotations

import asyncio
import contextlib
import email
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiosmtpd.controller import Controller
from support.daemon import Running, write_rules
from support.postgres import free_port
from support.receiver import Endpoint, endpoint

from correlator.model import Alert
from correlator.notify.webhook import payload

ROW: dict[str, Any] = {
    "identifier": "web-1:HTTPErrors::",
    "node": "web-1",
    "alertgroup": "HTTPErrors",
    "severity": 4,
    "summary": "5xx above 5%",
    "status": "open",
    "labels": {"site": "ams", "env": "prod"},
    "annotations": {"runbook": "http://rb/5xx"},
    "first_occurrence": 1767225600.0,
    "state_change": 1767225600.0,
}


def test_the_payload_is_alertmanagers_version_4() -> None:
    resolved = {
        **ROW,
        "identifier": "web-2:HTTPErrors::",
        "node": "web-2",
        "severity": 0,
        "status": "cleared",
        "state_change": 1767225660.5,
    }
    notification = {
        "receiver": "hook",
        "group": {"key": "{}:[('site', 'ams')]", "labels": {"site": "ams"}},
        "alerts": [ROW, resolved],
    }
    assert payload(notification, "http://correlator:8080") == {
        "version": "4",
        "groupKey": "{}:[('site', 'ams')]",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {"site": "ams"},
        "commonLabels": {"alertname": "HTTPErrors", "site": "ams", "env": "prod"},
        "commonAnnotations": {"runbook": "http://rb/5xx", "summary": "5xx above 5%"},
        "externalURL": "http://correlator:8080",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "HTTPErrors",
                    "node": "web-1",
                    "severity": "major",
                    "site": "ams",
                    "env": "prod",
                },
                "annotations": {"runbook": "http://rb/5xx", "summary": "5xx above 5%"},
                "startsAt": "2026-01-01T00:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": _fingerprint("web-1:HTTPErrors::"),
            },
            {
                "status": "resolved",
                "labels": {
                    "alertname": "HTTPErrors",
                    "node": "web-2",
                    "severity": "clear",
                    "site": "ams",
                    "env": "prod",
                },
                "annotations": {"runbook": "http://rb/5xx", "summary": "5xx above 5%"},
                "startsAt": "2026-01-01T00:00:00.000Z",
                "endsAt": "2026-01-01T00:01:00.500Z",
                "generatorURL": "",
                "fingerprint": _fingerprint("web-2:HTTPErrors::"),
            },
        ],
    }
    truncated = payload(notification, "", max_alerts=1)
    assert truncated["truncatedAlerts"] == 1 and len(truncated["alerts"]) == 1


def _fingerprint(identifier: str) -> str:
    import hashlib

    return hashlib.sha256(identifier.encode()).hexdigest()[:16]


RULES = """
route:
  receiver: hook
  group_by: [site]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs: [{url: "%s", timeout: 0.5}]
"""

FAST = {"retry_min": 0.05, "retry_max": 0.2}


async def _post(client: Any, node: str = "web-1", **event: Any) -> None:
    body = {
        "node": node,
        "alertgroup": "HTTPErrors",
        "severity": "major",
        "labels": {"site": "ams"},
        **event,
    }
    assert (await client.post("/api/v1/events", json=body)).status_code == 200


async def test_a_routed_alert_reaches_the_webhook(daemon: Running, rules_dir: Path) -> None:
    async with endpoint() as hook:
        write_rules(rules_dir, RULES % hook.url)
        async with daemon(notify=FAST) as (app, client):
            await _post(client)
            (request,) = await hook.until(1)
            assert (request.method, request.path) == ("POST", "/hook")
            assert request.headers["content-type"] == "application/json"
            assert request.headers["idempotency-key"] == "default:n1:0"
            body = request.body
            assert body["receiver"] == "hook" and body["status"] == "firing"
            assert body["groupLabels"] == {"site": "ams"}
            assert [a["labels"]["node"] for a in body["alerts"]] == ["web-1"]
            assert body["externalURL"] == app.external_url
            await _post(client, type="resolution")
            await hook.until(2)
            await _until(lambda: app.deliverer.delivered == 2)
            assert hook.requests[1].body["status"] == "resolved"
            assert app.deliverer.delivered == 2
            metrics = (await client.get("/metrics")).text
            assert 'correlator_actions_total{result="delivered"} 2.0' in metrics


async def test_a_failed_or_slow_delivery_is_retried_with_the_same_key(
    daemon: Running, rules_dir: Path
) -> None:
    async with endpoint() as hook:
        hook.answers = [500, 200]
        write_rules(rules_dir, RULES % hook.url)
        async with daemon(notify=FAST) as (app, client):
            await _post(client)
            await _until(lambda: app.deliverer.delivered == 1)
            assert [r.status for r in hook.requests] == [500, 200]
            assert (
                hook.requests[0].headers["idempotency-key"]
                == hook.requests[1].headers["idempotency-key"]
            )
            assert (app.deliverer.failed, app.deliverer.delivered) == (1, 1)
    async with endpoint() as slow:
        slow.delay = 2.0  # past the 0.5 s timeout
        write_rules(rules_dir, RULES % slow.url)
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="web-9")
            await _until(lambda: app.deliverer.delivered == 1)
            assert app.deliverer.failed == 1


async def test_a_failing_receiver_opens_its_circuit_then_gives_up(
    daemon: Running, rules_dir: Path, tmp_path: Path
) -> None:
    async with endpoint() as hook:
        hook.answers = [500]
        write_rules(rules_dir, RULES % hook.url)
        notify = {**FAST, "breaker_failures": 2, "breaker_open": 1.0, "max_attempts": 3}
        async with daemon(notify=notify) as (app, client):
            await _post(client)
            await hook.until(2)
            await asyncio.sleep(0.6)
            assert len(hook.requests) == 2  # the circuit is open: nothing is tried
            await hook.until(3)
            await _until(lambda: app.deliverer.dead == 1)
            row = app.row("web-1:HTTPErrors::")
            assert row is not None
            note = row.journal[-1]
            assert (note.who, note.text) == (
                "correlator",
                "notification to hook given up after 3 attempts: HTTP 500 from " + hook.url,
            )
        letters = [
            orjson.loads(line)
            for line in (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()
        ]
        assert [(d["source"], d["reason"]) for d in letters] == [("receiver:hook", "undeliverable")]


async def test_an_undelivered_notification_survives_a_restart(
    daemon: Running, rules_dir: Path
) -> None:
    """Committed with its batch, retried after the daemon stopped and started: once."""
    async with endpoint() as hook:
        hook.answers = [500]
        write_rules(rules_dir, RULES % hook.url)
        async with daemon(notify=FAST) as (_, client):
            await _post(client)
            await hook.until(1)
        assert not hook.delivered()
        hook.answers = [200]  # from now on the endpoint takes it
        async with daemon(notify=FAST) as (app, _):
            async with asyncio.timeout(20):
                while not hook.delivered():  # noqa: ASYNC110 - the restarted daemon retries
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert await app.store.next_action_due() is None  # the outbox is empty
        (delivered,) = hook.delivered()
        assert delivered.headers["idempotency-key"] == "default:n1:0"


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the daemon's deliverer works on its own
            await asyncio.sleep(0.02)


async def test_pagerduty_and_slack_receive_their_own_api_shapes(
    daemon: Running, rules_dir: Path
) -> None:
    async with endpoint("/v2/enqueue") as pager, endpoint("/services/T0/B0/x") as slack:
        pager.answers = [202]
        write_rules(
            rules_dir,
            f"""
route: {{receiver: both, group_by: [site], group_wait: 0s, group_interval: 1s}}
receivers:
  - name: both
    pagerduty_configs: [{{routing_key: R0UTING, url: "{pager.url}"}}]
    slack_configs: [{{api_url: "{slack.url}", channel: "#noc", send_resolved: true}}]
""",
        )
        async with daemon(notify=FAST) as (app, client):
            await _post(client)
            await _until(lambda: app.deliverer.delivered == 2)
            await _post(client, type="resolution")
            await _until(lambda: app.deliverer.delivered == 4)
    trigger, resolve = (r.body for r in pager.requests)
    assert (pager.requests[0].method, pager.requests[0].path) == ("POST", "/v2/enqueue")
    assert (trigger["routing_key"], trigger["event_action"]) == ("R0UTING", "trigger")
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
    assert [r.body["channel"] for r in slack.requests] == ["#noc", "#noc"]
    assert slack.requests[1].body["text"] == "[RESOLVED:1] HTTPErrors"


RUNBOOK = """
import json, os, sys
sent = json.load(sys.stdin)
node = sent["alerts"][0]["labels"]["node"]
print("cleaned /var on", node, "env:", ",".join(sorted(os.environ)))
sys.exit(int(os.environ.get("FAIL", "0")))
"""


async def test_an_exec_receiver_runs_its_runbook_and_journals_the_output(
    daemon: Running, rules_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "runbook.py"
    script.write_text(RUNBOOK)
    command = orjson.dumps([sys.executable, str(script)]).decode()
    write_rules(
        rules_dir,
        f"""
route: {{receiver: runbook, group_wait: 0s}}
receivers:
  - name: runbook
    exec_configs: [{{command: {command}, timeout: 10s, env: {{SITE: ams}}}}]
""",
    )
    async with daemon(notify=FAST) as (app, client):
        await _post(client, node="db1")
        await _until(lambda: app.deliverer.delivered == 1)
        row = app.row("db1:HTTPErrors::")
        assert row is not None
        (note,) = [n for n in row.journal if n.text.startswith(sys.executable)]
        assert note.who == "correlator"
        assert note.text.endswith(
            "cleaned /var on db1 env: CORRELATOR_ACTION_KEY,LANG,LC_CTYPE,PATH,SITE"
        ) or note.text.endswith("cleaned /var on db1 env: CORRELATOR_ACTION_KEY,LANG,PATH,SITE")


async def test_a_failing_or_hanging_runbook_is_retried(
    daemon: Running, rules_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "runbook.py"
    script.write_text(RUNBOOK)
    hang = [sys.executable, "-c", "import time; time.sleep(30)"]
    write_rules(
        rules_dir,
        f"""
route: {{receiver: runbooks, group_wait: 0s}}
receivers:
  - name: runbooks
    exec_configs:
      - {{command: {orjson.dumps([sys.executable, str(script)]).decode()}, env: {{FAIL: "3"}}}}
      - {{command: {orjson.dumps(hang).decode()}, timeout: 300ms}}
""",
    )
    notify = {**FAST, "max_attempts": 2}
    async with daemon(notify=notify) as (app, client):
        await _post(client, node="db2")
        await _until(lambda: app.deliverer.dead == 2)
        row = app.row("db2:HTTPErrors::")
        assert row is not None
        texts = [n.text for n in row.journal]
        assert any("exited with 3" in t and "given up after 2 attempts" in t for t in texts)
        assert any("timed out after 0.3 s" in t for t in texts)


async def test_kafka_and_mqtt_receivers_publish_the_payload(
    daemon: Running, rules_dir: Path, kafka_bootstrap: str, mqtt_port: int
) -> None:
    write_rules(
        rules_dir,
        f"""
route: {{receiver: brokers, group_by: [site], group_wait: 0s}}
receivers:
  - name: brokers
    kafka_configs: [{{bootstrap_servers: "{kafka_bootstrap}", topic: notifications}}]
    mqtt_configs: [{{url: "mqtt://127.0.0.1:{mqtt_port}", topic: noc/notifications}}]
""",
    )
    payload = await _post_and_listen(daemon, mqtt_port, "noc/notifications", "sw-1")
    over_mqtt = orjson.loads(payload)  # type: ignore[arg-type]
    assert over_mqtt["receiver"] == "brokers" and over_mqtt["version"] == "4"
    record = await _first_record(kafka_bootstrap, "notifications")
    over_kafka = orjson.loads(record.value or b"")
    assert record.key == over_kafka["groupKey"].encode()
    assert over_kafka["alerts"][0]["labels"]["node"] == "sw-1"


class _Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls))
        return "250 OK"


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_an_email_receiver_sends_over_starttls(
    daemon: Running, rules_dir: Path, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox, port = _Mailbox(), free_port()
    server = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    server.start()
    try:
        write_rules(
            rules_dir,
            f"""
route: {{receiver: mail, group_wait: 0s}}
receivers:
  - name: mail
    email_configs:
      - {{to: noc@example.com, from: correlator@example.com, smarthost: "127.0.0.1:{port}",
          tls_config: {{ca_file: "{cert}"}}, headers: {{X-Team: noc}}}}
""",
        )
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="mx-1")
            await _until(lambda: app.deliverer.delivered == 1)
    finally:
        server.stop()
    ((sender, recipients, content, tls),) = mailbox.mails
    assert (sender, recipients, tls) == ("correlator@example.com", ["noc@example.com"], True)
    mail = email.message_from_bytes(content)
    assert mail["Subject"] == "[FIRING:1] HTTPErrors" and mail["X-Team"] == "noc"
    text, attached = [part for part in mail.walk() if not part.is_multipart()]
    assert "HTTPErrors on mx-1" in text.get_payload(decode=True).decode()
    assert orjson.loads(attached.get_payload(decode=True))["receiver"] == "mail"


async def test_servicenow_opens_an_incident_and_resolves_it(
    daemon: Running, rules_dir: Path
) -> None:
    async with servicenow("INC0010042", "9d3a") as (now, instance):
        write_rules(
            rules_dir,
            f"""
route: {{receiver: itsm, group_by: [site], group_wait: 0s, group_interval: 1s}}
receivers:
  - name: itsm
    servicenow_configs:
      - {{url: "{instance}", username: correlator, password: s3cret, assignment_group: NOC}}
""",
        )
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="sql-1", severity="critical")
            await _until(lambda: app.deliverer.delivered == 1)
            await _until(lambda: "ticket" in (app.row("sql-1:HTTPErrors::") or ALERT).labels)
            row = app.row("sql-1:HTTPErrors::")
            assert row is not None and row.labels["ticket"] == "INC0010042"
            await _post(client, node="sql-1", type="resolution")
            await _until(lambda: app.deliverer.delivered == 2)
    create, resolve = now.requests
    assert (create.method, create.path) == ("POST", "/api/now/table/incident")
    assert create.headers["authorization"] == "Basic Y29ycmVsYXRvcjpzM2NyZXQ="
    assert {k: create.body[k] for k in ("urgency", "impact", "assignment_group")} == {
        "urgency": "1",
        "impact": "1",
        "assignment_group": "NOC",
    }
    assert create.body["short_description"] == "[1] HTTPErrors"
    assert (resolve.method, resolve.path) == ("PATCH", "/api/now/table/incident/9d3a")
    assert resolve.body["state"] == "6" and resolve.body["close_code"] == "Solved (Permanently)"


ALERT = Alert("none", "", "")


async def test_a_policy_webhook_sends_the_request_it_rendered(
    daemon: Running, rules_dir: Path
) -> None:
    async with endpoint("/hooks/cmdb") as hook:
        hook.answers = [500, 201]  # retried through the outbox like any notification
        write_rules(
            rules_dir,
            f"""
policies:
  - name: tell-the-cmdb
    on: [create]
    actions:
      - webhook:
          url: "{hook.url}?host={{{{ node }}}}"
          method: PUT
          headers: {{X-Severity: "{{{{ severity }}}}"}}
          body: '{{{{ {{"host": node, "what": alertgroup}} | tojson }}}}'
""",
        )
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="db9")
            await _until(lambda: app.deliverer.delivered == 1)
    first, second = hook.requests
    assert (second.method, second.path, second.status) == ("PUT", "/hooks/cmdb", 201)
    assert second.headers["x-severity"] == "4"
    assert second.body == {"host": "db9", "what": "HTTPErrors"}
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


async def test_a_policy_exec_runs_the_command_it_rendered(
    daemon: Running, rules_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "runbook.py"
    script.write_text(RUNBOOK.replace('sent["alerts"][0]["labels"]["node"]', "sys.argv[1]"))
    write_rules(
        rules_dir,
        f"""
policies:
  - name: clean-the-disk
    on: [create]
    actions:
      - exec: {{command: ["{sys.executable}", "{script}", "{{{{ node }}}}"], timeout: 10s}}
""",
    )
    async with daemon(notify=FAST) as (app, client):
        await _post(client, node="db3")
        await _until(lambda: app.deliverer.delivered == 1)
        row = app.row("db3:HTTPErrors::")
        assert row is not None
        assert any("cleaned /var on db3" in note.text for note in row.journal)


async def test_a_policy_publishes_the_alert_to_kafka_and_mqtt(
    daemon: Running, rules_dir: Path, kafka_bootstrap: str, mqtt_port: int
) -> None:
    write_rules(
        rules_dir,
        f"""
policies:
  - name: share
    on: [create]
    actions:
      - publish: {{kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: alerts-created}}}}
      - publish: {{mqtt: {{url: "mqtt://127.0.0.1:{mqtt_port}", topic: noc/created}}}}
""",
    )
    async with aiomqtt.Client("127.0.0.1", mqtt_port) as listener:
        await listener.subscribe("noc/created", qos=1)
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="fw-1")
            await _until(lambda: app.deliverer.delivered == 2)
            async with asyncio.timeout(10):
                message = await anext(listener.messages)
    assert orjson.loads(bytes(message.payload))["identifier"] == "fw-1:HTTPErrors::"  # type: ignore[arg-type]
    record = await _first_record(kafka_bootstrap, "alerts-created")
    assert record.key == b"fw-1:HTTPErrors::"
    assert orjson.loads(record.value or b"")["node"] == "fw-1"


async def _first_record(bootstrap: str, topic: str) -> Any:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            return await consumer.getone()
    finally:
        await consumer.stop()


async def _post_and_listen(daemon: Running, mqtt_port: int, topic: str, node: str) -> bytes:
    """Post one event to a daemon; the first MQTT message on `topic` once two deliveries ran."""
    async with aiomqtt.Client("127.0.0.1", mqtt_port) as listener:
        await listener.subscribe(topic, qos=1)
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node=node)
            await _until(lambda: app.deliverer.delivered == 2)
            async with asyncio.timeout(10):
                message = await anext(listener.messages)
    return bytes(message.payload)  # type: ignore[arg-type]


async def test_a_policy_ticket_opens_and_resolves_an_incident_per_alert(
    daemon: Running, rules_dir: Path
) -> None:
    async with servicenow("INC0020001", "77aa") as (now, instance):
        write_rules(
            rules_dir,
            f"""
policies:
  - name: certs-to-pki
    on: [create, clear]
    actions:
      - ticket: {{servicenow: {{url: "{instance}", username: c, password: p, assignment_group: PKI}}}}
""",
        )
        async with daemon(notify=FAST) as (app, client):
            await _post(client, node="www")
            await _until(lambda: app.deliverer.delivered == 1)
            await _until(lambda: "ticket" in (app.row("www:HTTPErrors::") or ALERT).labels)
            await _post(client, node="www", type="resolution")
            await _until(lambda: app.deliverer.delivered == 2)
    create, resolve = now.requests
    assert (create.method, create.body["assignment_group"]) == ("POST", "PKI")
    assert (resolve.method, resolve.path, resolve.body["state"]) == (
        "PATCH",
        "/api/now/table/incident/77aa",
        "6",
    )


@contextlib.asynccontextmanager
async def servicenow(number: str, sys_id: str) -> AsyncIterator[tuple[Endpoint, str]]:
    """A ServiceNow instance's incident table: creates answer `number` and `sys_id`."""
    async with endpoint("/api/now/table/incident") as now:
        now.answers = [201, 200]
        now.reply = {"result": {"number": number, "sys_id": sys_id}}
        yield now, now.url.removesuffix("/api/now/table/incident")
