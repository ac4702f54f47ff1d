"""Jinja2 templates, sandboxed, compiled once, with two fast paths.

- `{{ raw.host }}` or `{{ node }}` alone is resolved by a dict walk without
  Jinja2, and so is text with only such references in it
  (`{{ count }} hosts down in {{ group.site }}`); text without `{{`/`{%` is a
  constant.
- A template that is an expression over dotted paths is a pure function of
  the values it reads: at compile time we list those paths, and renders are
  memoized by their values (`{{ 'resolution' if raw.state == 'up' else
  'problem' }}` costs one dict probe after the first render per state). Only
  scalar values are keyed: a path whose value is a map or a list (`raw |
  tojson`, `labels.items()`, `members`) is rendered, and so is every template
  that loops, assigns, calls globals, subscripts dynamically (`raw[raw.key]`)
  or draws random values.

A missing name or a None value renders as the empty string, on every path;
attributes of a missing name are missing too (ChainableUndefined), not errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final, TypeVar

import jinja2
from jinja2 import nodes

from correlator.ruleset import sandbox
from correlator.ruleset.compiled import once
from correlator.ruleset.sandbox import MAX_OUTPUT, BoundedEnvironment

_ENV: Final = BoundedEnvironment(
    autoescape=False, finalize=sandbox.finalize, undefined=jinja2.ChainableUndefined
)
K = TypeVar("K", bound=str)
_PLAIN_REF: Final = re.compile(r"^\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}$")
_MEMO_LIMIT: Final = 1024
_IMPURE_FILTERS: Final = frozenset(("random",))
# Names Jinja2 resolves on its own (loop state, blocks, macros' arguments), never context paths
_SPECIAL_NAMES: Final = frozenset(("loop", "self", "varargs", "kwargs", "caller"))
# What a memoizable template may be made of: expressions over its values, no statements that
# bind names (for, set, with, macros), no imports, no access to the context or environment
_PURE_NODES: Final = frozenset(
    (
        *(nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Const),
        *(nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Call),
        *(nodes.Keyword, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos),
        *(nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow),
        *(nodes.Concat, nodes.Compare, nodes.Operand, nodes.List, nodes.Tuple, nodes.Dict),
        nodes.Pair,
    )
)

Path = tuple[str, ...]


class _Missing:
    """A key the context does not have: Jinja2 renders it apart from a None value."""

    __slots__ = ()


MISSING: Final = _Missing()
_BYPASS: Final = object()  # a value the memo must not key on: render through Jinja2
_SCALAR_KEYS: Final = frozenset((int, bool, type(None)))


def _lookup(context: Any, path: Path) -> Any:
    value = context
    for part in path:  # a dict first: an ABC check costs 100 ns a step (a storm alert's walks)
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def memo_key(context: Mapping[str, Any], path: Path) -> Any:
    """What the template can see of `path`, as a memo key; `_BYPASS` when it may see more.

    Jinja2 reads a path through maps the way this walk does; anything else
    along it (a string's attributes, a list's items) or at its end (a map or
    a list used whole) is not keyed: the template is rendered.
    """
    value: Any = context
    for depth, part in enumerate(path):
        if type(value) is not dict and not isinstance(value, Mapping):
            return _BYPASS
        value = value.get(part, MISSING)
        if value is MISSING:
            return (MISSING, depth)  # undefined at this depth (its error text names it)
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return (float, repr(value))  # -0.0 and 0.0 (or nan) compare alike but render apart
    if kind in _SCALAR_KEYS:
        return (kind, value)  # 1, 1.0 and True hash alike but render apart
    return _BYPASS


def referenced_paths(ast: nodes.Template) -> list[Path] | None:
    """Dotted paths the template reads from its context, or None if it is not memoizable.

    Memoizable: the template is an expression (filters, tests, conditionals,
    method calls) over dotted paths of string keys, and nothing else — no
    loops or assignments, no globals, no dynamic subscript; a path ends where
    a call, a computed subscript or any other use takes its value. The value
    is checked at render time (`memo_key`): only scalars are keyed.
    """
    if any(type(node) not in _PURE_NODES for node in ast.find_all(nodes.Node)):
        return None
    if any(f.name in _IMPURE_FILTERS for f in ast.find_all(nodes.Filter)):
        return None
    parents: dict[int, nodes.Node] = {}
    for node in ast.find_all(nodes.Node):
        for child in node.iter_child_nodes():
            parents[id(child)] = node
    paths: set[Path] = set()
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load" or name.name in _SPECIAL_NAMES or name.name in _ENV.globals:
            return None
        path = _path_from(name, parents)
        if path is None:
            return None
        paths.add(path)
    return sorted(paths)


def _path_from(name: nodes.Name, parents: dict[int, nodes.Node]) -> Path | None:
    """The dotted path that starts at `name`, or None if a step may read a method of a map."""
    path: list[str] = [name.name]
    current: nodes.Node = name
    while True:
        parent = parents.get(id(current))
        if isinstance(parent, nodes.Getattr) and parent.node is current:
            grand = parents.get(id(parent))
            if isinstance(grand, nodes.Call) and grand.node is parent:
                break  # a method call: the path ends at its receiver
            step = parent.attr
        elif (
            isinstance(parent, nodes.Getitem)
            and parent.node is current
            and isinstance(parent.arg, nodes.Const)
            and isinstance(parent.arg.value, str)
        ):
            step = parent.arg.value
        else:
            break
        if hasattr(dict, step):
            return None  # `a.items`, `a['keys']`: Jinja2 gives the map's method, not a key
        path.append(step)
        current = parent
    return tuple(path)


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


class _Shape:
    """What a template text is, whatever its prefix: parsed and compiled once per load."""

    __slots__ = ("_ast", "_jinja", "parts", "paths", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._ast: nodes.Template | None = _ENV.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"bad template {source!r}: {exc.message}") from None
        self.parts = interpolation(self._ast)
        self.paths = referenced_paths(self._ast) if self.parts is None else None
        self._jinja: jinja2.Template | None = None
        if self.parts is None:
            self.compiled()  # an unknown filter or test is an error of the rule file

    def compiled(self) -> jinja2.Template:
        """The bounded Jinja2 template (text with references only: compiled when first asked)."""
        if self._jinja is None:
            assert self._ast is not None
            try:
                self._jinja = _ENV.from_string(sandbox.bound(self._ast))
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"bad template {self.source!r}: {exc.message}") from None
            self._ast = None  # compiled: the parse is not needed any more
        return self._jinja


class Template:
    """A template over a mapping; `prefix` names a key that also resolves bare (`raw`).

    `render` is a closure picked at compile time for the template's shape, so
    the common cases cost one or two dict probes.
    """

    __slots__ = ("_jinja", "_parts", "_prefix", "constant", "key", "names", "render", "source")

    def __init__(self, source: str, *, prefix: str | None = None) -> None:
        self.source = source
        self._prefix = prefix
        self._jinja: jinja2.Template | None = None
        self._parts: list[str | Path] | None = None  # text and references, if that is all
        self.constant: str | None = None
        self.key: str | None = None  # `{{ key }}`: the one context key it prints
        # the context keys it reads (a caller may build only those); None: any of them
        self.names: frozenset[str] | None = frozenset()
        self.render: Callable[[Mapping[str, Any]], str]
        if "{{" not in source and "{%" not in source and "{#" not in source:
            self.constant = source
            self.render = lambda context: source
            return
        plain = _PLAIN_REF.match(source.strip())
        if plain is not None and plain.group(1) != prefix:
            path = self._strip(tuple(plain.group(1).split(".")))
            self.render = _path_renderer(path)
            self._parts = [path]
            self.names = frozenset(path[:1])
            if len(path) == 1:
                self.key = path[0]
            return
        shape = once("template", source, partial(_Shape, source))
        whole = (prefix,)  # the event itself (`{{ raw }}`, `raw | tojson`): never a path
        parts = shape.parts
        if parts is not None and whole not in parts:
            pieces = [part if isinstance(part, str) else self._strip(part) for part in parts]
            self.render = _interpolator(pieces)
            self._parts = pieces
            self.names = frozenset(part[0] for part in pieces if not isinstance(part, str))
            return
        self._jinja = shape.compiled()
        paths = shape.paths
        if paths is None or whole in paths:
            self.render = self._render
            self.names = None
        else:
            stripped = [self._strip(p) for p in paths]
            self.render = _memoized(self._render, stripped)
            self.names = frozenset(path[0] for path in stripped)

    def bound(
        self, values: Mapping[str, Any]
    ) -> tuple[Callable[[Mapping[str, Any]], str], frozenset[str]] | None:
        """This template with its references to `values`' keys rendered in, for contexts
        that hold those same values: the render of the rest and the names it reads.

        None: Jinja2 is not split. A storm's alert renders `{{ count }} down in
        {{ group.site }}` per member: bound to the group, it is the count between two texts.
        """
        if self.constant is not None:
            return self.render, frozenset()
        if self._parts is None:
            return None
        pieces: list[str | Path] = []
        for part in self._parts:
            if not isinstance(part, str) and part[0] in values:
                part = _whole_text(_lookup(values, part))  # as `_path_renderer` reads it
            if isinstance(part, str) and pieces and isinstance(pieces[-1], str):
                pieces[-1] += part
            else:
                pieces.append(part)
        names = frozenset(part[0] for part in pieces if not isinstance(part, str))
        return _interpolator(pieces), names

    def _strip(self, path: Path) -> Path:
        if self._prefix is not None and path[0] == self._prefix and len(path) > 1:
            return path[1:]
        return path

    def _render(self, context: Mapping[str, Any]) -> str:
        assert self._jinja is not None
        if self._prefix is not None:
            context = {**context, self._prefix: context}
        return sandbox.render(self._jinja, context)


def _text(value: Any) -> str:
    """A looked-up value as text, off the fast path: None is empty, long text is cut."""
    return sandbox.cut(_whole_text(value))


def _whole_text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _path_renderer(path: Path, *, cut: bool = True) -> Callable[[Mapping[str, Any]], str]:
    """`{{ a }}` / `{{ a.b }}` without Jinja2: None and missing render empty; `cut` at 64 KiB."""
    text = _text if cut else _whole_text
    if len(path) == 1:
        (key,) = path

        def one(context: Mapping[str, Any]) -> str:
            value = context.get(key)
            if type(value) is str and len(value) <= MAX_OUTPUT:
                return value
            return text(value)

        return one

    def walk(context: Mapping[str, Any]) -> str:
        value = _lookup(context, path)
        if type(value) is str and len(value) <= MAX_OUTPUT:
            return value
        return text(value)

    return walk


def _interpolator(parts: list[str | Path]) -> Callable[[Mapping[str, Any]], str]:
    """Text with `{{ path }}` references: each looked up as the fast path does, joined and cut."""
    pieces = tuple(
        (part, None) if isinstance(part, str) else ("", _path_renderer(part, cut=False))
        for part in parts
    )
    refs = [(i, part) for i, part in enumerate(parts) if not isinstance(part, str)]
    if len(refs) == 1 and len(refs[0][1]) == 1:  # `{{ count }}` between two texts
        at, (key,) = refs[0]
        head = "".join(text for text, _ in pieces[:at])
        tail = "".join(text for text, _ in pieces[at + 1 :])

        def around(context: Mapping[str, Any]) -> str:
            value = context.get(key)  # `_path_renderer`'s lookup, inline: no list, no join
            if type(value) is not str:
                value = "" if value is None else str(value)  # as `_whole_text`
            text = head + value + tail
            return text if len(text) <= MAX_OUTPUT else sandbox.cut(text)

        return around

    def interpolate(context: Mapping[str, Any]) -> str:
        text = "".join([text if get is None else get(context) for text, get in pieces])
        return text if len(text) <= MAX_OUTPUT else sandbox.cut(text)

    return interpolate


def _memoized(
    render: Callable[[Mapping[str, Any]], str], paths: list[Path]
) -> Callable[[Mapping[str, Any]], str]:
    """Render once per distinct tuple of the values the template reads (bounded)."""
    memo: dict[Any, str] = {}
    single = paths[0][0] if len(paths) == 1 and len(paths[0]) == 1 else None

    def cached(context: Mapping[str, Any]) -> str:
        if single is not None:
            key: Any = context.get(single, MISSING)
            if type(key) is not str:
                key = memo_key(context, (single,))
                if key is _BYPASS:
                    return render(context)
        else:
            key = tuple([memo_key(context, path) for path in paths])
            if _BYPASS in key:
                return render(context)
        try:
            return memo[key]
        except KeyError:
            pass
        limited = sandbox.LIMITS.hits
        text = render(context)
        if sandbox.LIMITS.hits != limited:
            return text  # cut or refused: counted again on every render, never kept
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = text
        return text

    return cached


class TemplateMap:
    """A compiled `{key: template}` map, constants split out so they cost one update."""

    __slots__ = ("constants", "copies", "dynamic")

    def __init__(self, sources: Mapping[K, Any], *, prefix: str | None = None) -> None:
        compiled = {str(k): Template(_source_text(v), prefix=prefix) for k, v in sources.items()}
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
            target[key] = value if type(value) is str and len(value) <= MAX_OUTPUT else _text(value)
        for key, template in self.dynamic:
            target[key] = template.render(context)


def compile_map(sources: Mapping[K, Any], *, prefix: str | None = None) -> dict[K, Template]:
    """Compile a `{key: template}` map; non-string values become constants."""
    return {key: Template(_source_text(value), prefix=prefix) for key, value in sources.items()}


def _source_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
