"""`correlator replay`: events from a JSON-lines file through the engine, offline.

The event `timestamp` is the clock; timers due before an event fire before it,
one due time after another, and each batch of changes is printed before the
next one is computed (changes carry the live row).
A bad line is reported on stderr with its number and the rest goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

import orjson

from correlator.engine import Engine
from correlator.errors import EventError
from correlator.model import Change
from correlator.timeparse import MAX_TIMESTAMP, parse_duration, parse_timestamp


@dataclass
class LineError:
    line: int
    message: str


@dataclass
class Replay:
    """Feeds timestamped events to an engine and collects what happened."""

    engine: Engine
    errors: list[LineError] = field(default_factory=list)
    clock: float = float("-inf")
    last_event: float | None = None

    def feed_lines(self, lines: Iterable[bytes]) -> Iterator[list[Change]]:
        """Each event's changes as a batch, after the batches of the timers due before it.

        A line that is not UTF-8 is reported like any other bad line.
        """
        loads, engine = orjson.loads, self.engine
        for number, line in enumerate(lines, start=1):
            try:
                event = loads(line)
            except orjson.JSONDecodeError as exc:
                if line.strip():  # a blank line is no event (and no error)
                    self.errors.append(LineError(number, f"not JSON: {exc}"))
                continue
            at = event.get("timestamp") if type(event) is dict else None
            if type(at) is not float or not 0.0 <= at < MAX_TIMESTAMP:  # else: as parsed
                at = self._stamp(event, number)
                if at is None:
                    continue
            if self.last_event is None or at > self.last_event:
                self.last_event = at
            if at > self.clock:
                due = engine.next_timer()
                if due is not None and due < at:
                    yield from self._timers(at, inclusive=False)
                self.clock = at
            try:
                changes = engine.process(event, self.clock)
            except EventError as exc:
                self.errors.append(LineError(number, f"dead-lettered ({exc.reason}): {exc}"))
                continue
            if changes:
                yield changes

    def _stamp(self, event: Any, number: int) -> float | None:
        """The event's time, or None when the line is reported instead."""
        if not isinstance(event, dict):
            self.errors.append(LineError(number, "an event must be a JSON object"))
            return None
        if "timestamp" not in event:
            self.errors.append(LineError(number, "missing 'timestamp' (epoch seconds or RFC 3339)"))
            return None
        try:
            return parse_timestamp(event["timestamp"])
        except ValueError as exc:
            self.errors.append(LineError(number, str(exc)))
            return None

    def advance(self, until: float) -> Iterator[list[Change]]:
        if until > self.clock:
            yield from self._timers(until, inclusive=True)
            self.clock = until
        yield self.engine.tick(self.clock)

    def _timers(self, until: float, *, inclusive: bool) -> Iterator[list[Change]]:
        """Fire due timers one due time at a time, so each batch is printed as it was."""
        engine = self.engine
        while (due := engine.next_timer()) is not None and (
            due < until or (inclusive and due == until)
        ):
            yield engine.tick(due)


def parse_until(text: str, last_event: float | None) -> float:
    """`--until`: epoch seconds, RFC 3339, or `+5m` after the last event."""
    if text.startswith("+"):
        return (last_event or 0.0) + parse_duration(text[1:])
    return parse_timestamp(text)


def run(
    engine: Engine,
    events: IO[bytes],
    out: TextIO,
    err: TextIO,
    *,
    source: str = "-",
    final: bool = False,
    until: str | None = None,
) -> int:
    """The replay command; exit status 0, or 1 when any line was rejected.

    `until` must already be valid (the command line checks it before replaying).
    """
    replay = Replay(engine)
    reported = 0

    def report_errors() -> None:
        nonlocal reported
        for error in replay.errors[reported:]:
            err.write(f"{source}:{error.line}: {error.message}\n")
        reported = len(replay.errors)

    def emit(batches: Iterable[list[Change]]) -> None:
        for changes in batches:
            if not final:
                for change in changes:
                    out.write(orjson.dumps(change.to_dict()).decode() + "\n")
            if len(replay.errors) > reported:
                report_errors()
        report_errors()

    emit(replay.feed_lines(events))
    if until is not None:
        emit(replay.advance(parse_until(until, replay.last_event)))
    if final:
        rows = sorted(engine.table.rows.values(), key=lambda a: a.serial)
        out.write(
            orjson.dumps([row.to_dict() for row in rows], option=orjson.OPT_INDENT_2).decode()
        )
        out.write("\n")
    return 1 if replay.errors else 0
