"""Expectations of rule unit tests and how actual rows are compared with them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict

from correlator.model import SEVERITY_NAMES, Alert, Change, parse_severity
from correlator.ruleset.paths import ALERT_FIELDS, alert_getter
from correlator.ruleset.schema import Duration
from correlator.timeparse import format_duration

# The keys an expected entry may use; a typo (`parnet:`) must fail the file, not pass.
ROW_KEYS: Final = ALERT_FIELDS | {"labels", "annotations", "expire_after", "journal"}
INCIDENT_KEYS: Final = frozenset(
    (
        "id", "rule", "title", "status", "severity", "group", "members", "root_cause",
        "opened_at", "updated_at", "closed_at",
    )
)  # fmt: skip  # the incident view (correlate/incident.py `_view`)


def _key_check(what: str, bare: frozenset[str], maps: tuple[str, ...]) -> Callable[[str], str]:
    """A bare name must be one of `bare`; `map.x` reaches into one of `maps`."""
    hint = " or ".join(f"{m}.x" for m in maps)

    def check(name: str) -> str:
        head, dot, rest = name.partition(".")
        if name in bare or (dot and rest and head in maps):
            return name
        raise ValueError(f"{name!r} is not {what} (bare names are its fields; use {hint})")

    return check


RowKey = Annotated[
    str, AfterValidator(_key_check("an alert field", ROW_KEYS, ("labels", "annotations")))
]
IncidentKey = Annotated[
    str, AfterValidator(_key_check("an incident key", INCIDENT_KEYS, ("group",)))
]
NotificationKey = Annotated[
    str,
    AfterValidator(
        _key_check("an alert field or receiver", ROW_KEYS | {"receiver"}, ("labels", "annotations"))
    ),
]


class Expectation(BaseModel):
    """What must hold at `at` (relative to the test's start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Duration
    alerts: list[dict[RowKey, Any]] | None = None
    absent: list[str] = []
    incidents: list[dict[IncidentKey, Any]] | None = None
    notifications: list[dict[NotificationKey, Any]] | None = None


def _severity_text(value: Any) -> str:
    try:
        level = parse_severity(value)
    except ValueError:
        return repr(value)
    return f"{SEVERITY_NAMES[level]} ({level})"


def _equal(name: str, expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual in (None, "")
    if name == "severity":
        try:
            return parse_severity(expected) == parse_severity(actual)
        except ValueError:
            return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if isinstance(expected, list | dict):
        return bool(expected == actual)
    return str(expected) == str(actual)


def _show(name: str, value: Any) -> str:
    if value is None or value == "":
        return "null"
    if name == "severity":
        return _severity_text(value)
    return repr(value) if isinstance(value, str) else str(value)


def _alert_value(alert: Alert, name: str) -> Any:
    return alert_getter(name)(alert)


def _dict_value(obj: Mapping[str, Any], name: str) -> Any:
    value: Any = obj
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _mismatches(expected: Mapping[str, Any], actual: Any, *, alert: bool) -> list[str]:
    out = []
    for name, want in expected.items():
        got = _alert_value(actual, name) if alert else _dict_value(actual, name)
        if not _equal(name, want, got):
            out.append(f"    - {name}: {_show(name, want)}\n    + {name}: {_show(name, got)}")
    return out


def _match_all(
    label: str, expected: Sequence[Mapping[str, Any]], actual: Sequence[Any], *, alert: bool
) -> list[str]:
    """Each expected entry must match a distinct actual object."""
    if not expected:
        if actual:
            names = ", ".join(_name(a, alert=alert) for a in actual[:5])
            return [f"{label}: expected none, got {len(actual)}: {names}"]
        return []
    failures = []
    fits = [
        [j for j, a in enumerate(actual) if not _mismatches(entry, a, alert=alert)]
        for entry in expected
    ]
    assigned = _assign(fits)
    taken = {j for j in assigned if j is not None}
    free = [a for j, a in enumerate(actual) if j not in taken]
    for i, entry in enumerate(expected):
        if assigned[i] is not None:
            continue
        wanted = ", ".join(f"{k}: {_show(k, v)}" for k, v in entry.items())
        text = f"{label}[{i}] {{{wanted}}}: no match"
        closest = _closest(entry, free or list(actual), alert=alert)
        if closest is None:
            text += f" (there are no {label})"
        else:
            text += f"; closest is {_name(closest, alert=alert)}:\n"
            text += "\n".join(_mismatches(entry, closest, alert=alert))
        failures.append(text)
    return failures


def _assign(fits: list[list[int]]) -> list[int | None]:
    """A distinct actual object per expected entry, for as many entries as possible.

    A maximum bipartite matching (augmenting paths): taking the first fit for
    each entry in turn could leave a later entry without one although an
    assignment exists. Expectation lists are short; this is quadratic at worst.
    """
    owner: dict[int, int] = {}  # actual index → entry index

    def place(entry: int, seen: set[int]) -> bool:
        for j in fits[entry]:
            if j not in seen:
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = entry
                    return True
        return False

    for entry in range(len(fits)):
        place(entry, set())
    assigned: list[int | None] = [None] * len(fits)
    for j, entry in owner.items():
        assigned[entry] = j
    return assigned


def _closest(entry: Mapping[str, Any], candidates: Sequence[Any], *, alert: bool) -> Any:
    if not candidates:
        return None
    wanted_id = entry.get("identifier", entry.get("id"))
    for candidate in candidates:
        name = _name(candidate, alert=alert)
        if wanted_id is not None and name == wanted_id:
            return candidate
    return min(candidates, key=lambda c: len(_mismatches(entry, c, alert=alert)))


def _name(obj: Any, *, alert: bool) -> str:
    if alert:
        return str(obj.identifier)
    return str(obj.get("id") or obj.get("identifier") or obj.get("receiver"))


def _notification_view(change: Change) -> list[dict[str, Any]]:
    """One flat view per alert in the notification, so `identifier` etc. can be matched."""
    views = []
    for alert in change.sent_alerts():
        view = dict(alert)  # the row as it was sent
        view["receiver"] = change.receiver
        views.append(view)
    return views or [{"receiver": change.receiver}]


def check_expectation(
    exp: Expectation,
    rows: Mapping[str, Alert],
    incidents: Mapping[str, dict[str, Any]],
    notifications: Sequence[Change],
) -> list[str]:
    """Readable failure texts for one expectation (empty when it holds)."""
    failures: list[str] = []
    ordered = sorted(rows.values(), key=lambda a: a.serial)
    if exp.alerts is not None:
        failures += _match_all("alerts", exp.alerts, ordered, alert=True)
    for identifier in exp.absent:
        if identifier in rows:
            row = rows[identifier]
            failures.append(f"absent: {identifier!r} has a row (status {row.status})")
    if exp.incidents is not None:
        failures += _match_all("incidents", exp.incidents, list(incidents.values()), alert=False)
    if exp.notifications is not None:
        views = [view for change in notifications for view in _notification_view(change)]
        failures += _match_all("notifications", exp.notifications, views, alert=False)
    if not failures:
        return []
    body = "\n".join("  " + line for failure in failures for line in failure.splitlines())
    return [f"at {format_duration(exp.at)}:\n{body}"]
