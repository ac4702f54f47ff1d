"""Compile once per load: rule texts shared by validation, building and every rule.

Validators compile each template while a file is validated (so an error has
its line), and builders compile it again into the operators; 43,000 rules
repeat a few texts many times. Within `shared()`, `once(kind, text, make)`
makes each distinct text once and hands the same compiled object to everyone.
Outside it, nothing is kept: compiled objects live as long as their rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

Cache = dict[tuple[str, Hashable], Any]
_cache: ContextVar[Cache | None] = ContextVar("compiled", default=None)


@contextmanager
def shared(cache: Cache | None = None) -> Iterator[Cache]:
    """Within, `once` reuses what `cache` (a new one by default) holds; nested: the outer one."""
    outer = _cache.get()
    if cache is None:
        cache = outer if outer is not None else {}
    token = _cache.set(cache)
    try:
        yield cache
    finally:
        _cache.reset(token)


def once(kind: str, key: Hashable, make: Callable[[], T]) -> T:
    """`make()`, or what it made for the same kind and key within the current `shared()`."""
    cache = _cache.get()
    if cache is None:
        return make()
    try:
        value: T = cache[kind, key]
    except KeyError:
        value = cache[kind, key] = make()  # an error is raised again on the next try: not kept
    return value
