"""The ``leadersim`` command line.

``leadersim demo`` is the first thing to run: three members as real OS processes on one
SQLite file; it kills the leader and shows the failover. ``leadersim member`` runs one
member in the foreground (it is what the demo and :class:`~leadersim.lab.Lab` spawn).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from leadersim.config import DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RENEW_INTERVAL
from leadersim.errors import LeadersimError
from leadersim.storage.base import TABLE_NAME_ELECTION
from leadersim.trace import EventKind

__all__ = ["main"]

#: The demo's config: small, with slack, so that a failover takes a few seconds.
DEMO_LEASE_DURATION = 3.0
DEMO_RENEW_INTERVAL = 0.5
DEMO_RENEW_DEADLINE = 2.0
#: Seconds the demo lets the first leader lead (and renew) before it kills it.
DEMO_HOLD_DURATION = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "member":
        return _member(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "scenarios":
        return _scenarios()
    return _demo(args)


def _parser() -> argparse.ArgumentParser:
    from leadersim import __version__

    parser = argparse.ArgumentParser(
        prog="leadersim",
        description="Lease-based leader election: real processes and a deterministic simulator.",
    )
    parser.add_argument("--version", action="version", version=f"leadersim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="elect a leader among OS processes on one SQLite file, kill it, watch the failover",
        description=(
            "Start election members as separate OS processes on one SQLite file, show who "
            "leads, SIGKILL the leader, show the failover, stop the rest gracefully and "
            "check the database. Takes about ten seconds."
        ),
    )
    demo.add_argument("--db", type=Path, help="SQLite file to use (default: in a temporary dir)")
    demo.add_argument(
        "--url", help="a database URL instead, e.g. postgresql+asyncpg://user@host:5432/db"
    )
    demo.add_argument("--nodes", type=_member_count, default=3, help="members (default: 3)")
    demo.add_argument(
        "--trace-dir", type=Path, help="keep the members' JSON-lines traces and logs here"
    )

    member = commands.add_parser(
        "member",
        help="run one election member on a SQLite file until SIGTERM or Ctrl-C",
        description=(
            "Run one election member on a SQLite file. It leads (doing nothing) while it "
            "holds the lease; SIGTERM or Ctrl-C makes it release its lease and exit."
        ),
    )
    where = member.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="the shared SQLite file")
    where.add_argument("--url", help="or a database URL, e.g. mariadb+aiomysql://root@host/db")
    member.add_argument("--id", required=True, help="this member's id")
    member.add_argument(
        "--lease", type=float, default=DEFAULT_LEASE_DURATION, metavar="SECONDS",
        help=f"lease duration (default: {DEFAULT_LEASE_DURATION:g})",
    )  # fmt: skip
    member.add_argument(
        "--interval", type=float, default=DEFAULT_RENEW_INTERVAL, metavar="SECONDS",
        help=f"renew interval (default: {DEFAULT_RENEW_INTERVAL:g})",
    )  # fmt: skip
    member.add_argument(
        "--deadline", type=float, default=DEFAULT_RENEW_DEADLINE, metavar="SECONDS",
        help=f"renew deadline (default: {DEFAULT_RENEW_DEADLINE:g})",
    )  # fmt: skip
    member.add_argument("--trace", type=Path, help="append trace events here as JSON lines")
    member.add_argument(
        "--table", default=TABLE_NAME_ELECTION, help=f"table (default: {TABLE_NAME_ELECTION})"
    )
    member.add_argument("--seed", type=int, help="seed of the retry jitter")

    simulate = commands.add_parser(
        "simulate",
        help="run a scenario in the deterministic simulator and print its verdict",
        description=(
            "Run a catalogue scenario (see `leadersim scenarios`) or a YAML/TOML/JSON "
            "scenario file in the simulator and print the one-line verdict."
        ),
    )
    simulate.add_argument("scenario", help="a catalogue name or a scenario file")
    simulate.add_argument("--seed", type=int, default=0, help="the seed (default: 0)")
    simulate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set config.lease_duration=15 (JSON values)",
    )
    simulate.add_argument("--trace", type=Path, help="write the trace here as JSON lines")
    commands.add_parser("scenarios", help="list the scenario catalogue")
    return parser


def _simulate(args: argparse.Namespace) -> int:
    import json
    import warnings

    from leadersim.errors import ConfigError, SafetyWarning
    from leadersim.experiment import simulate

    overrides: dict[str, object] = {}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            print(f"leadersim: --set needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SafetyWarning)
            result = simulate(args.scenario, seed=args.seed, **overrides)
    except ConfigError as exc:
        print(f"leadersim: {exc}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if args.trace is not None:
        args.trace.write_text(result.to_jsonl(), encoding="utf-8")
    print(f"{result.name} seed={args.seed} ({result.end_time:g} s): {result.verdict.line()}")
    return 0


def _scenarios() -> int:
    from leadersim.sim.scenarios import CATALOGUE

    for entry in CATALOGUE.values():
        variants = ", ".join(v for v in entry.variants if v != "base")
        print(f"{entry.id:>4}  {entry.name:34} {entry.assumptions}")
        print(f"      {entry.title}")
        if variants:
            print(f"      variants: {variants}")
    return 0


def _member_count(text: str) -> int:
    count = int(text)
    if count < 2:
        raise argparse.ArgumentTypeError("a failover needs at least 2 members")
    return count


def _member(args: argparse.Namespace) -> int:
    from leadersim.lab import run_member

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run_member(
            args.db,
            args.id,
            lease_duration=args.lease,
            renew_interval=args.interval,
            renew_deadline=args.deadline,
            trace_path=args.trace,
            table_name=args.table,
            seed=args.seed,
            url=args.url,
        )
    except LeadersimError as exc:
        print(f"leadersim member {args.id}: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.db is not None and args.url is not None:
        print("leadersim demo: give --db or --url, not both", file=sys.stderr)
        return 2
    if args.db is not None and not args.db.parent.is_dir():
        print(f"leadersim demo: directory {args.db.parent} does not exist", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="leadersim-demo-") as scratch:
        db_path = args.db if args.db is not None else Path(scratch) / "election.db"
        trace_dir = args.trace_dir if args.trace_dir is not None else Path(scratch)
        try:
            if args.url is not None and (failed := _check_url(args.url)):
                return failed
            code = _run_demo(db_path, trace_dir, args.nodes, url=args.url)
        except KeyboardInterrupt:
            print("\nInterrupted; all members stopped.", file=sys.stderr)
            return 130
    if args.trace_dir is not None:
        print(f"Traces (JSON lines) and logs are in {args.trace_dir}.")
    return code


def _check_url(url: str) -> int:
    """Open the URL's storage once here, so a bad URL is one line, not a member's log."""
    import asyncio

    from leadersim.errors import ConfigError
    from leadersim.storage import open_storage

    async def probe() -> None:
        storage = await open_storage(url)
        await storage.close()

    try:
        asyncio.run(probe())
    except ConfigError as exc:
        print(f"leadersim demo: {exc}", file=sys.stderr)
        return 2
    except LeadersimError as exc:
        print(f"leadersim demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_demo(db_path: Path, trace_dir: Path, nodes: int, *, url: str | None = None) -> int:
    from leadersim.lab import Lab, LabError

    lease = DEMO_LEASE_DURATION
    node_ids = [f"n{i}" for i in range(1, nodes + 1)]
    if url is None:
        print(f"leadersim demo: {nodes} election members as OS processes sharing one SQLite file")
        print(f"  database  {db_path}")
    else:
        from sqlalchemy import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        print(f"leadersim demo: {nodes} election members as OS processes sharing one database")
        print(f"  database  {shown}")
    print(
        f"  config    lease {lease:g} s, renew interval {DEMO_RENEW_INTERVAL:g} s, "
        f"renew deadline {DEMO_RENEW_DEADLINE:g} s"
    )
    print()
    with Lab(
        db_path,
        node_ids,
        lease_duration=lease,
        renew_interval=DEMO_RENEW_INTERVAL,
        renew_deadline=DEMO_RENEW_DEADLINE,
        trace_dir=trace_dir,
        url=url,
    ) as lab:
        try:
            launched_at = time.monotonic()
            lab.start()
            started = ", ".join(f"{n} (pid {lab.pid(n)})" for n in node_ids)
            print(f"Started {started}.")
            # A leader left in the file by an earlier, crashed run must first expire.
            first = lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=2 * lease + 15)
            leader = first.node
            print(f"{leader} leads: elected {first.true_time - launched_at:.2f} s after launch.")
            time.sleep(DEMO_HOLD_DURATION)

            print(f"Killing {leader} with SIGKILL: no release, so its lease has to run out.")
            killed_at = lab.kill(leader, signal.SIGKILL)
            lab.wait(leader)
            others = [n for n in node_ids if n != leader]
            successor = lab.wait_for_event(
                EventKind.CALLBACK_STARTED,
                nodes=others,
                after=first.true_time,
                timeout=lease + DEMO_RENEW_DEADLINE + DEMO_RENEW_INTERVAL + 15,
            )
            last_renewal = max(
                e.true_time
                for e in lab.read_trace()
                if e.node == leader and e.kind is EventKind.RENEW_OK
            )
            print(
                f"{successor.node} leads: failover took "
                f"{successor.true_time - killed_at:.2f} s after the kill, "
                f"{successor.true_time - last_renewal:.2f} s after {leader}'s last renewal "
                f"(lease {lease:g} s)."
            )
        except LabError as exc:
            print(f"leadersim demo: {exc}", file=sys.stderr)
            return 1

        each = "each releases its lease and exits" if len(others) > 1 else "it releases its lease"
        print(f"Stopping {', '.join(others)} with SIGTERM: {each}.")
        codes = lab.stop_all()
    exits = ", ".join(f"{n} {codes[n]}" for n in others)
    print(f"  exit codes: {exits}")
    integrity = "ok"
    if url is None:
        integrity = lab.integrity_check()
        print(f"PRAGMA integrity_check: {integrity}")
    graceful = all(codes[n] == 0 for n in others)
    return 0 if integrity == "ok" and graceful else 1
