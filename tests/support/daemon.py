"""Helpers of the daemon tests: the `daemon` fixture's type and rule files."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx

from correlator.app import App

# `async with daemon(**config) as (app, client)`
Running = Callable[..., contextlib.AbstractAsyncContextManager[tuple[App, httpx.AsyncClient]]]


def write_rules(rules_dir: Path, text: str) -> None:
    """Replace the daemon's rule file with `text` (dedented)."""
    (rules_dir / "rules.yaml").write_text(textwrap.dedent(text))


# Alertmanager's routing with an inhibition, for the tests of its read API
AM_ROUTING = """
route:
  receiver: noc
  group_by: [site]
  group_wait: 1h
  routes:
    - {matchers: ['severity="critical"'], receiver: pager}
receivers: [{name: noc}, {name: pager}]
inhibit_rules:
  - source_matchers: ['alertname="SiteDown"']
    target_matchers: ['alertname="HostDown"']
    equal: [site]
"""
# under AM_ROUTING: h1 pages, h2 is inhibited by the site-down of sw
AM_EVENTS = [
    {"node": "h1", "alertgroup": "HostDown", "severity": "critical", "labels": {"site": "a"}},
    {"node": "h2", "alertgroup": "HostDown", "labels": {"site": "b"}},
    {"node": "sw", "alertgroup": "SiteDown", "labels": {"site": "b"}},
]
