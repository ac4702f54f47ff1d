"""Prometheus metrics on an injected registry (prefix `correlator_`).

The hot path keeps plain integers (the engine's `Stats`, the pipeline's
per-source counts); a collector turns them into metrics when `/metrics` is
scraped, so an event costs no metric call. Series that dashboards expect
exist from the start (at zero).

Exported:
- `correlator_events_total{source, outcome}`: inputs by source; outcome
  `accepted` or `dead_lettered`;
- `correlator_dead_letters_total{reason}`: by dead-letter reason;
- `correlator_engine_<counter>_total`: every engine counter (`dedup_hits`,
  `late_occurrences`, `resolutions_unmatched`, ...);
- `correlator_normalize_discarded_total{rule}`;
- `correlator_rule_events_total{rule, what}`: rule hits and `cap_hit`s;
- `correlator_alerts{severity, status}`: rows in the table now;
- `correlator_source_connected{source}`, `correlator_source_lag{source}` (Kafka:
  messages behind the high watermark), `correlator_sink_queued_batches{sink}`;
- `correlator_sink_rejected_records_total{sink}`: records the sink's broker can never
  take (too large), set aside as dead letters instead of retried;
- `correlator_reloads_total{result}`: rule reloads, `success` or `failure`;
- `correlator_table_reads_total{table, result}`: reads of SQL lookup tables,
  `success` or `failure` (a failure keeps the table's last rows);
- `correlator_journal_commit_seconds`: histogram of group-commit latency.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from correlator.engine import Engine
from correlator.model import SEVERITY_NAMES
from correlator.stats import Stats

STATUSES = ("open", "acknowledged", "cleared")
# the engine's plain counters (the labelled ones are Counters)
_COUNTERS = tuple(
    f.name for f in dataclasses.fields(Stats) if isinstance(getattr(Stats(), f.name), int)
)
OUTCOMES = ("accepted", "dead_lettered")


class Counted(Protocol):
    """What the collector reads from the running daemon at scrape time."""

    engine: Engine
    counts: Counter[tuple[str, str]]  # (source, outcome)
    dead_letters: Counter[str]  # by reason

    @property
    def last_snapshot(self) -> tuple[float, int]: ...  # seconds to take it, bytes

    @property
    def journal_tail(self) -> int: ...


class DaemonCollector(Collector):
    """Reads the daemon's counters when scraped; nothing is counted twice."""

    def __init__(
        self,
        pipelines: Iterable[Counted],
        sources: Callable[[], Mapping[str, tuple[bool, int]]],
        sink_queues: Callable[[], Mapping[str, int]],
        reloads: Mapping[str, int],
        deliveries: Callable[[], Mapping[str, int]] = dict,
        table_reads: Callable[[], Mapping[tuple[str, str], int]] = dict,
        *,
        sink_rejected: Mapping[str, int] | None = None,
    ) -> None:
        self._pipelines = pipelines  # one per scope
        self._sources = sources
        self._sink_queues = sink_queues
        self._reloads = reloads
        self._deliveries = deliveries  # notification actions by result
        self._table_reads = table_reads  # SQL lookup tables read, by (table, result)
        self._sink_rejected = sink_rejected or {}  # records no broker would take, by sink

    def collect(self) -> Iterator[Metric]:
        pipelines = list(self._pipelines)
        counts: Counter[tuple[str, str]] = sum((p.counts for p in pipelines), Counter())
        dead_letters: Counter[str] = sum((p.dead_letters for p in pipelines), Counter())
        engines = [p.engine for p in pipelines]
        events = CounterMetricFamily(
            "correlator_events", "Inputs by source and outcome", labels=["source", "outcome"]
        )
        names = {"http", *self._sources()} | {s for s, _ in counts}
        for source in sorted(names):
            for outcome in OUTCOMES:
                events.add_metric([source, outcome], counts[(source, outcome)])
        yield events
        dead = CounterMetricFamily(
            "correlator_dead_letters", "Dead letters by reason", labels=["reason"]
        )
        for reason, count in sorted(dead_letters.items()):
            dead.add_metric([reason], count)
        yield dead
        yield from _engine_counters(engines)
        yield _alerts(engines)
        yield GaugeMetricFamily(
            "correlator_scopes", "Engines running (one per scope)", value=len(engines)
        )
        connected = GaugeMetricFamily(
            "correlator_source_connected", "1 while the source is connected", labels=["source"]
        )
        lag = GaugeMetricFamily(
            "correlator_source_lag", "Messages waiting at the broker", labels=["source"]
        )
        for name, (up, behind) in sorted(self._sources().items()):
            connected.add_metric([name], 1.0 if up else 0.0)
            lag.add_metric([name], behind)
        yield connected
        yield lag
        queued = GaugeMetricFamily(
            "correlator_sink_queued_batches", "Batches waiting per sink", labels=["sink"]
        )
        rejected = CounterMetricFamily(
            "correlator_sink_rejected_records",
            "Records a sink's broker can never take (too large), set aside as dead letters",
            labels=["sink"],
        )
        sinks = self._sink_queues()
        for name, size in sorted(sinks.items()):
            queued.add_metric([name], size)
        for name in sorted({*sinks, *self._sink_rejected}):
            rejected.add_metric([name], self._sink_rejected.get(name, 0))
        yield queued
        yield rejected
        yield GaugeMetricFamily(
            "correlator_journal_tail_entries",
            "Journal entries after the last saved snapshots (what a restart replays)",
            value=sum(p.journal_tail for p in pipelines),
        )
        yield GaugeMetricFamily(
            "correlator_snapshot_seconds",
            "Time the last snapshot took to take (the longest over scopes)",
            value=max((p.last_snapshot[0] for p in pipelines), default=0.0),
        )
        yield GaugeMetricFamily(
            "correlator_snapshot_bytes",
            "Size of the last snapshots (summed over scopes)",
            value=sum(p.last_snapshot[1] for p in pipelines),
        )
        actions = CounterMetricFamily(
            "correlator_actions",
            "Notification actions run from the outbox, by result",
            labels=["result"],
        )
        by_result = self._deliveries()
        for result in ("delivered", "failed", "dead"):
            actions.add_metric([result], by_result.get(result, 0))
        yield actions
        reloads = CounterMetricFamily("correlator_reloads", "Rule reloads", labels=["result"])
        for result in ("success", "failure"):
            reloads.add_metric([result], self._reloads.get(result, 0))
        yield reloads
        reads = CounterMetricFamily(
            "correlator_table_reads", "Reads of SQL lookup tables", labels=["table", "result"]
        )
        for (table, result), count in sorted(self._table_reads().items()):
            reads.add_metric([table, result], count)
        yield reads


def _engine_counters(engines: list[Engine]) -> Iterator[Metric]:
    totals: Counter[str] = Counter()
    discarded_by: Counter[str] = Counter()
    rule_events: Counter[tuple[str, str]] = Counter()
    for engine in engines:
        stats = engine.stats
        for name in _COUNTERS:
            totals[name] += getattr(stats, name)
        discarded_by.update(stats.discarded)
        rule_events.update(stats.rule_events)
    for name in _COUNTERS:
        yield CounterMetricFamily(
            f"correlator_engine_{name}", f"Engine counter {name}", value=totals[name]
        )
    discarded = CounterMetricFamily(
        "correlator_normalize_discarded", "Events discarded by rule", labels=["rule"]
    )
    for rule, count in sorted(discarded_by.items()):
        discarded.add_metric([rule], count)
    yield discarded
    rules = CounterMetricFamily(
        "correlator_rule_events", "Rule hits and cap hits", labels=["rule", "what"]
    )
    for (rule, what), count in sorted(rule_events.items()):
        rules.add_metric([rule, what], count)
    yield rules


def _alerts(engines: list[Engine]) -> Metric:
    """Rows by severity and status: one pass over the tables per scrape, not per event."""
    counts: Counter[tuple[int, str]] = Counter(
        (row.severity, row.status) for engine in engines for row in engine.table.rows.values()
    )
    gauge = GaugeMetricFamily(
        "correlator_alerts", "Alerts in the table", labels=["severity", "status"]
    )
    for level, name in enumerate(SEVERITY_NAMES):
        for status in STATUSES:
            gauge.add_metric([name, status], counts[(level, status)])
    return gauge


def commit_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "correlator_journal_commit_seconds",
        "Latency of one group commit (journal, offsets, history)",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        registry=registry,
    )
