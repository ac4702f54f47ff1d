"""`kind: topology` — downstream alerts become symptoms of the most-upstream open alert.

With the `topology:` graph (`<node>: {depends_on: [..]}`, transitive), an open
matching alert on a node whose upstream nodes carry an open matching alert is a
symptom: its `parent` is the root alert's identifier and the rule suppresses
it. The root is an open matching alert on the most upstream such nodes (the
smallest depth below the top of the graph), so a root never has an open alert
above it.

Among the open alerts at that depth (several on one node, or on several nodes
of a diamond) a new symptom takes the one that joined the rule most recently,
across those nodes, and keeps it while it is open: a later alert at the same
depth never takes symptoms away, only a strictly more upstream one does. The
newest joiner is the one least likely to clear soon, so a symptom moves at most
once per root change, instead of following the oldest of many alerts on a node
every time that one clears (the storm: expiring alerts on a core node moved
every symptom below it up to hundreds of times over its life). Each node's open
alerts are kept in join order, so the newest is the last: O(1), no scan.

Arrival order does not matter: a root that opens later adopts the open alerts
below it (re-parenting those under a less upstream root); when a root clears,
each of its still-open symptoms moves under the then newest joiner at the most
upstream depth that still has an open alert, or is released. A symptom that
clears keeps `parent` and its suppression as the record of why nobody was told;
if it reopens it is placed again, under that same root if it is still a best
candidate (released if no root is left). A threshold or incident parent the
rule replaced is given back on release if the engine accepts it (no loop; a
threshold alert only while it is open).

The graph is compiled once per build: for each node its transitive ancestors,
most upstream first, and its transitive descendants. Open alerts are kept per
node, so an alert opening costs a walk of its own ancestors and, when it is a
root, of its descendants' nodes: never a table scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, PrivateAttr

from correlator.correlate.base import (
    CLEARED,
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
    ParentLink,
)
from correlator.model import CLEARED as CLEARED_STATUS
from correlator.model import Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import Rule


class TopologyRule(Rule):
    kind: Literal["topology"]
    max_alerts: int = Field(100_000, ge=1)
    # The graph the rule was built against: part of its definition, so a reload
    # that changes `topology:` rebuilds the operator instead of keeping a stale graph.
    _graph: tuple[tuple[str, tuple[str, ...]], ...] = PrivateAttr(default=())


# -- the graph ------------------------------------------------------------------


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Dependency cycles as node paths (`[a, b, a]`), each found once; iterative DFS."""
    gray, black = 1, 2
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    for start in graph:
        if color.get(start):
            continue
        color[start] = gray
        path = [start]
        stack = [iter(graph.get(start, ()))]
        while stack:
            for dep in stack[-1]:
                seen = color.get(dep, 0)
                if seen == gray:
                    cycles.append([*path[path.index(dep) :], dep])
                elif not seen:
                    color[dep] = gray
                    path.append(dep)
                    stack.append(iter(graph.get(dep, ())))
                    break
            else:
                color[path.pop()] = black
                stack.pop()
    return cycles


@dataclass(frozen=True, slots=True)
class Graph:
    """The compiled topology: depth, ancestors (most upstream first), descendants."""

    depth: dict[str, int]
    upstream: dict[str, tuple[str, ...]]
    downstream: dict[str, tuple[str, ...]]


def compile_graph(graph: Mapping[str, Sequence[str]]) -> Graph:
    """Transitive closure in topological order; nodes on or below a cycle are left out.

    The loader rejects cycles with their position, so this only has to stay
    well-defined if it is handed one.
    """
    nodes = set(graph) | {dep for deps in graph.values() for dep in deps}
    deps_of = {node: set(graph.get(node, ())) for node in nodes}
    waiting = {node: len(deps) for node, deps in deps_of.items()}
    children: dict[str, list[str]] = {node: [] for node in nodes}
    for node, deps in deps_of.items():
        for dep in deps:
            children[dep].append(node)
    ready = sorted(node for node, count in waiting.items() if count == 0)
    depth: dict[str, int] = {}
    ancestors: dict[str, set[str]] = {}
    while ready:
        node = ready.pop()
        deps = deps_of[node]
        depth[node] = 1 + max((depth[d] for d in deps), default=-1)
        ancestors[node] = set(deps).union(*(ancestors[d] for d in deps))
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    below: dict[str, list[str]] = {}
    for node, above in ancestors.items():
        for ancestor in above:
            below.setdefault(ancestor, []).append(node)
    return Graph(
        depth=depth,
        upstream={
            node: tuple(sorted(above, key=lambda a: (depth[a], a)))
            for node, above in ancestors.items()
            if above
        },
        downstream={node: tuple(sorted(nodes_below)) for node, nodes_below in below.items()},
    )


# -- the operator ---------------------------------------------------------------


class TopologyOperator(Operator):
    state = ("_open", "_joined", "_joins", "_node_of", "_root_of", "_symptoms", "_held", "_before")
    kind = "topology"
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED))

    def __init__(self, spec: TopologyRule, graph: Graph) -> None:
        super().__init__(spec.name, spec)
        preds = [m.test for m in compile_matchers(spec.match)]
        when = when_alert(spec.when)
        if when is not None:
            preds.append(when)
        self._matches = all_of(preds)
        self._graph = graph
        self._linked = graph.upstream.keys() | graph.downstream.keys()  # nodes with a dependency
        self._cap = spec.max_alerts
        self._open: dict[str, dict[str, Alert]] = {}  # node → its open matching alerts, join order
        self._joined: dict[str, int] = {}  # member identifier → join number (ties across nodes)
        self._joins = 0  # the next join number
        self._replay: dict[str, int] = {}  # while start() rebuilds: identifier → join number
        self._node_of: dict[str, str] = {}  # member identifier → node
        self._root_of: dict[str, Alert] = {}  # open symptom → its root alert
        self._symptoms: dict[str, dict[str, Alert]] = {}  # root identifier → open symptoms
        self._held: dict[str, str] = {}  # parent we set, by identifier (kept while cleared)
        # the link another rule had set (a threshold or incident group) before we set ours:
        # given back on release when the engine accepts it again
        self._before: dict[str, ParentLink] = {}

    def start(self, now: float, ctx: Context) -> None:
        """(Re)build the state from the open rows: a new or changed rule knows them at once.

        The state is derived from the table, so it is rebuilt whenever an engine
        starts running the rule (one pass per load, never per event). Upstream
        alerts go first, so symptoms find their root directly, without a flap.
        Join numbers follow the rows' serials (the order live processing saw them
        open, as far as the table tells), and `_best_root` places each symptom
        where live processing would have: under the newest alert at the root
        depth older than itself, else under the oldest one there (the one that
        would have adopted it) — unless the parent a previous version of the rule
        set is still one of those alerts: then it keeps it.
        """
        states = (
            self._open,
            self._joined,
            self._node_of,
            self._root_of,
            self._symptoms,
            self._held,
            self._before,
        )
        for state in states:
            state.clear()
        rows = [alert for alert in ctx.table.rows.values() if self._node(alert) is not None]
        rows.sort(key=lambda alert: alert.serial)
        self._replay = {alert.identifier: n for n, alert in enumerate(rows)}
        self._joins = len(rows)
        depth = self._graph.depth
        rows.sort(key=lambda alert: depth[alert.node])  # stable: serial order within a depth
        try:
            for alert in rows:
                self.on_transition(CREATED, alert, now, ctx)
        finally:
            self._replay = {}

    def _node(self, alert: Alert) -> str | None:
        """The graph node an alert takes part on, or None when it does not take part."""
        node = alert.node
        if alert.status == CLEARED_STATUS or node not in self._linked:
            return None  # outside the graph, or a node nothing depends on and on nothing
        return node if self._matches(alert) else None

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        deleted = transition == DELETED
        node = None if deleted else self._node(alert)
        old = self._node_of.get(alert.identifier)
        if node != old:
            if old is not None:
                self._leave(alert, old, now, ctx, deleted=deleted)
            if node is not None:
                self._join(transition, alert, node, now, ctx)
        if deleted:
            self._held.pop(alert.identifier, None)  # the engine dropped its suppressors
            self._before.pop(alert.identifier, None)

    def _best_root(self, node: str, before: int, keep: str = "") -> Alert | None:
        """The root for a member on `node` with join number `before`, or None if it has none.

        The candidates are the open members on the most upstream ancestors that
        have one. `keep` (the member's last root) wins if it is a candidate; else
        the newest joiner older than `before`, across those nodes. Live, every
        other member is older, so that is each bucket's last value: O(1) per
        node. Only start() can find none older (it joins upstream first, with
        numbers by serial): then the oldest, the one that would have adopted it.
        """
        depth = self._graph.depth
        joined = self._joined
        keep_node = self._node_of.get(keep) if keep else None
        best: Alert | None = None
        best_n = -1
        oldest: Alert | None = None
        oldest_n = 0
        at = -1  # the candidates' depth, once found
        for up in self._graph.upstream.get(node, ()):
            if at >= 0 and depth[up] > at:
                break
            bucket = self._open.get(up)
            if not bucket:
                continue
            at = depth[up]
            if up == keep_node:
                return bucket[keep]
            for alert in reversed(bucket.values()):  # newest first: live, the first one
                n = joined[alert.identifier]
                if n < before:
                    if n > best_n:
                        best, best_n = alert, n
                    break
            else:
                alert = next(iter(bucket.values()))
                n = joined[alert.identifier]
                if oldest is None or n < oldest_n:
                    oldest, oldest_n = alert, n
        return best if best is not None else oldest

    def _join(self, transition: str, alert: Alert, node: str, now: float, ctx: Context) -> None:
        if len(self._node_of) >= self._cap:
            self.refused(transition, ctx)
            return
        ident = alert.identifier
        joined = self._replay.pop(ident, None)
        if joined is None:
            joined = self._joins
            self._joins += 1
        self._node_of[ident] = node
        self._joined[ident] = joined
        self._open.setdefault(node, {})[ident] = alert
        self._inherit(alert, now, ctx)
        root = self._best_root(node, joined, self._held.get(ident, ""))
        if root is not None:
            self._attach(alert, root, now, ctx)
            return
        self._release(alert, now, ctx, "no open upstream alert")
        self._adopt(alert, node, now, ctx)

    def _inherit(self, alert: Alert, now: float, ctx: Context) -> None:
        """Take over a suppression under this name made before a reload changed the rule.

        The parent is taken over too when it is an alert on a node of the graph
        (other kinds parent their members to synthetic alerts).
        """
        ident = alert.identifier
        if ident in self._held or not self.holds(alert, ctx):
            return
        parent = ctx.table.get(alert.parent) if alert.parent else None
        ours = parent is not None and parent.node in self._graph.depth
        self._held[ident] = alert.parent if ours and alert.parent else ""
        ctx.suppress(alert, now, self.name, "taken over by the reloaded rule")  # claims it

    def _adopt(self, root: Alert, node: str, now: float, ctx: Context) -> None:
        """A new root: open members below with no root or a less upstream one move under it.

        A member under a root at the same depth keeps it: that root is open too.
        So when another alert on this node is open, everything below already has
        a root this one cannot beat: no walk (a storm opens many on one node).
        """
        if len(self._open[node]) > 1:
            return
        depth = self._graph.depth
        level = depth[node]
        adopted = 0
        for below in self._graph.downstream.get(node, ()):
            for symptom in list(self._open.get(below, {}).values()):
                if self._node_of.get(root.identifier) != node:
                    return  # the root left while we were at it (another rule cleared it)
                if self._node_of.get(symptom.identifier) != below:
                    continue
                current = self._root_of.get(symptom.identifier)
                if current is None or level < depth[current.node]:
                    self._attach(symptom, root, now, ctx)
                    adopted += 1
        if adopted:
            root.note(now, self.name, f"root cause of {adopted} downstream alerts")

    def _attach(self, symptom: Alert, root: Alert, now: float, ctx: Context) -> None:
        sid = symptom.identifier
        previous = self._root_of.get(sid)
        if previous is root:
            return
        if previous is not None:
            self._drop_symptom(previous.identifier, sid)
        self._root_of[sid] = root
        self._symptoms.setdefault(root.identifier, {})[sid] = symptom
        link = ctx.parent_link(symptom)
        if link is not None and link.rule != self.name:
            self._before[sid] = link  # another rule's group: remembered
        self._held[sid] = root.identifier
        why = f"{symptom.node} depends on {root.node}, where {root.identifier} is open"
        ours = ParentLink(root.identifier, self.name, self.kind)
        if not ctx.set_parent(
            symptom, ours, now, self.name, f"symptom of {root.identifier}: {why}"
        ):
            self._give_back(symptom, now, ctx, f"{root.identifier} is its descendant")
        ctx.suppress(symptom, now, self.name, why)

    def _drop_symptom(self, root_id: str, sid: str) -> None:
        bucket = self._symptoms.get(root_id)
        if bucket is not None:
            bucket.pop(sid, None)
            if not bucket:
                del self._symptoms[root_id]

    def _leave(self, alert: Alert, node: str, now: float, ctx: Context, *, deleted: bool) -> None:
        ident = alert.identifier
        del self._node_of[ident]
        del self._joined[ident]
        bucket = self._open[node]
        del bucket[ident]
        if not bucket:
            del self._open[node]
        root = self._root_of.pop(ident, None)
        if root is not None:
            self._drop_symptom(root.identifier, ident)
        if not deleted and alert.status != CLEARED_STATUS:
            self._release(alert, now, ctx, "no longer matches the rule")
        roots: dict[str, Alert | None] = {}  # next root per symptom node, found once
        for symptom in list(self._symptoms.pop(ident, {}).values()):
            self._rehome(symptom, alert, now, ctx, roots)

    def _rehome(
        self, symptom: Alert, gone: Alert, now: float, ctx: Context, roots: dict[str, Alert | None]
    ) -> None:
        """The root `gone` left: move `symptom` under the then best root, or release it.

        That is the newest joiner at the most upstream depth still open (every
        member is older than `self._joins`), found once per symptom node.
        """
        sid = symptom.identifier
        if self._root_of.get(sid) is not gone:
            return
        del self._root_of[sid]
        node = self._node_of[sid]
        if node in roots:
            root = roots[node]
            if root is not None and self._node_of.get(root.identifier) is None:
                root = roots[node] = self._best_root(node, self._joins)  # it left meanwhile
        else:
            root = roots[node] = self._best_root(node, self._joins)
        if root is not None:
            self._attach(symptom, root, now, ctx)
        else:
            self._release(symptom, now, ctx, f"root {gone.identifier} is no longer open")

    def _release(self, alert: Alert, now: float, ctx: Context, why: str) -> None:
        root_id = self._held.pop(alert.identifier, None)
        if root_id is None:
            self._before.pop(alert.identifier, None)
            return
        self._give_back(alert, now, ctx, f"no longer a symptom of {root_id}: {why}")
        ctx.unsuppress(alert, now, self.name, why)

    def _give_back(self, alert: Alert, now: float, ctx: Context, why: str) -> None:
        """Unset the parent this rule set; the group parent it replaced comes back if it may."""
        before = self._before.pop(alert.identifier, None)
        link = ctx.parent_link(alert)
        if link is not None and link.rule != self.name:
            return  # not ours: another rule set it since
        if before is not None:
            note = f"{why}; parent back to {before.parent}"
            if ctx.set_parent(alert, before, now, self.name, note):
                return
        ctx.set_parent(alert, None, now, self.name, why)

    def size(self) -> int:
        return len(self._node_of)


def build(spec: TopologyRule, env: BuildEnv) -> TopologyOperator:
    """Compile the graph once for this rule; it becomes part of the rule's definition."""
    bound = spec.model_copy()
    bound._graph = tuple(sorted(env.topology.items()))
    return TopologyOperator(bound, compile_graph(env.topology))
