"""Rule unit tests (`correlator test`), importable by a rule repository's own pytest suite.

A test file (DESIGN.md §5) names rule files, a clock origin and tests; each test
feeds timed events into a fresh engine on a virtual clock and checks expected
rows, absent identifiers, incidents and notifications at given times.

Matching: each expected entry must match a distinct object (every listed field
equal); objects not listed are allowed. An explicitly empty list means "none at
all". Use `absent:` to say a row must not exist.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from correlator.clock import FakeClock
from correlator.engine import Engine
from correlator.errors import EventError, TestFileError
from correlator.model import (
    INCIDENT_CLOSED,
    INCIDENT_OPENED,
    INCIDENT_UPDATED,
    NOTIFICATION,
    Change,
)
from correlator.ruleset.loader import (
    RuleSet,
    load_rule_texts,
    load_rules,
    rule_texts,
    validation_errors,
)
from correlator.ruleset.schema import Duration
from correlator.ruleset.tables import SQL_PREFIX, sql_rows_text
from correlator.ruleset.yamlpos import Located, YamlError, dotted, load, read_utf8
from correlator.testing_match import Expectation, check_expectation
from correlator.timeparse import format_duration, parse_timestamp

__all__ = [
    "FakeClock",
    "TestResult",
    "feed",
    "load_test_file",
    "run_test_file",
    "run_test_files",
]


# Bounds of one test, so a typo (`times: 30000000`, `at: 1e12`) is an error, not a hang.
MAX_EVENTS: Final = 100_000  # events fed to one test, repeats included
MAX_SPAN: Final = 366 * 86400.0  # the latest event or expectation, from the test's start


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Repeat(_Model):
    every: Duration
    times: int = Field(ge=1)


class TimedEvent(_Model):
    at: Duration
    event: dict[str, Any]
    repeat: Repeat | None = None
    late_by: Duration = 0.0  # arrives at `at` but happened this much earlier


class Case(_Model):
    name: str
    events: list[TimedEvent] = []
    expect: list[Expectation] = []

    @field_validator("expect")
    @classmethod
    def _ordered(cls, value: list[Expectation]) -> list[Expectation]:
        for before, after in pairwise(value):
            if after.at < before.at:
                raise ValueError("expectations must be in time order")
        return value


class TestFile(_Model):
    __test__ = False  # not a pytest test class

    rule_files: list[str] | None = None
    # rows of the rules' SQL lookup tables (the daemon reads them from its database)
    tables: dict[str, list[dict[str, Any]]] = {}
    start: float = 0.0
    max_lateness: Duration = 300.0
    tests: list[Case]

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> float:
        return parse_timestamp(value)


@dataclass
class TestResult:
    """The outcome of one test: its failures as readable text blocks."""

    __test__ = False

    file: str
    name: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def feed(engine: Engine, event: dict[str, Any], now: float | None = None) -> list[Change]:
    """Process one event as replay does: timers due strictly before it fire first.

    `now` defaults to the event's own `timestamp` (epoch seconds).
    """
    at = event["timestamp"] if now is None else now
    return engine.run_timers_before(at) + engine.process(event, at)


def load_test_file(path: str | Path) -> tuple[TestFile, RuleSet]:
    """Parse and validate a test file and load its rules; raise TestFileError or RuleSetError."""
    path = Path(path)
    try:
        located = load(read_utf8(path))
    except YamlError as exc:
        raise TestFileError(f"{path}:{exc.line}:{exc.col}: {exc.message}") from None
    except OSError as exc:
        raise TestFileError(f"{path}:1:1: cannot read: {exc}") from None
    try:
        spec = TestFile.model_validate(located.data)
    except ValidationError as exc:
        raise TestFileError(
            "\n".join(map(str, validation_errors(str(path), located, exc)))
        ) from None
    _check_bounds(path, located, spec)
    base = path.parent
    if spec.rule_files is None:
        roots = [base.parent if base.name == "tests" else base]
    else:
        roots = []
        for i, pattern in enumerate(spec.rule_files):
            found = sorted(glob.glob(str(base / pattern), recursive=True))
            if not found:
                line, col = located.position(("rule_files", i))
                raise TestFileError(
                    f"{path}:{line}:{col}: rule_files[{i}]: no file matches {pattern!r}"
                )
            roots.extend(Path(p) for p in found)
    if not spec.tables:
        return spec, load_rules(*roots)
    rows = {SQL_PREFIX + name: sql_rows_text(table) for name, table in spec.tables.items()}
    rules = load_rule_texts(rule_texts(*roots) | rows)
    for name in spec.tables:
        if name not in rules.sql_tables:
            line, col = located.position(("tables", name), key=True)
            raise TestFileError(f"{path}:{line}:{col}: tables: {name!r} is not a sql table")
    return spec, rules


def _check_bounds(path: Path, located: Located, spec: TestFile) -> None:
    """At most MAX_EVENTS events and MAX_SPAN of virtual time per test, else a located error."""

    def fail(where: tuple[str | int, ...], message: str) -> TestFileError:
        line, col = located.position(located.resolve(where))
        return TestFileError(f"{path}:{line}:{col}: {dotted(where)}: {message}")

    span = format_duration(MAX_SPAN)
    for i, case in enumerate(spec.tests):
        count = 0
        for j, item in enumerate(case.events):
            times = item.repeat.times if item.repeat else 1
            count += times
            here = ("tests", i, "events", j)
            if count > MAX_EVENTS:
                raise fail((*here, "repeat", "times"), f"more than {MAX_EVENTS} events in one test")
            last = item.at + (times - 1) * (item.repeat.every if item.repeat else 0.0)
            if last > MAX_SPAN:
                key = "repeat" if item.repeat and item.at <= MAX_SPAN else "at"
                raise fail((*here, key), f"events must happen within {span} of the start")
        for j, expectation in enumerate(case.expect):
            if expectation.at > MAX_SPAN:
                raise fail(("tests", i, "expect", j, "at"), f"at most {span} after the start")


def run_test_file(path: str | Path) -> list[TestResult]:
    spec, rules = load_test_file(path)
    return [_run_case(str(path), spec, rules, case) for case in spec.tests]


def _events(spec: TestFile, case: Case) -> list[tuple[float, dict[str, Any]]]:
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for order, item in enumerate(case.events):
        repeat = item.repeat or Repeat(every=0, times=1)
        for n in range(repeat.times):
            at = spec.start + item.at + n * repeat.every
            timed.append((at, order, {**item.event, "timestamp": at - item.late_by}))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [(at, event) for at, _, event in timed]


def _run_case(file: str, spec: TestFile, rules: RuleSet, case: Case) -> TestResult:
    result = TestResult(file, case.name)
    engine = Engine(rules, max_lateness=spec.max_lateness, snapshots=True)
    events = _events(spec, case)
    incidents: dict[str, dict[str, Any]] = {}
    notifications: list[Change] = []

    def collect(changes: Sequence[Change]) -> None:
        for change in changes:
            if change.kind in (INCIDENT_OPENED, INCIDENT_UPDATED, INCIDENT_CLOSED):
                assert change.incident is not None
                incidents[str(change.incident.get("id"))] = change.incident
            elif change.kind == NOTIFICATION:
                notifications.append(change)

    clock = spec.start
    position = 0
    for expectation in case.expect:
        until = spec.start + expectation.at
        while position < len(events) and events[position][0] <= until:
            at, event = events[position]
            position += 1
            if at > clock:
                collect(engine.run_timers_before(at))
                clock = at
            try:
                collect(engine.process(event, clock))
            except EventError as exc:
                result.warnings.append(
                    f"event at {format_duration(at - spec.start)} dead-lettered ({exc.reason}): {exc}"
                )
        clock = max(clock, until)
        collect(engine.tick(clock))
        result.failures.extend(
            check_expectation(expectation, engine.table.rows, incidents, notifications)
        )
        notifications = []
    return result


def run_test_files(files: Sequence[str], out: TextIO) -> int:
    """The `correlator test` command: 0 all passed, 1 a test failed; invalid files raise."""
    results: list[TestResult] = []
    for file in files:
        results.extend(run_test_file(file))
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        out.write(f"{status} {result.file}: {result.name}\n")
        for warning in result.warnings:
            out.write(f"  warning: {warning}\n")
        for failure in result.failures:
            out.write(_indent(failure, "  ") + "\n")
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    out.write(f"{passed} passed, {failed} failed\n")
    return 1 if failed else 0


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())
