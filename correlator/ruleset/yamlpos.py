"""YAML loading that remembers where every node stands.

PyYAML composes a node tree with marks; we build plain Python data from it and
a map from each path (tuple of keys and indexes) to its 1-based line and column,
so a pydantic error location becomes `file:line:col` of the offending node.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # the C loader is several times faster where libyaml is present
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class _Loader(_BaseLoader):
    """YAML 1.2 booleans: `on`, `off`, `yes`, `no` stay strings (`on: [node]` is a key)."""

    yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag != _BOOL_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append((_BOOL_TAG, _YAML12_BOOL))

Path = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A YAML syntax or structure error at a 1-based line and column."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.col = col
        self.message = message


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
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(line, col, f"YAML syntax error: {exc.problem or exc}") from None
    located = Located(None)
    if node is None:
        located.data = {}
        return located
    located.data = _Builder(located).build(node, ())
    return located


class _Builder:
    def __init__(self, located: Located) -> None:
        self._located = located
        self._constructor = SafeConstructor()

    def build(self, node: Node, path: Path) -> Any:
        self._located.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            mark = node.start_mark
            raise YamlError(mark.line + 1, mark.column + 1, str(exc.problem)) from None

    def _mapping(self, node: MappingNode, path: Path) -> dict[Any, Any]:
        written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        self._constructor.flatten_mapping(node)  # resolves `<<`: merged pairs first, then ours
        first_written = len(node.value) - written
        out: dict[Any, Any] = {}
        seen: set[Any] = set()  # keys written in this mapping: only those can be duplicates
        for i, (key_node, value_node) in enumerate(node.value):
            key = self._constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                mark = key_node.start_mark
                raise YamlError(mark.line + 1, mark.column + 1, "mapping keys must be scalars")
            if i >= first_written:  # a merged key may be overridden (what merges are for)
                if key in seen:
                    mark = key_node.start_mark
                    raise YamlError(mark.line + 1, mark.column + 1, f"duplicate key {key!r}")
                seen.add(key)
            child = (*path, key if isinstance(key, str | int) else str(key))
            km = key_node.start_mark
            self._located.keys[child] = (km.line + 1, km.column + 1)
            out[key] = self.build(value_node, child)
        return out
