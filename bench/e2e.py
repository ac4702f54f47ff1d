"""Kafka → daemon → Kafka: sustained events/s with the journal on, and latency at 5,000/s.

Starts tansu (in-memory Kafka) and `correlator run` as its own process
(SQLite journal, a Kafka source and a Kafka sink, no rules). Throughput:
N events are produced first, then the daemon consumes them; the figure is N
over the time from its first to its last change record on the sink topic.
Latency: events produced at a steady rate, each stamped when sent; the time
until its change record is read back from the sink topic, p50 and p99.

Each latency phase runs on a broker and a daemon of its own, after a short
warm-up: tansu's in-memory topics get slower as they fill (a bare relay's p99
went from 41-73 ms to 116-134 ms with 200,000 records already in them), so
behind the throughput phase it measured the test broker's growth, not the
daemon. The same phase then runs through `bench/relay.py` (a bare consume →
produce relay, no journal or engine) on a fresh broker too: `relay_p50_ms`
and `relay_p99_ms` are what the broker and this machine give before the
daemon does anything (`--no-relay` skips it).

Run: `.venv/bin/python bench/e2e.py [--events N] [--rate R] [--seconds S]`; the
last line is one JSON object with `events_per_second`, `p50_ms`, `p99_ms`,
`relay_p50_ms`, `relay_p99_ms` and `cpu_us_per_event`, the daemon's CPU time
(all threads) per event from its first change record to its last: less moved
than wall time by other jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from daemon_process import (
    cpu_seconds,
    daemon_command,
    free_port,
    page_faults,
    peak_rss_mb,
    write_config,
)
from engine import calibration_ms  # bench/engine.py: the machine's speed right now

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.brokers import tansu


def _config(tmp: str, bootstrap: str, port: int) -> Path:
    source = {"bootstrap_servers": bootstrap, "topics": ["events"],
              "heartbeat_interval": 0.1, "session_timeout": 1.0}  # fmt: skip
    sink = {"bootstrap_servers": bootstrap, "topic": "alerts"}
    return write_config(Path(tmp), port, sources=[{"kafka": source}], sinks=[{"kafka": sink}])


async def _produce(producer: AIOKafkaProducer, n: int, rate: float | None) -> None:
    start = time.perf_counter()
    for i in range(n):
        if rate is not None and i % 50 == 0:  # pace in steps of 50 events
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
        event = {"node": f"n{i % 20_000}", "alertgroup": "Down", "severity": "major",
                 "annotations": {"sent": repr(time.time())}}  # fmt: skip
        await producer.send("events", orjson.dumps(event))
    await producer.flush()


async def _read(
    consumer: AIOKafkaConsumer,
    n: int,
    arrivals: list[tuple[float, float]],
    tally: dict[str, int],
    first: Callable[[], None] = lambda: None,
) -> None:
    """Read change records until the alerts' tallies add up to `n` events; note for each
    record (time read, time its newest event was sent). Repeats may come coalesced.
    `first` is called when the first records arrive."""
    while sum(tally.values()) < n:
        for messages in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
            now = time.time()
            if not arrivals:
                first()
            for m in messages:
                alert = orjson.loads(m.value)["alert"]
                tally[alert["identifier"]] = alert["tally"]
                arrivals.append((now, float(alert["annotations"]["sent"])))


def _settle_heap() -> None:
    """Freeze what the harness holds so far: a full collection of it stalled the reader
    for up to 110 ms, which was measured as the daemon's latency (p99)."""
    gc.collect()
    gc.freeze()


def _clients(bootstrap: str) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    # tansu holds a fetch for its whole max wait even when data is there: keep the
    # reader's short, or its 500 ms default is measured as the daemon's latency
    consumer = AIOKafkaConsumer("alerts", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id="bench", fetch_max_bytes=64 * 2**20,
                                fetch_max_wait_ms=5)  # fmt: skip
    return producer, consumer


async def _throughput(args: argparse.Namespace, bootstrap: str) -> dict[str, float]:
    port = free_port()
    producer, consumer = _clients(bootstrap)
    await producer.start()
    await consumer.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(tmp, bootstrap, port)
        await _produce(producer, args.events, None)  # prefilled: the daemon reads flat out
        daemon = await asyncio.create_subprocess_exec(*daemon_command(config))
        try:
            arrivals: list[tuple[float, float]] = []
            tally: dict[str, int] = {}
            _settle_heap()
            usage: list[tuple[float, int]] = []  # the daemon's, at its first and last record

            def note_usage() -> None:
                usage.append((cpu_seconds(daemon.pid), page_faults(daemon.pid)))

            await _read(consumer, args.events, arrivals, tally, note_usage)
            note_usage()
            first, last = arrivals[0][0], arrivals[-1][0]
            async with httpx.AsyncClient() as client:
                total = (await client.get(f"http://127.0.0.1:{port}/api/v1/alerts?limit=0")).json()
            peak = peak_rss_mb(daemon.pid)
        finally:
            daemon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(daemon.wait(), 60)
            await consumer.stop()
            await producer.stop()
    return {
        "events": args.events,
        "events_per_second": round(args.events / (last - first)),
        "cpu_us_per_event": round((usage[1][0] - usage[0][0]) / args.events * 1e6, 1),
        "page_faults_per_event": round((usage[1][1] - usage[0][1]) / args.events, 2),
        "peak_rss_mb": peak,
        "alerts": total["total"],
    }


# sent flat out and read back before the measured phase: every alert it repeats exists
WARM_UP = 20_000


async def _latency(args: argparse.Namespace, bootstrap: str, command: list[str]) -> list[float]:
    """Delays (ms) of `rate` * `seconds` events through `command` (the daemon or the relay),
    which reads topic `events` and writes change records to `alerts`."""
    producer, consumer = _clients(bootstrap)
    await producer.start()
    await consumer.start()
    process = await asyncio.create_subprocess_exec(*command)
    try:
        tally: dict[str, int] = {}
        await asyncio.gather(_produce(producer, WARM_UP, None), _read(consumer, WARM_UP, [], tally))
        steady = int(args.rate * args.seconds)
        arrivals: list[tuple[float, float]] = []
        _settle_heap()
        await asyncio.gather(
            _produce(producer, steady, args.rate),
            _read(consumer, WARM_UP + steady, arrivals, tally),
        )
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
        await consumer.stop()
        await producer.stop()
    return sorted((read - sent) * 1000 for read, sent in arrivals)


def _quantiles(delays: list[float], prefix: str = "") -> dict[str, float]:
    at = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    out = {f"{prefix}{name}_ms": round(delays[int(len(delays) * q)], 1) for name, q in at.items()}
    out[f"{prefix}max_ms"] = round(delays[-1], 1)
    return out


def _daemon_latency(args: argparse.Namespace) -> list[float]:
    with tansu() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        config = _config(tmp, bootstrap, free_port())
        return asyncio.run(_latency(args, bootstrap, daemon_command(config)))


def _relay_latency(args: argparse.Namespace) -> list[float]:
    relay = str(Path(__file__).resolve().parent / "relay.py")
    with tansu() as bootstrap:
        return asyncio.run(
            _latency(args, bootstrap, [sys.executable, relay, bootstrap, "events", "alerts"])
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--no-relay", action="store_true", help="skip the bare relay's latency")
    args = parser.parse_args()
    before = calibration_ms()
    with tansu() as bootstrap:
        result: dict[str, object] = {**asyncio.run(_throughput(args, bootstrap))}
    result["rate"] = args.rate
    result.update(_quantiles(_daemon_latency(args)))
    if not args.no_relay:
        result.update(_quantiles(_relay_latency(args), "relay_"))
    result["calibration_ms"] = [round(before, 2), round(calibration_ms(), 2)]
    relay = (f" (a bare relay: p50 {result['relay_p50_ms']} ms, p99 {result['relay_p99_ms']} ms)"
             if not args.no_relay else "")  # fmt: skip
    print(f"{result['events_per_second']:,} events/s sustained (journal on, Kafka in and out); "
          f"daemon CPU {result['cpu_us_per_event']} µs per event; "
          f"at {args.rate:,.0f}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms{relay}; "
          f"calibration {result['calibration_ms']} ms")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
