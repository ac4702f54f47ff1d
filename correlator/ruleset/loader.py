"""Load a rules directory: find files, validate, merge, compile, or say exactly what is wrong.

Every problem is a RuleError at the line and column of the offending YAML
node; all files are checked before anything is rejected, so one run of
`correlator check` lists every error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from correlator.correlate.base import BuildEnv, Operator
from correlator.correlate.inhibit import build_rule as build_inhibit
from correlator.correlate.kinds import BUILDERS
from correlator.correlate.policy import PolicyOperator, PolicySpec
from correlator.correlate.topology import find_cycles
from correlator.errors import RuleError, RuleSetError
from correlator.normalize.probe import Normalizer
from correlator.route.amconfig import alertmanager_config
from correlator.route.dispatch import NAME as DISPATCHER
from correlator.route.dispatch import Dispatcher, sends_resolved
from correlator.route.intervals import TimeIntervals, TimeIntervalSpec
from correlator.route.tree import Route, RouteSpec
from correlator.route.tree import build as build_route
from correlator.route.tree import problems as route_problems
from correlator.ruleset.compiled import Cache, shared
from correlator.ruleset.document import RuleFile
from correlator.ruleset.schema import NormalizeRule, Strict
from correlator.ruleset.tables import (
    TABLE_FOLDER,
    Table,
    TableSpec,
    build_table,
    is_table_data,
    is_table_file,
)
from correlator.ruleset.yamlpos import Located, YamlError, dotted, load, read_utf8

TEST_FILE_SUFFIXES = ("_test.yaml", "_test.yml")


@dataclass
class _Source:
    """A validated file with the positions of its nodes."""

    name: str
    located: Located
    model: RuleFile

    def error(self, path: tuple[str | int, ...], message: str) -> RuleError:
        """Located at `path`, or at its nearest written ancestor (a default has no node)."""
        while len(path) > 1 and path not in self.located.values:
            path = path[:-1]
        line, col = self.located.position(path)
        return RuleError(self.name, line, col, message)


@dataclass
class RuleSet:
    """A loaded, validated and compiled rule set, ready to swap into an engine."""

    files: list[str]
    normalize: list[NormalizeRule]
    normalizer: Normalizer
    factories: list[Callable[[BuildEnv], Operator]]
    env: BuildEnv
    compiled: Cache = field(default_factory=dict)  # templates compiled by the load, by text
    route: Route | None = None  # Alertmanager's routing tree, if a file has one
    receivers: list[dict[str, Any]] = field(default_factory=list)  # as written (Alertmanager's)
    sql_tables: dict[str, TableSpec] = field(default_factory=dict)  # read by the daemon
    alertmanager_config: str = ""  # the Alertmanager sections as YAML (`/api/v2/status`)

    def build_operators(self, max_lateness: float = 300.0) -> list[Operator]:
        """Fresh operators with empty state for an engine with this `max_lateness`."""
        env = replace(self.env, max_lateness=max_lateness)
        with shared(self.compiled):
            return [factory(env) for factory in self.factories]

    def summary(self) -> str:
        return (
            f"{len(self.files)} files, {len(self.normalize)} normalize rules, "
            f"{len(self.factories)} correlate rules, {len(self.env.topology)} topology nodes"
        )


def rule_files(root: Path) -> list[Path]:
    """`*.yaml`/`*.yml` below root, sorted; test files and `tests/` folders are skipped."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise RuleSetError([RuleError(str(root), 1, 1, "no such rules file or directory")])
    found = [
        path
        for pattern in ("*.yaml", "*.yml")
        for path in root.rglob(pattern)
        if not path.name.endswith(TEST_FILE_SUFFIXES)
        and not any(
            part in ("tests", TABLE_FOLDER) or part.startswith(".")
            for part in path.relative_to(root).parts[:-1]
        )
    ]
    return sorted(found)


def table_files(root: Path) -> list[Path]:
    """Lookup-table files (`tables/` folders below root, or beside a single rule file)."""
    folder = root.parent if root.is_file() else root
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_table_file(str(p)))


def load_rules(*roots: str | Path) -> RuleSet:
    """Load every rule file under the given directories or files; raise RuleSetError."""
    errors: list[RuleError] = []
    texts = _read([path for root in roots for path in _files(Path(root))], errors)
    return _load(texts, errors)


def rule_texts(*roots: str | Path) -> dict[str, str]:
    """The text of every rule file under the roots, by path; raise RuleSetError if unreadable.

    With `load_rule_texts`, what the daemon journals is exactly what it loaded.
    """
    errors: list[RuleError] = []
    texts = _read([path for root in roots for path in _files(Path(root))], errors)
    if errors:
        raise RuleSetError(errors)
    return texts


def _files(root: Path) -> list[Path]:
    """Rule files, then lookup tables: the texts a rule set is made of."""
    return rule_files(root) + table_files(root)


def load_rule_texts(texts: Mapping[str, str]) -> RuleSet:
    """Load rule files given as `{path: text}` (errors are located at those paths)."""
    return _load(dict(texts), [])


def _read(paths: list[Path], errors: list[RuleError]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in paths:
        try:
            texts[str(path)] = read_utf8(path)
        except YamlError as exc:
            errors.append(RuleError(str(path), exc.line, exc.col, exc.message))
        except OSError as exc:
            errors.append(RuleError(str(path), 1, 1, f"cannot read: {exc}"))
    return texts


def _load(texts: dict[str, str], errors: list[RuleError]) -> RuleSet:
    data = {name: text for name, text in texts.items() if is_table_data(name)}
    rules = {name: text for name, text in texts.items() if name not in data}
    with shared() as cache:  # validation and building compile each text once
        parsed = [_parse(name, text, errors) for name, text in rules.items()]
        sources = [source for source in parsed if source is not None]
        if not errors:
            _check_names(sources, errors)
        if errors:
            raise RuleSetError(sorted(errors, key=lambda e: (e.file, e.line, e.col)))
        ruleset = _compile(sources, list(rules), data)
    ruleset.compiled = cache
    return ruleset


def _parse(name: str, text: str, errors: list[RuleError]) -> _Source | None:
    try:
        located = load(text)
    except YamlError as exc:
        errors.append(RuleError(name, exc.line, exc.col, exc.message))
        return None
    if not isinstance(located.data, dict):
        errors.append(RuleError(name, 1, 1, "a rule file must be a mapping of sections"))
        return None
    try:
        model = RuleFile.model_validate(located.data)
    except ValidationError as exc:
        errors.extend(validation_errors(name, located, exc))
        return None
    return _Source(name, located, model)


def validation_errors(name: str, located: Located, exc: ValidationError) -> list[RuleError]:
    """Pydantic errors as RuleErrors at the offending node."""
    out = []
    for error in exc.errors(include_url=False):
        path = located.resolve(error["loc"])
        unknown = error["type"] == "extra_forbidden"
        bad_key = error["loc"][-1:] == ("[key]",)  # a dict key refused by its own validator
        line, col = located.position(path, key=unknown or bad_key)
        message = error["msg"].removeprefix("Value error, ")
        if unknown:
            message = f"unknown key {path[-1]!r}" if path else message
        elif error["type"] == "missing":
            message = f"missing required key {error['loc'][-1]!r}"
        where = dotted(path)
        out.append(RuleError(name, line, col, f"{where}: {message}" if where else message))
    return sorted(out, key=lambda e: (e.line, e.col))


def _named(source: _Source) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for section in ("normalize", "correlate", "policies"):
        for i, rule in enumerate(source.located.data.get(section) or ()):
            name = rule.get("name") if isinstance(rule, dict) else None
            if isinstance(name, str):
                yield (section, i, "name"), name
    for i, inhibit in enumerate(source.model.inhibit_rules):
        path = ("inhibit_rules", i, "name") if inhibit.name else ("inhibit_rules", i)
        yield path, inhibit.rule_name()  # an unnamed (pasted) rule has a generated name


def _check_names(sources: list[_Source], errors: list[RuleError]) -> None:
    seen: dict[str, RuleError] = {}
    for source in sources:
        for path, name in _named(source):
            here = source.error(path, "")
            first = seen.setdefault(name, here)
            if first is not here:
                where = f"{first.file}:{first.line}:{first.col}"
                errors.append(
                    source.error(path, f"duplicate rule name {name!r} (first at {where})")
                )


def _compile(sources: list[_Source], files: list[str], data: dict[str, str]) -> RuleSet:
    errors: list[RuleError] = []
    topology: dict[str, tuple[str, ...]] = {}
    origin: dict[str, _Source] = {}
    for source in sources:
        for node, deps in source.model.topology.items():
            if node in topology:
                errors.append(source.error(("topology", node), f"node {node!r} defined twice"))
            topology[node] = tuple(deps.depends_on)
            origin.setdefault(node, source)
    for cycle in find_cycles(topology):
        where = origin[cycle[0]]
        line, col = where.located.position(("topology", cycle[0]), key=True)
        message = f"topology: dependency cycle {' -> '.join(cycle)}"
        errors.append(RuleError(where.name, line, col, message))
    env = BuildEnv(topology=topology)
    normalize = [rule for source in sources for rule in source.model.normalize]
    factories: list[Callable[[BuildEnv], Operator]] = []
    for source in sources:
        for i, spec in enumerate(source.model.correlate):
            factory = partial(BUILDERS[spec.kind], spec)
            try:
                factory(env)  # built once here so a bad rule is rejected at load time
            except ValueError as exc:
                at_path = ("correlate", i, *getattr(exc, "path", ()))
                errors.append(source.error(at_path, f"correlate[{i}]: {exc}"))
            factories.append(factory)
        factories.extend(partial(build_inhibit, rule) for rule in source.model.inhibit_rules)
    factories.extend(_policies(sources, _tables(sources, data, errors), errors))
    route = _route(sources, errors)
    if route is not None:
        factories.append(_dispatcher(sources, route))
    for source in sources:
        for path, name in _named(source):
            if name == DISPATCHER:
                errors.append(source.error(path, f"the rule name {name!r} is reserved (routing)"))
    if errors:
        raise RuleSetError(errors)
    return RuleSet(
        files=files,
        normalize=normalize,
        normalizer=Normalizer(normalize),
        factories=factories,
        env=env,
        route=route,
        receivers=[r for source in sources for r in source.model.receivers],
        alertmanager_config=alertmanager_config(source.located.data for source in sources),
        sql_tables={
            name: spec
            for source in sources
            for name, spec in source.model.tables.items()
            if spec.sql is not None
        },
    )


def _tables(
    sources: list[_Source], data: dict[str, str], errors: list[RuleError]
) -> dict[str, Table]:
    """Every `tables:` entry of every file, built (names are unique across files)."""
    tables: dict[str, Table] = {}
    for source in sources:
        for name, spec in source.model.tables.items():
            if name in tables:
                errors.append(source.error(("tables", name), f"table {name!r} defined twice"))
                continue
            try:
                tables[name] = build_table(name, spec, data, source.name)
            except ValueError as exc:
                where = ("tables", name, "sql" if spec.sql else "file" if spec.file else "rows")
                errors.append(source.error(where, f"tables.{name}: {exc}"))
    return tables


def _policies(
    sources: list[_Source], tables: dict[str, Table], errors: list[RuleError]
) -> list[Callable[[BuildEnv], Operator]]:
    """A factory per policy; a lookup of an unknown table or a notify of an unknown
    receiver is an error at its line."""
    receivers = {_name(r) for source in sources for r in source.model.receivers}
    factories: list[Callable[[BuildEnv], Operator]] = []
    for source in sources:
        for i, policy in enumerate(source.model.policies):
            ok = True
            for j, action in enumerate(policy.actions):
                at = ("policies", i, "actions", j)
                if action.lookup is not None and action.lookup.table not in tables:
                    message = f"policies[{i}]: no table {action.lookup.table!r}"
                    errors.append(source.error((*at, "lookup", "table"), message))
                    ok = False
                if action.notify is not None and action.notify not in receivers:
                    message = f"policies[{i}]: undefined receiver {action.notify!r}"
                    errors.append(source.error((*at, "notify"), message))
                    ok = False
            if ok:
                used = {a.lookup.table: tables[a.lookup.table] for a in policy.actions if a.lookup}
                factories.append(partial(_policy, policy, used))
    return factories


def _policy(spec: PolicySpec, tables: dict[str, Table], env: BuildEnv) -> Operator:
    return PolicyOperator(spec, tables)


def _route(sources: list[_Source], errors: list[RuleError]) -> Route | None:
    """The one routing tree, checked against the receivers and time intervals of every file."""
    receivers = {_name(r) for source in sources for r in source.model.receivers}
    intervals = {t.name for t in time_intervals(sources)}
    found = [source for source in sources if source.model.route is not None]
    for extra in found[1:]:
        first = found[0].error(("route",), "")
        where = f"{first.file}:{first.line}:{first.col}"
        errors.append(extra.error(("route",), f"route: a second routing tree (first at {where})"))
    if not found:
        return None
    source = found[0]
    spec = source.model.route
    assert spec is not None
    problems = list(route_problems(spec, receivers, intervals))
    for path, message in problems:
        errors.append(source.error(("route", *path), f"route: {message}"))
    return None if problems else build_route(spec)


def _name(entry: dict[str, object]) -> str:
    return str(entry.get("name", ""))


def time_intervals(sources: list[_Source]) -> list[TimeIntervalSpec]:
    """Every named time interval of every file (`mute_time_intervals` is the older key)."""
    return [
        interval
        for source in sources
        for interval in (*source.model.time_intervals, *source.model.mute_time_intervals)
    ]


class RoutingSpec(Strict):
    """What the dispatcher is built from: a reload keeps its groups while this is unchanged."""

    route: RouteSpec
    receivers: list[dict[str, Any]]
    time_intervals: list[TimeIntervalSpec]


def _dispatcher(sources: list[_Source], route: Route) -> Callable[[BuildEnv], Operator]:
    receivers = [r for source in sources for r in source.model.receivers]
    intervals = time_intervals(sources)
    tree_spec = next(s.model.route for s in sources if s.model.route is not None)
    spec = RoutingSpec(route=tree_spec, receivers=receivers, time_intervals=intervals)
    resolved = {_name(r): sends_resolved(r) for r in receivers}
    compiled = TimeIntervals(intervals)
    return lambda env: Dispatcher(spec, route, resolved, compiled)
