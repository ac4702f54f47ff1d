"""Jinja2 templates, sandboxed, compiled once; plain references take a fast path.

`{{ raw.host }}` or `{{ node }}` alone is resolved by a dict walk without Jinja2
(ten times cheaper); text without `{{`/`{%` is a constant. Anything else is a
sandboxed Jinja2 template with the default (lenient) Undefined: a missing name
or a None value renders as the empty string, on both paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _finalize(value: Any) -> Any:
    """Render None as the empty string, exactly as the fast path does."""
    return "" if value is None else value


_ENV: Final = ImmutableSandboxedEnvironment(autoescape=False, finalize=_finalize)
K = TypeVar("K", bound=str)
_PLAIN_REF: Final = re.compile(r"^\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}$")


class Template:
    """A template over a mapping; `strip` names a prefix that also resolves bare (`raw`)."""

    __slots__ = ("_jinja", "_path", "_prefix", "constant", "source")

    def __init__(self, source: str, *, prefix: str | None = None) -> None:
        self.source = source
        self._prefix = prefix
        self._path: tuple[str, ...] | None = None
        self._jinja: jinja2.Template | None = None
        self.constant: str | None = None
        if "{{" not in source and "{%" not in source and "{#" not in source:
            self.constant = source
            return
        plain = _PLAIN_REF.match(source.strip())
        if plain is not None:
            path = tuple(plain.group(1).split("."))
            if prefix is not None and path[0] == prefix and len(path) > 1:
                path = path[1:]
            self._path = path
            return
        try:
            self._jinja = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"bad template {source!r}: {exc.message}") from None

    def render(self, context: Mapping[str, Any]) -> str:
        if self.constant is not None:
            return self.constant
        if self._path is not None:
            value: Any = context
            for part in self._path:
                if not isinstance(value, Mapping):
                    return ""
                value = value.get(part)
                if value is None:
                    return ""
            return value if isinstance(value, str) else str(value)
        assert self._jinja is not None
        if self._prefix is not None:
            context = {**context, self._prefix: context}
        try:
            return self._jinja.render(context)
        except jinja2.TemplateError as exc:
            return f"<template error: {exc}>"


def compile_map(sources: Mapping[K, Any], *, prefix: str | None = None) -> dict[K, Template]:
    """Compile a `{key: template}` map; non-string values become constants."""
    return {key: Template(_text(value), prefix=prefix) for key, value in sources.items()}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
