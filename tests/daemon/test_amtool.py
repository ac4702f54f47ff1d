"""A real `amtool alert add` (Debian's prometheus-alertmanager) posting to the daemon."""

from __future__ import annotations

import asyncio
import shutil

import orjson
import pytest
from support.daemon import Running


def _amtool() -> str:
    found = shutil.which("amtool")
    if found is None:  # .ci/run installs it; a bare machine gets a clear failure, not a skip
        pytest.fail("amtool is not installed (Debian package prometheus-alertmanager)")
    return found


async def test_amtool_alert_add_lands_in_the_table(daemon: Running) -> None:
    """amtool's POST /api/v2/alerts is accepted unchanged and becomes one alert."""
    async with daemon() as (app, client):
        url = str(client.base_url)
        proc = await asyncio.create_subprocess_exec(
            _amtool(),
            f"--alertmanager.url={url}",
            "alert",
            "add",
            "DiskFull",
            "instance=db1:9100",
            "severity=critical",
            "--annotation=summary=disk 99% full",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (out, err)
        (row,) = app.engine.table.rows.values()
    assert (row.node, row.alertgroup, row.severity, row.summary) == (
        "db1:9100",
        "DiskFull",
        5,
        "disk 99% full",
    )
    assert row.labels == {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"}


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        _amtool(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (args, out, err)
    return out.decode()


async def test_amtool_silences_and_queries(daemon: Running) -> None:
    """amtool's silence add/query/expire and alert query, against the daemon, unchanged."""
    async with daemon() as (app, client):
        url = f"--alertmanager.url={client.base_url}"
        await _run(url, "alert", "add", "DiskFull", "instance=db1:9100", "severity=critical")
        await _run(url, "alert", "add", "CPUHigh", "instance=db1:9100")
        sid = (await _run(url, "silence", "add", "alertname=DiskFull", "--comment=disk swap",
                          "--author=ops", "--duration=1h")).strip()  # fmt: skip
        disk = app.row(
            'db1:9100:DiskFull:alertname="DiskFull",instance="db1:9100",severity="critical":prometheus'
        )
        assert disk is not None and disk.suppressed_by == f"silence:{sid}"
        assert disk.journal[-1].text == "suppressed: silenced by ops: disk swap"
        assert (await _run(url, "silence", "query", "-q")).split() == [sid]
        silences = orjson.loads(await _run(url, "silence", "query", "-o", "json"))
        assert silences[0]["matchers"] == [
            {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True}
        ]
        shown = orjson.loads(await _run(url, "alert", "query", "-o", "json"))
        assert [a["labels"]["alertname"] for a in shown] == ["CPUHigh"]  # not the silenced one
        (silenced,) = orjson.loads(await _run(url, "alert", "query", "--silenced", "-o", "json"))
        assert silenced["labels"]["alertname"] == "DiskFull"  # --silenced alone: only those
        assert silenced["status"]["state"] == "suppressed"
        assert silenced["status"]["silencedBy"] == [sid]
        await _run(url, "silence", "expire", sid)
        assert disk.suppressed_by is None
        assert (await _run(url, "silence", "query", "-q")).split() == []
        assert sid in await _run(url, "silence", "query", "--expired", "-q")
