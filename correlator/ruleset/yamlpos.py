"""YAML loading that remembers where every node stands.

PyYAML composes a node tree with marks; we build plain Python data from it and
a map from each path (tuple of keys and indexes) to its 1-based line and column,
so a pydantic error location becomes `file:line:col` of the offending node.

Loading is bounded, because a rule or test file may come from anyone: a file
over MAX_BYTES, nesting deeper than MAX_DEPTH, more than MAX_NODES values, more
than MAX_ALIASED values repeated through aliases and merge keys (the "billion
laughs"), and an alias inside its own anchor are YamlErrors at their position,
never a MemoryError or a RecursionError.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # the C loader is several times faster where libyaml is present
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


MAX_BYTES: Final = 16 * 1024 * 1024
MAX_DEPTH: Final = 100
MAX_NODES: Final = 1_000_000  # values in one file
MAX_ALIASED: Final = 100_000  # values repeated by aliases and merge keys

Path = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A YAML syntax or structure error at a 1-based line and column."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.col = col
        self.message = message


def _at(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Alias(Node):
    """Where an alias is written (`*name`), pointing at its anchored node.

    PyYAML's composer hands back the anchored node itself, so the alias's own
    position, and that it is an alias at all, would be lost.
    """

    def __init__(self, target: Node, anchor: str, mark: Any) -> None:
        super().__init__(target.tag, target, mark, mark)
        self.target = target
        self.anchor = anchor


class _BoundedComposer(Composer):
    """PyYAML's composer (driving libyaml's parser) with a depth bound and alias marks."""

    depth = 0
    peek_event: Callable[[], Event]  # the parser's, mixed in by _Loader

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = super().compose_node(parent, index)
            assert target is not None  # an alias always names a node
            return _Alias(target, str(event.anchor), event.start_mark)
        if self.depth >= MAX_DEPTH:
            line, col = _at(event.start_mark)
            raise YamlError(line, col, f"nesting deeper than {MAX_DEPTH} levels")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Loader(_BoundedComposer, _BaseLoader):
    """YAML 1.2 booleans: `on`, `off`, `yes`, `no` stay strings (`on: [node]` is a key)."""

    yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag != _BOOL_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        _BaseLoader.__init__(self, stream)
        Composer.__init__(self)


for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append((_BOOL_TAG, _YAML12_BOOL))


@dataclass
class Located:
    """Data loaded from one YAML document plus the position of every node."""

    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def resolve(self, loc: Sequence[str | int]) -> Path:
        """The deepest path along pydantic's `loc` that exists in the document.

        Parts that are not in the document (a tagged union's tag) are skipped.
        """
        path: Path = ()
        for part in loc:
            candidate = (*path, part)
            if candidate in self.values:
                path = candidate
        return path

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of a path's value node (or of its key)."""
        if key and path in self.keys:
            return self.keys[path]
        return self.values.get(path, (1, 1))


def dotted(path: Path) -> str:
    """`('correlate', 0, 'window')` → `correlate[0].window`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_utf8(path: pathlib.Path) -> str:
    """A YAML file's text; a byte that is not UTF-8 is a YamlError at its line and column."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise YamlError(1, 1, f"file too large: {size} bytes (at most {MAX_BYTES})")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError(line, col, f"not UTF-8: byte 0x{data[exc.start]:02x}") from None


def load(text: str) -> Located:
    """Parse one YAML document; raise YamlError with the position of a syntax error."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line, col = _at(exc.problem_mark or exc.context_mark)
        raise YamlError(line, col, f"YAML syntax error: {exc.problem or exc}") from None
    located = Located(None)
    if node is None:
        located.data = {}
        return located
    located.data = _Builder(located).build(node, ())
    return located


class _Builder:
    """Plain data from the node graph, expanding aliases within the bounds."""

    def __init__(self, located: Located) -> None:
        self._located = located
        self._constructor = SafeConstructor()
        self._nodes = 0
        self._aliased = 0
        self._alias: _Alias | None = None  # the outermost alias being expanded
        self._open: set[int] = set()  # collections being built (an alias to one is a cycle)

    def build(self, node: Node, path: Path) -> Any:
        self._located.values[path] = _at(node.start_mark)
        self._count(node, path)
        if isinstance(node, _Alias):
            return self._expand(node, path)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            assert isinstance(node, SequenceNode)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _count(self, node: Node, path: Path) -> None:
        self._nodes += 1
        where = self._alias or node
        if self._nodes > MAX_NODES:
            raise YamlError(*_at(node.start_mark), f"more than {MAX_NODES} values in one file")
        if self._alias is not None:
            self._aliased += 1
            if self._aliased > MAX_ALIASED:
                message = (
                    f"aliases repeat more than {MAX_ALIASED} values (at *{self._alias.anchor})"
                )
                raise YamlError(*_at(self._alias.start_mark), message)
        if len(path) > MAX_DEPTH:
            what = f" once alias *{self._alias.anchor} is expanded" if self._alias else ""
            raise YamlError(*_at(where.start_mark), f"nesting deeper than {MAX_DEPTH}{what}")

    def _expand(self, alias: _Alias, path: Path) -> Any:
        if id(alias.target) in self._open:
            line, col = _at(alias.start_mark)
            raise YamlError(line, col, f"alias *{alias.anchor} is inside its own anchor")
        outermost = self._alias is None
        if outermost:
            self._alias = alias
        try:
            data = self.build(alias.target, path)
        finally:
            if outermost:
                self._alias = None
        self._located.values[path] = _at(alias.start_mark)
        return data

    def _scalar(self, node: Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlError(*_at(node.start_mark), str(exc.problem)) from None

    def _key(self, key_node: Node) -> Any:
        key = self._scalar(key_node.target if isinstance(key_node, _Alias) else key_node)
        if not isinstance(key, str | int | float | bool) or key is None:
            raise YamlError(*_at(key_node.start_mark), "mapping keys must be scalars")
        return key

    def _mapping(self, node: MappingNode, path: Path) -> dict[Any, Any]:
        """Merged mappings (`<<`) first, earlier ones winning; then the keys written here."""
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                out.update(self._merged(value_node, path))
        self._located.values[path] = _at(node.start_mark)
        seen: set[Any] = set()  # keys written in this mapping: only those can be duplicates
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            if key in seen:
                raise YamlError(*_at(key_node.start_mark), f"duplicate key {key!r}")
            seen.add(key)
            child = (*path, key if isinstance(key, str | int) else str(key))
            self._located.keys[child] = _at(key_node.start_mark)
            out[key] = self.build(value_node, child)
        return out

    def _merged(self, value_node: Node, path: Path) -> dict[Any, Any]:
        """`<<: *a` or `<<: [*a, *b]` (earlier mappings win), built and counted like any node."""
        target = value_node.target if isinstance(value_node, _Alias) else value_node
        sources = target.value if isinstance(target, SequenceNode) else [value_node]
        out: dict[Any, Any] = {}
        for source in reversed(sources):
            inner = source.target if isinstance(source, _Alias) else source
            if not isinstance(inner, MappingNode):
                line, col = _at(source.start_mark)
                raise YamlError(line, col, "a merge (<<) takes a mapping or a list of mappings")
            out.update(self.build(source, path))
        return out
