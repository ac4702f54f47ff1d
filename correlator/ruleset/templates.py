"""Jinja2 templates, sandboxed, compiled once, with two fast paths.

- `{{ raw.host }}` or `{{ node }}` alone is resolved by a dict walk without
  Jinja2, and so is text with only such references in it
  (`{{ count }} hosts down in {{ group.site }}`); text without `{{`/`{%` is a
  constant.
- Any other template is a pure function of the values it reads: at compile
  time we list the dotted paths it references, and renders are memoized by
  those values (`{{ 'resolution' if raw.state == 'up' else 'problem' }}` costs
  one dict probe after the first render per state). Templates that loop,
  assign or draw random values are rendered every time.

A missing name or a None value renders as the empty string, on every path;
attributes of a missing name are missing too (ChainableUndefined), not errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _finalize(value: Any) -> Any:
    """Render None as the empty string, exactly as the fast path does."""
    return "" if value is None else value


_ENV: Final = ImmutableSandboxedEnvironment(
    autoescape=False, finalize=_finalize, undefined=jinja2.ChainableUndefined
)
K = TypeVar("K", bound=str)
_PLAIN_REF: Final = re.compile(r"^\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}$")
_MEMO_LIMIT: Final = 1024
_UNCACHEABLE: Final = (nodes.Macro, nodes.CallBlock, nodes.Include, nodes.Import, nodes.FromImport)
_IMPURE_FILTERS: Final = frozenset(("random", "shuffle"))

Path = tuple[str, ...]


def _lookup(context: Any, path: Path) -> Any:
    value = context
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def referenced_paths(ast: nodes.Template) -> list[Path] | None:
    """Dotted paths the template reads from its context, or None if it is not memoizable."""
    if any(True for _ in ast.find_all(_UNCACHEABLE)):
        return None
    if any(n.ctx != "load" for n in ast.find_all(nodes.Name)):
        return None  # loop variables or {% set %}: names that are not context paths
    if any(f.name in _IMPURE_FILTERS for f in ast.find_all(nodes.Filter)):
        return None
    parents: dict[int, nodes.Node] = {}
    for node in ast.find_all(nodes.Node):
        for child in node.iter_child_nodes():
            parents[id(child)] = node
    paths: set[Path] = set()
    for name in ast.find_all(nodes.Name):
        path: list[str] = [name.name]
        current: nodes.Node = name
        while True:
            parent = parents.get(id(current))
            if isinstance(parent, nodes.Getattr) and parent.node is current:
                grand = parents.get(id(parent))
                if isinstance(grand, nodes.Call) and grand.node is parent:
                    break  # a method call: the path ends at its receiver
                path.append(parent.attr)
            elif (
                isinstance(parent, nodes.Getitem)
                and parent.node is current
                and isinstance(parent.arg, nodes.Const)
                and isinstance(parent.arg.value, str)
            ):
                path.append(parent.arg.value)
            else:
                break
            current = parent
        paths.add(tuple(path))
    return sorted(paths)


def interpolation(ast: nodes.Template) -> list[str | Path] | None:
    """Literal text and dotted references, in order, if that is all the template is.

    Built from Jinja2's own parse, so its whitespace rules (the dropped
    trailing newline) hold; a filter, test, call or block returns None.
    """
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts: list[str | Path] = []
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        path: list[str] = []
        while not isinstance(node, nodes.Name):
            if isinstance(node, nodes.Getattr):
                path.append(node.attr)
            elif (
                isinstance(node, nodes.Getitem)
                and isinstance(node.arg, nodes.Const)
                and isinstance(node.arg.value, str)
            ):
                path.append(node.arg.value)
            else:
                return None
            node = node.node
        path.append(node.name)
        parts.append(tuple(reversed(path)))
    return parts


class Template:
    """A template over a mapping; `prefix` names a key that also resolves bare (`raw`).

    `render` is a closure picked at compile time for the template's shape, so
    the common cases cost one or two dict probes.
    """

    __slots__ = ("_jinja", "_prefix", "constant", "key", "render", "source")

    def __init__(self, source: str, *, prefix: str | None = None) -> None:
        self.source = source
        self._prefix = prefix
        self._jinja: jinja2.Template | None = None
        self.constant: str | None = None
        self.key: str | None = None  # `{{ key }}`: the one context key it prints
        self.render: Callable[[Mapping[str, Any]], str]
        if "{{" not in source and "{%" not in source and "{#" not in source:
            self.constant = source
            self.render = lambda context: source
            return
        plain = _PLAIN_REF.match(source.strip())
        if plain is not None:
            path = self._strip(tuple(plain.group(1).split(".")))
            self.render = _path_renderer(path)
            if len(path) == 1:
                self.key = path[0]
            return
        try:
            ast = _ENV.parse(source)
            self._jinja = _ENV.from_string(ast)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"bad template {source!r}: {exc.message}") from None
        parts = interpolation(ast)
        if parts is not None:
            self.render = _interpolator(
                [part if isinstance(part, str) else self._strip(part) for part in parts]
            )
            return
        paths = referenced_paths(ast)
        if paths is None:
            self.render = self._render
        else:
            self.render = _memoized(self._render, [self._strip(p) for p in paths])

    def _strip(self, path: Path) -> Path:
        if self._prefix is not None and path[0] == self._prefix and len(path) > 1:
            return path[1:]
        return path

    def _render(self, context: Mapping[str, Any]) -> str:
        assert self._jinja is not None
        if self._prefix is not None:
            context = {**context, self._prefix: context}
        try:
            return self._jinja.render(context)
        except Exception as exc:  # bad data (`10 // 0`) must not stop the engine: shown instead
            return f"<template error: {type(exc).__name__}: {exc}>"


def _path_renderer(path: Path) -> Callable[[Mapping[str, Any]], str]:
    """`{{ a }}` / `{{ a.b }}` without Jinja2: None and missing render empty."""
    if len(path) == 1:
        (key,) = path

        def one(context: Mapping[str, Any]) -> str:
            value = context.get(key)
            if value is None:
                return ""
            return value if type(value) is str else str(value)

        return one

    def walk(context: Mapping[str, Any]) -> str:
        value = _lookup(context, path)
        if value is None:
            return ""
        return value if type(value) is str else str(value)

    return walk


def _interpolator(parts: list[str | Path]) -> Callable[[Mapping[str, Any]], str]:
    """Text with `{{ path }}` references: each looked up as the fast path does, joined."""
    pieces = tuple(
        (part, None) if isinstance(part, str) else ("", _path_renderer(part)) for part in parts
    )

    def interpolate(context: Mapping[str, Any]) -> str:
        return "".join([text if get is None else get(context) for text, get in pieces])

    return interpolate


def _memoized(
    render: Callable[[Mapping[str, Any]], str], paths: list[Path]
) -> Callable[[Mapping[str, Any]], str]:
    """Render once per distinct tuple of the values the template reads (bounded)."""
    memo: dict[Any, str] = {}
    single = paths[0][0] if len(paths) == 1 and len(paths[0]) == 1 else None

    def cached(context: Mapping[str, Any]) -> str:
        # values are keyed with their type: 1, 1.0 and True hash alike but render apart
        if single is not None:
            key: Any = context.get(single)
            if type(key) is not str:
                key = (type(key), key)
        else:
            key = tuple([(type(v), v) for v in (_lookup(context, path) for path in paths)])
        try:
            return memo[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list, a map): render every time
            return render(context)
        text = render(context)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = text
        return text

    return cached


class TemplateMap:
    """A compiled `{key: template}` map, constants split out so they cost one update."""

    __slots__ = ("constants", "copies", "dynamic")

    def __init__(self, sources: Mapping[K, Any], *, prefix: str | None = None) -> None:
        compiled = {str(k): Template(_text(v), prefix=prefix) for k, v in sources.items()}
        self.constants = {k: t.constant for k, t in compiled.items() if t.constant is not None}
        # `{{ raw.host }}`-style values: (target key, context key), read inline below
        self.copies = tuple((k, t.key) for k, t in compiled.items() if t.key is not None)
        self.dynamic = tuple(
            (k, t) for k, t in compiled.items() if t.constant is None and t.key is None
        )

    def render_into(self, target: dict[str, Any], context: Mapping[str, Any]) -> None:
        """Render every value into `target` (each key is written once)."""
        if self.constants:
            target.update(self.constants)
        for key, name in self.copies:
            value = context.get(name)
            target[key] = value if type(value) is str else ("" if value is None else str(value))
        for key, template in self.dynamic:
            target[key] = template.render(context)


def compile_map(sources: Mapping[K, Any], *, prefix: str | None = None) -> dict[K, Template]:
    """Compile a `{key: template}` map; non-string values become constants."""
    return {key: Template(_text(value), prefix=prefix) for key, value in sources.items()}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
