"""A real `amtool alert add` (Debian's prometheus-alertmanager) posting to the daemon."""

from __future__ import annotations

import asyncio
import shutil

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
