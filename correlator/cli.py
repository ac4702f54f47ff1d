"""The `correlator` command line (DESIGN.md §5). Only this module touches argv and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

import orjson

from correlator.errors import RuleSetError, TestFileError


def _duration(text: str) -> float:
    from correlator.timeparse import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _until(text: str) -> str:
    """Checked before anything is replayed; `+5m` is resolved after the last event."""
    from correlator.replay import parse_until

    try:
        parse_until(text, 0.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="correlator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate rule files")
    check.add_argument(
        "rules", nargs="?", default="rules", help="rules directory (default ./rules)"
    )

    test = sub.add_parser("test", help="run rule unit tests")
    test.add_argument("files", nargs="+", help="test files")

    replay = sub.add_parser("replay", help="replay a JSON-lines event file offline")
    replay.add_argument("events", help="JSON-lines file, one event per line ('-' for stdin)")
    replay.add_argument("--rules", default="rules", help="rules directory (default ./rules)")
    replay.add_argument("--final", action="store_true", help="print the final table instead")
    replay.add_argument(
        "--until", type=_until, help="advance the clock at the end: epoch, RFC 3339 or +5m"
    )
    replay.add_argument(
        "--max-lateness", type=_duration, default="5m", help="late-event bound (default 5m)"
    )

    sub.add_parser("schema", help="print the JSON Schema of rule files")
    route = sub.add_parser(
        "route-test", help="the receivers an alert with these labels reaches (amtool's routes test)"
    )
    route.add_argument("rules", help="rules directory or file")
    route.add_argument("labels", nargs="*", metavar="label=value")

    alerts = sub.add_parser("alerts", help="list and act on alerts of a running daemon")
    alerts.add_argument(
        "action", choices=["list", "ack", "unack", "assign", "journal", "clear", "severity"]
    )
    alerts.add_argument(
        "args", nargs="*", help="list: matchers; others: IDENTIFIER [OWNER|TEXT|SEVERITY]"
    )
    alerts.add_argument("--url", help="the daemon (default $CORRELATOR_URL or 127.0.0.1:8080)")
    alerts.add_argument("--token", help="bearer token (default $CORRELATOR_TOKEN)")
    alerts.add_argument("--json", action="store_true", help="print the API's JSON")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", help="configuration file (default: the embedded defaults)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args.rules)
    if args.command == "test":
        return _test(args.files)
    if args.command == "replay":
        return _replay(args)
    if args.command == "run":
        return _run(args.config)
    if args.command == "alerts":
        return _alerts(args)
    if args.command == "route-test":
        return _route_test(args.rules, args.labels)
    if args.command == "schema":
        from correlator.ruleset.document import json_schema

        sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


def _check(rules: str) -> int:
    from correlator.ruleset.loader import load_rules

    try:
        ruleset = load_rules(rules)
    except RuleSetError as exc:
        print(exc)  # one `file:line:col: message` line per error, on stdout like ruff
        return 1
    print(f"ok: {ruleset.summary()}")
    return 0


def _route_test(rules: str, pairs: list[str]) -> int:
    """Print the receivers an alert with these labels reaches, one per line, in order."""
    from correlator.model import Alert
    from correlator.ruleset.loader import load_rules

    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"correlator route-test: expected label=value, not {pair!r}", file=sys.stderr)
            return 2
        labels[name] = value.strip('"')
    try:
        ruleset = load_rules(rules)
    except RuleSetError as exc:
        print(exc, file=sys.stderr)
        return 2
    if ruleset.route is None:
        print(f"correlator route-test: no route in {rules}", file=sys.stderr)
        return 2
    alert = Alert("route-test", "", labels.get("alertname", ""), labels=labels)
    for route in ruleset.route.match(alert):
        print(route.opts.receiver)
    return 0


def _test(files: list[str]) -> int:
    from correlator.testing import run_test_files

    try:
        return run_test_files(files, sys.stdout)
    except (TestFileError, RuleSetError) as exc:
        print(exc, file=sys.stderr)  # `file:line:col: message`, one line per error
        return 2


def _replay(args: argparse.Namespace) -> int:
    from correlator import replay
    from correlator.engine import Engine
    from correlator.ruleset.loader import load_rules

    try:
        ruleset = load_rules(args.rules)
    except RuleSetError as exc:
        print(exc, file=sys.stderr)  # one `file:line:col: message` line per error
        return 2
    final = args.final  # the table at the end: no change is printed, so none is made
    engine = Engine(ruleset, max_lateness=args.max_lateness, snapshots=not final, changes=not final)
    options = {"final": args.final, "until": args.until}
    if args.events == "-":
        return replay.run(engine, sys.stdin.buffer, sys.stdout, sys.stderr, **options)
    try:
        events = open(args.events, "rb")  # noqa: SIM115 - closed below; lines decoded one by one
    except OSError as exc:
        print(f"correlator replay: cannot read {args.events}: {exc.strerror}", file=sys.stderr)
        return 2
    with events:
        return replay.run(engine, events, sys.stdout, sys.stderr, source=args.events, **options)


def _run(config_path: str | None) -> int:
    """The daemon: exit 2 on a bad configuration or rule set, 0 after SIGTERM/SIGINT."""
    import asyncio
    import signal
    from pathlib import Path

    from correlator.app import App
    from correlator.config import ConfigError, load_config
    from correlator.observability.logging import configure

    configure()
    try:
        config = load_config(Path(config_path) if config_path else None)
        app = App(config)
    except (ConfigError, RuleSetError) as exc:
        print(exc, file=sys.stderr)  # one line per problem, located where it can be
        return 2

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.stop)
        loop.add_signal_handler(signal.SIGHUP, app.request_reload)
        await app.run()

    _tune_heap()
    asyncio.run(serve())
    return 0


def _tune_heap() -> None:
    """A daemon's heap, not a script's (measured under bench/e2e.py and bench/ingest.py).

    - Young collections when 100,000 more container objects are alive than at
      the last one, instead of 700: a batch in flight (a Kafka fetch of 5,000
      messages, their records, an HTTP body of 1,000 alerts) holds tens of
      thousands, and each young collection under that found them all alive and
      promoted them, to be walked again by the next older one. At 10,000, GC
      took 0.47 s of a `bench/e2e.py` run; at 100,000, one young collection
      (the new rows) and no older one. Full collections (50-150 ms each over a
      large table: the p99) become rarer still.
    - glibc keeps up to 64 MiB freed at the top of the heap instead of 128 KiB,
      and serves blocks up to 32 MiB from the heap instead of mapping each one
      over 128 KiB (a Kafka fetch, a journal blob, a sink's record batch): a
      batch's memory is freed together, and giving the pages back then
      faulting them in again cost more than the work done in them (under
      `bench/e2e.py`, 0.2 → 0.13 page faults per event). Setting the first
      fixes the second's threshold, which glibc would otherwise raise itself.
    """
    import ctypes
    import gc

    gc.set_threshold(100_000, 10, 10)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # not glibc: its defaults stay
            libc = ctypes.CDLL(None)
            libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
            libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD


def _alerts(args: argparse.Namespace) -> int:
    import os

    from correlator import client

    needs = {"list": 0, "assign": 2, "journal": 2, "severity": 2}.get(args.action, 1)
    if len(args.args) < needs or (args.action in ("ack", "unack", "clear") and len(args.args) != 1):
        print(f"correlator alerts {args.action}: expected IDENTIFIER" + (
            " and a value" if needs == 2 else ""), file=sys.stderr)  # fmt: skip
        return 2
    url = args.url or client.default_url()
    token = args.token or os.environ.get("CORRELATOR_TOKEN")
    return client.run(url, token, args.action, args.args, as_json=args.json, out=sys.stdout)
