"""The engine's state as plain data (JSON-ready) and back: what snapshots are made of.

A snapshot must restore the very object graph the engine ran on: a rule's
window and the table may hold the same row, an incident's root is one of its
members. So the encoding keeps identity as pickle does, with a memo: every
mutable object (list, dict, set, deque, alert row, state record) is numbered
in the order it is first met, and met again it is written as a reference to
that number. The decoder numbers objects in the same order as it creates them,
before their contents (so cycles decode too).

Unlike pickling the engine, the output is plain data (JSON-ready: `orjson`
writes it as is) and decoding builds only the classes it is given: a
snapshot read from a shared database cannot run code. Records are written by
field name, so a snapshot written before a field was added still loads (the
field takes its default). `dump` stores the plain data as a pickle that names
no class at all (`load` refuses one that does): for a million rows that
loads in a quarter of the time JSON takes, since it builds the lists and
strings straight from the bytes.

Tags (a JSON object with one of these keys; anything else is a scalar or a list):
`d` dict as [key, value, ...], `t` tuple, `s` set, `q` deque, `fs` frozenset,
`f` a float JSON cannot hold (inf, -inf, nan), `r` a reference to the n-th
object, `a` an alert row (its values in `ALERT_FIELDS` order; `af` when one
of its times is infinite, written as text), `A` the table's rows in bulk, `o` a record (its fields by name,
`c` its class), `n` a named tuple (its values, `c` its class).

A record's field made with `derived()` is not written: it is worked out again
from the rest after a restore (its default says "not yet"), so it never ties a
snapshot to how it is computed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
from collections import deque
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

from correlator.model import Alert, Elided, JournalEntry

_ALERT_DATACLASS_FIELDS: Final = dataclasses.fields(Alert)
ALERT_FIELDS: Final = tuple(f.name for f in _ALERT_DATACLASS_FIELDS)
_ALERT_VALUES: Final = attrgetter(*ALERT_FIELDS)
_JOURNAL: Final = ALERT_FIELDS.index("journal")
_FLOAT_FIELDS: Final = tuple(
    i for i, f in enumerate(dataclasses.fields(Alert)) if "float" in str(f.type)
)
_MAP_FIELDS: Final = tuple(
    i for i, f in enumerate(dataclasses.fields(Alert)) if str(f.type).startswith("dict")
)
_FLOAT_NAMES: Final = tuple(ALERT_FIELDS[i] for i in _FLOAT_FIELDS)

_SPECIAL_FLOATS: Final = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def type_name(cls: type) -> str:
    """A record class's name in snapshots: its module's last part and its own name."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


class SnapshotError(ValueError):
    """A snapshot that cannot be decoded (corrupt, or a class this version does not know)."""


def dump(plain: Any) -> bytes:
    """Plain data (scalars, lists, dicts) as bytes."""
    return pickle.dumps(plain, protocol=5)


def load(data: bytes) -> Any:
    """The plain data `dump` wrote; SnapshotError if the bytes name any class or are corrupt."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise SnapshotError(f"not a snapshot: {exc}") from exc


class _PlainUnpickler(pickle.Unpickler):
    """Builds scalars, lists and dicts only: a pickle naming a class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise SnapshotError(f"a snapshot names no class, this one names {module}.{name}")


_DERIVED: Final = "derived"


def derived(default: Any) -> Any:
    """A dataclass field left out of snapshots; restored as `default`."""
    return dataclasses.field(default=default, metadata={_DERIVED: True})


def _saved(cls: type) -> tuple[str, ...]:
    """The names of the fields of a record class that snapshots hold."""
    return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get(_DERIVED))


class Encoder:
    """Turns objects into plain data; one encoder per snapshot (its memo spans all of it)."""

    def __init__(self, types: Iterable[type]) -> None:
        self._names = {cls: type_name(cls) for cls in types}
        self._memo: dict[int, int] = {}
        self._keep: list[object] = []  # what the memo numbers stays alive (ids are not reused)
        self._fields = {cls: _saved(cls) for cls in types if dataclasses.is_dataclass(cls)}

    def _seen(self, value: object) -> int | None:
        """The reference number of an object met before; else number it now (None)."""
        key = id(value)
        number = self._memo.get(key)
        if number is None:
            self._memo[key] = len(self._memo)
            self._keep.append(value)
        return number

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else {"f": repr(value)}
        if kind is tuple:
            return {"t": [self.encode(v) for v in value]}
        if kind is frozenset:
            return {"fs": [self.encode(v) for v in value]}
        number = self._seen(value)
        if number is not None:
            return {"r": number}
        if kind is list:
            return [self.encode(v) for v in value]
        if kind is dict:
            flat: list[Any] = []
            for key, item in value.items():
                flat.append(self.encode(key))
                flat.append(self.encode(item))
            return {"d": flat}
        if kind is set:
            return {"s": [self.encode(v) for v in value]}
        if kind is deque:
            return {"q": [self.encode(v) for v in value]}
        if kind is Alert:
            return self._alert(value)
        name = self._names.get(kind)
        if name is None:
            raise TypeError(f"cannot snapshot a {kind.__qualname__}: not a registered state type")
        saved = self._fields.get(kind)
        if saved is not None:
            fields = {f: self.encode(getattr(value, f)) for f in saved}
            return {"o": fields, "c": name}
        # a named tuple (immutable: numbered like the rest, never referenced twice in practice)
        return {"n": [self.encode(v) for v in value], "c": name}

    def rows(self, rows: list[Alert]) -> dict[str, list[Any]]:
        """The table's rows in bulk (numbered first, in order): `A` their values,
        `af` the positions of rows with an infinite time. One list per row, no
        tag each: a million rows load noticeably faster."""
        values, odd = [], []
        for i, row in enumerate(rows):
            self._seen(row)
            ((tag, one),) = self._alert(row).items()
            values.append(one)
            if tag == "af":
                odd.append(i)
        return {"A": values, "af": odd}

    def _alert(self, row: Alert) -> dict[str, list[Any]]:
        """A row as its field values in `ALERT_FIELDS` order (its maps are its own).

        Tagged `af` when a time is infinite (rare), so that the usual row
        decodes without looking at its times.
        """
        values: list[Any] = list(_ALERT_VALUES(row))
        for i in _MAP_FIELDS:  # copied: the plain form must not change with the engine
            if values[i] is not None:
                values[i] = dict(values[i])
        tag = "a"
        for i in _FLOAT_FIELDS:
            v = values[i]
            if v is not None and not math.isfinite(v):
                values[i] = repr(v)
                tag = "af"
        values[_JOURNAL] = [
            [e.at, e.who, e.text, e.dropped] if type(e) is Elided else [e.at, e.who, e.text]
            for e in row.journal
        ]
        return {tag: values}


class Decoder:
    """Plain data back into objects, building only the given record classes."""

    def __init__(self, types: Iterable[type], alert_fields: Iterable[str] = ALERT_FIELDS) -> None:
        self._types: dict[str, type[Any]] = {type_name(cls): cls for cls in types}
        self._memo: list[Any] = []
        fields = tuple(alert_fields)
        unknown = set(fields) - set(ALERT_FIELDS)
        if unknown:
            raise SnapshotError(f"alert fields this version does not know: {sorted(unknown)}")
        self._alert_fields = fields
        self._positional = fields == ALERT_FIELDS
        self._tags: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
            "r": self._ref,
            "d": self._dict,
            "t": lambda v, _: tuple([self.decode(x) for x in v]),
            "s": self._set,
            "q": self._deque,
            "fs": lambda v, _: frozenset(self.decode(x) for x in v),
            "f": lambda v, _: _SPECIAL_FLOATS[v],
            "a": self._alert,
            "af": self._alert,
            "A": self._rows,
            "o": self._record,
            "n": self._named,
        }

    def decode(self, value: Any) -> Any:
        kind = type(value)
        if kind is list:
            out: list[Any] = []
            self._memo.append(out)
            out.extend([self.decode(v) for v in value])
            return out
        if kind is not dict:
            return value
        for tag, body in value.items():
            if tag != "c":
                try:
                    return self._tags[tag](body, value)
                except (KeyError, IndexError, TypeError) as exc:
                    raise SnapshotError(f"bad {tag!r} entry in snapshot: {exc!r}") from exc
        raise SnapshotError(f"untagged object in snapshot: {sorted(value)}")

    def _ref(self, number: int, _: dict[str, Any]) -> Any:
        return self._memo[number]

    def _dict(self, flat: list[Any], _: dict[str, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        self._memo.append(out)
        decode = self.decode
        for i in range(0, len(flat), 2):
            key = decode(flat[i])
            out[key] = decode(flat[i + 1])
        return out

    def _set(self, items: list[Any], _: dict[str, Any]) -> set[Any]:
        out: set[Any] = set()
        self._memo.append(out)
        out.update([self.decode(v) for v in items])
        return out

    def _deque(self, items: list[Any], _: dict[str, Any]) -> deque[Any]:
        out: deque[Any] = deque()
        self._memo.append(out)
        out.extend([self.decode(v) for v in items])
        return out

    def _class(self, whole: dict[str, Any]) -> type[Any]:
        cls = self._types.get(whole.get("c", ""))
        if cls is None:
            raise SnapshotError(f"unknown state type {whole.get('c')!r} in snapshot")
        return cls

    def _record(self, fields: dict[str, Any], whole: dict[str, Any]) -> Any:
        cls = self._class(whole)
        known = {f.name for f in dataclasses.fields(cls)}
        record = object.__new__(cls)
        self._memo.append(record)
        # every field is decoded, known or not: the objects in one this version dropped
        # are numbered too, or every reference after them would name the wrong object
        values = {name: self.decode(v) for name, v in fields.items()}
        values = {name: v for name, v in values.items() if name in known}
        missing = known - values.keys()
        for f in dataclasses.fields(cls):  # written before these fields existed: defaults
            if f.name in missing:
                values[f.name] = _default(f)
        for name, v in values.items():
            object.__setattr__(record, name, v)
        return record

    def _named(self, items: list[Any], whole: dict[str, Any]) -> Any:
        cls = self._class(whole)
        self._memo.append(None)  # numbered by the encoder too; filled below
        slot = len(self._memo) - 1
        value = cls(*[self.decode(v) for v in items])
        self._memo[slot] = value
        return value

    def _rows(self, rows: list[list[Any]], whole: dict[str, Any]) -> list[Alert]:
        odd = set(whole.get("af", ()))
        alert, plain, special = self._alert, {"a": None}, {"af": None}
        return [alert(values, special if i in odd else plain) for i, values in enumerate(rows)]

    def _alert(self, values: list[Any], whole: dict[str, Any]) -> Alert:
        if self._positional:
            values = list(values)  # the plain form stays as it was
        else:  # written by a version with other fields: by name
            fields = dict(zip(self._alert_fields, values, strict=True))
            values = [
                fields[f.name] if f.name in fields else _default(f) for f in _ALERT_DATACLASS_FIELDS
            ]
        journal = values[_JOURNAL]
        values[_JOURNAL] = (
            [JournalEntry(*e) if len(e) == 3 else Elided(*e) for e in journal] if journal else ()
        )
        if "af" in whole:
            for i in _FLOAT_FIELDS:
                if type(values[i]) is str:  # inf, -inf or nan
                    values[i] = _SPECIAL_FLOATS[values[i]]
        row = Alert(*values)
        self._memo.append(row)
        return row


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise SnapshotError(f"the snapshot lacks field {f.name!r}, which has no default")
