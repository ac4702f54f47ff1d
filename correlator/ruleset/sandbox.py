"""The Jinja2 environment templates run in: sandboxed, and bounded (DESIGN.md §4).

A rule file is trusted to be well meant, not to be cheap: a nested `range`,
`{{ raw.msg * raw.n }}` or `'x' * 10**9` must not hang or kill the engine. So
every render has a budget, and a template that exceeds it renders a marker
(`<template limit: ...>`), is counted (`hits`), and the pipeline goes on:

- loop iterations (every `for` and every item a filter generates) per render:
  `MAX_STEPS`;
- any value a template builds (an operator's result, a filter's or a
  method's output, a `~` concatenation): `MAX_VALUE` characters (items of
  lists and maps summed); operations that would build a bigger one (`*`,
  `**`, `%`, `center`, `replace`, `join`, ...) are refused before they run;
- all values built in one render: `MAX_WORK`;
- the rendered text: `MAX_OUTPUT` characters, cut there with `TRUNCATED`
  (counted too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_OUTPUT: Final = 64 * 1024
MAX_VALUE: Final = 1024 * 1024
MAX_WORK: Final = 16 * MAX_VALUE
MAX_STEPS: Final = 10_000
MAX_INT_BITS: Final = 64 * 1024
TRUNCATED: Final = "...<truncated: over 64 KiB>"

# `%` and `.format` specs whose width or precision builds the text: `%09999999d`, `{:>{w}}`
_PERCENT_WIDTH: Final = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_WIDTH: Final = re.compile(r"\{[^{}]*:[^{}]*?(\{|\d{4,})")


class TemplateLimit(Exception):
    """A render went over one of its bounds; it is shown as a marker, never raised further."""


class _Budget:
    """What the render in progress has used (renders are synchronous: one at a time)."""

    __slots__ = ("steps", "work")

    def __init__(self) -> None:
        self.steps = 0
        self.work = 0


class _Counter:
    __slots__ = ("hits",)

    def __init__(self) -> None:
        self.hits = 0


_budget = _Budget()
LIMITS: Final = _Counter()  # renders cut or refused since start; the engine turns it into stats


def weight(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters a value holds (lists and maps: their items'), counted up to just past `limit`."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if kind is int:
        return int(value.bit_length()) // 8 + 1
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    elif not isinstance(value, list | tuple | set | frozenset):
        return 1
    total = len(value)
    for item in value:
        if total > limit:
            break
        total += weight(item, limit - total)
    return total


def _charge(value: Any) -> Any:
    """Count a value built by the template against its bounds; generators item by item."""
    if isinstance(value, Iterator):
        return _stepped(value, weigh=True)
    size = weight(value)
    if size > MAX_VALUE:
        raise TemplateLimit(f"a value over {MAX_VALUE // 1024} KiB")
    _budget.work += size
    if _budget.work > MAX_WORK:
        raise TemplateLimit(f"over {MAX_WORK // (1024 * 1024)} MiB built in one render")
    return value


def _stepped(items: Iterable[Any], *, weigh: bool = False) -> Iterator[Any]:
    """Items one by one, each counted as a loop step (and weighed, for generated ones)."""
    for item in items:
        _budget.steps += 1
        if _budget.steps > MAX_STEPS:
            raise TemplateLimit(f"over {MAX_STEPS} loop iterations")
        yield _charge(item) if weigh else item


def _refuse_over(size: float, what: str) -> None:
    if size > MAX_VALUE:
        raise TemplateLimit(f"{what} would build a value over {MAX_VALUE // 1024} KiB")


def _check_percent(text: str) -> None:
    for width, precision in _PERCENT_WIDTH.findall(text):
        for spec in (width, precision):
            if spec == "*" or (spec and int(spec) > MAX_OUTPUT):
                raise TemplateLimit("a % format with a width over 64 KiB")


def _check_format(text: str) -> None:
    for spec in _FORMAT_WIDTH.findall(text):
        if spec == "{" or int(spec) > MAX_OUTPUT:
            raise TemplateLimit("a format with a width over 64 KiB")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before it runs."""
    if operator == "*":
        if type(left) is int and type(right) is int:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimit("a number too large")
            return
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and not isinstance(seq, int | float):
                _refuse_over(weight(seq) * max(times, 0), "repetition")
    elif operator == "**":
        ints = isinstance(left, int) and isinstance(right, int) and right > 0
        if ints and right * left.bit_length() > MAX_INT_BITS:
            raise TemplateLimit("a number too large")
    elif operator == "%" and isinstance(left, str):
        _check_percent(left)
    elif operator == "+" and not isinstance(left, int | float):
        _refuse_over(weight(left) + weight(right), "concatenation")


def _width_arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, at: int) -> Any:
    return kwargs.get(name, args[at] if len(args) > at else None)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        _refuse_over(len(text) + count * max(len(new) - len(old), 0), "replace")


def _check_width(value: Any, width: Any) -> None:
    if isinstance(width, int) and width > MAX_OUTPUT:
        raise TemplateLimit("a width over 64 KiB")
    if isinstance(width, str):  # indent's text: repeated on every line
        _refuse_over(len(width) * (str(value).count("\n") + 1) + len(str(value)), "indent")


def _joined(items: Iterable[Any], separator: Any = "") -> list[Any]:
    """The items of a join, refused before joining when the text would be too big."""
    out: list[Any] = []
    size = 0
    gap = len(separator) if isinstance(separator, str) else 0
    for item in _stepped(items):
        out.append(item)
        size += weight(item) + gap
        _refuse_over(size, "join")
    return out


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments are checked before and whose result is charged after."""
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[offset], args[offset + 1 :]
        if name == "join":
            sep = _width_arg(rest, kwargs, "d", 0) or ""
            args = (*args[:offset], _joined(value, sep), *rest)
        elif name in ("center", "indent"):
            _check_width(value, _width_arg(rest, kwargs, "width", 0))
        elif name == "format" and isinstance(value, str):
            _check_percent(value)
        elif name == "replace":
            _check_replace(str(value), rest[0] if rest else None, rest[1] if len(rest) > 1 else "")
        elif name == "batch":
            _check_width(value, _width_arg(rest, kwargs, "linecount", 0))
        return _charge(function(*args, **kwargs))

    return bounded


_STR_WIDTH_METHODS: Final = frozenset(("center", "ljust", "rjust", "zfill"))


def _check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a string method call that would build too big a value; a join's items are counted."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return args
    if name in _STR_WIDTH_METHODS:
        _check_width(owner, args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = _width_arg(args, kwargs, "tabsize", 0)
        _refuse_over(len(owner) * (size if isinstance(size, int) else 8), "expandtabs")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        return (_joined(args[0], owner), *args[1:])
    return args


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_STEPS:
        raise TemplateLimit(f"a range over {MAX_STEPS} numbers")
    return numbers


def _concat(pieces: list[Any]) -> str:
    """`a ~ b`: refused when the text would be too big."""
    texts = [str(piece) for piece in pieces]
    _refuse_over(sum(map(len, texts)), "concatenation")
    return _charge("".join(texts))  # type: ignore[no-any-return]


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every way to build a big value checked first."""

    intercepted_binops = frozenset(("*", "**", "%", "+"))

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_steps"] = _stepped
        self.filters["_concat"] = _concat
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # random text: neither reproducible nor needed

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        _check_binop(operator, left, right)
        return _charge(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{:>{w}}'.format`: the sandbox's wrapper, refused when a width builds the text."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def call(
        __self,  # Jinja2's own signature: any keyword may be a call's argument
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if __obj is _bounded_range:
            return _bounded_range(*args)
        args = _check_method(__obj, args, kwargs)
        return _charge(super().call(__context, __obj, *args, **kwargs))


class _Bounds(NodeTransformer):
    """Routes loops and `~` through the budget: `for x in (items | _steps)`, `[a, b] | _concat`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "_steps")
        return node

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.node, nodes.Name) and node.node.name == "loop" and node.args:
            node.args[0] = _filter(node.args[0], "_steps")  # a recursive loop's next level
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "_concat")


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def bound(ast: nodes.Template) -> nodes.Template:
    """The template with its loops and concatenations counted (the parse is changed in place)."""
    result = _Bounds().visit(ast)
    assert isinstance(result, nodes.Template)
    return result


def cut(text: str) -> str:
    """Text cut at `MAX_OUTPUT` with the marker (counted), or as it is."""
    if len(text) <= MAX_OUTPUT:
        return text
    LIMITS.hits += 1
    return text[:MAX_OUTPUT] + TRUNCATED


def render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render within the bounds; a limit gives its marker, an error its text, never an exception."""
    _budget.steps = _budget.work = 0
    parts: list[str] = []
    size = 0
    try:
        for part in template.root_render_func(template.new_context(dict(context))):
            size += len(part)
            if size > MAX_OUTPUT:
                parts.append(part[: MAX_OUTPUT - size + len(part)])
                parts.append(TRUNCATED)
                LIMITS.hits += 1
                break
            parts.append(part)
    except TemplateLimit as exc:
        LIMITS.hits += 1
        return f"<template limit: {exc}>"
    except Exception as exc:  # bad data (`10 // 0`) must not stop the engine: shown instead
        return f"<template error: {type(exc).__name__}: {exc}>"
    return "".join(parts)


def finalize(value: Any) -> Any:
    """Render None as the empty string, exactly as the fast path does; charge what is output."""
    if value is None:
        return ""
    if type(value) is str:
        _budget.work += len(value)
        if _budget.work > MAX_WORK:
            raise TemplateLimit(f"over {MAX_WORK // (1024 * 1024)} MiB built in one render")
        return value
    return _charge(value)
