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
