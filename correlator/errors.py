"""The exception tree. Every error correlator raises derives from CorrelatorError.

    CorrelatorError
     ├── RuleSetError          a rule set failed to load; holds one RuleError per problem
     ├── EventError            an event cannot become an alert; goes to the dead-letter sink
     │    ├── InvalidEvent     missing required field or wrong type        (reason "invalid")
     │    └── LateEvent        older than the newest event minus max_lateness (reason "late")
     └── TestFileError         a `correlator test` file is invalid (file:line:col)

`reason` is a class attribute so it doubles as the dead-letter reason and metric label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class CorrelatorError(Exception):
    """Root of every error correlator raises on purpose."""


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in a rule file, located at the offending YAML node."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class RuleFieldError(ValueError):
    """A rule that cannot be built, because of the value at `path` within the rule."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class RuleSetError(CorrelatorError):
    """A rule set was rejected; `errors` lists every problem found, in file order."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class EventError(CorrelatorError):
    """An event that cannot enter the alert table."""

    reason: ClassVar[str] = "invalid"


class InvalidEvent(EventError):
    """A required field is missing or a value has the wrong type."""

    reason: ClassVar[str] = "invalid"


class LateEvent(EventError):
    """The event is older than the newest event time seen minus max_lateness."""

    reason: ClassVar[str] = "late"


class TestFileError(CorrelatorError):
    """A rule unit-test file is invalid; the message is `file:line:col: ...`."""

    __test__ = False  # not a pytest test class
