"""SQLite benchmarks for leadersim: the cost of one renewal, and members per SQLite file.

Run from the repository root::

    python benchmarks/bench_sqlite.py            # full run, about 3 minutes
    python benchmarks/bench_sqlite.py --quick    # smoke run, a few seconds

1. Round trip. One renewal is a ``get`` plus a CAS ``update`` of a 3-member record. The
   same work (same SQL from ``SQLiteStatements``, same JSON decode and encode, same
   one-member refresh) is timed three ways on one SQLite file in WAL mode, interleaved
   round by round in this one process:

   - ``sqlite3``: the stdlib driver called inline: no thread hop, no event loop. The floor.
   - ``SQLStorage``: leadersim's storage: one autocommit statement per operation, so one
     hop to aiosqlite's worker thread each (2 per round trip).
   - ``aiosqlite naive``: what the aiosqlite README suggests, wrapped in BEGIN/COMMIT:
     BEGIN, a cursor ``execute`` + ``fetchall`` + close, the UPDATE, COMMIT (6 hops).

   It prints microseconds per round trip (median of the rounds) and the ratios to the
   floor.

2. Capacity. N electors with the default timings (lease 10 s, renew interval 2 s, renew
   deadline 8 s), then at renew interval 0.25 s (lease 2 s, deadline 1.5 s, as
   ``bench_orm.py``'s fast run), run in this process on one SQLite file, each through its
   own ``SQLStorage`` connection, on the real clock, for a fixed wall time per N. Nobody
   crashes, so any leadership change, lost leadership, cancelled leader callback or failed
   renew round is spurious. A ``TraceRecorder`` counts them. It prints the largest N with
   no spurious loss, plus this process's CPU use and event-loop lag, so you can tell when
   the limit is this single Python process and not the SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from leadersim import (
    Config,
    Elector,
    EventKind,
    Member,
    Record,
    SafetyWarning,
    SQLStorage,
    TraceEvent,
    TraceRecorder,
)
from leadersim.storage.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteStatements

TABLE = "election"
ROUND_TRIP_TARGET = 10.0  # SQLStorage may cost at most this many times the inline floor
CAPACITY_TARGET = 100  # members one file should sustain at the default timings
LEASE, INTERVAL, DEADLINE = 10.0, 2.0, 8.0  # the defaults; Config(...) zeros select them


def timings_for(interval: float) -> tuple[float, float, float]:
    """(lease, renew interval, deadline) of a capacity run at ``interval`` seconds.

    At 2 s or more, the defaults; below, a lease of 8 intervals and a deadline of 6.
    """
    if interval >= INTERVAL:
        return LEASE, INTERVAL, DEADLINE
    return 8 * interval, interval, 6 * interval


# ---------------------------------------------------------------------------------------
# 1. round trip


def realistic_record() -> Record:
    """A 3-member record like a small cluster's (the first member leads)."""
    now = datetime.now(UTC)
    members = [
        Member(f"member-{i}", f"scheduler-{i}", f"10.0.0.{i + 1}:8261", LEASE, now)
        for i in range(3)
    ]
    return Record("member-0", members, 0)


def refreshed(record: Record) -> Record:
    """What the leader's renewal changes: its own renew time (the same in every variant)."""
    record = record.clone()
    record.members[0] = record.members[0].renewed(datetime.now(UTC))
    return record


class Sqlite3Baseline:
    """The floor: stdlib sqlite3 inline; select + decode + encode + update, no hop."""

    name = "sqlite3 (stdlib, inline)"
    hops = 0

    def __init__(self, path: Path, sql: SQLiteStatements, synchronous: str | None) -> None:
        # The connection SQLStorage.open makes, minus aiosqlite: autocommit, same busy
        # timeout, WAL.
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=DEFAULT_BUSY_TIMEOUT)
        self._conn.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._sql = sql

    def pragma(self, name: str) -> str:
        return str(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def trip(self) -> None:
        record = self._sql.decode(self._conn.execute(self._sql.select).fetchall())
        statement, args = self._sql.write_args(refreshed(record))
        if self._conn.execute(statement, args).rowcount != 1:
            raise RuntimeError("unexpected CAS conflict in the round-trip benchmark")

    async def run(self, trips: int) -> float:
        start = time.perf_counter()
        for _ in range(trips):
            self.trip()
        return time.perf_counter() - start

    async def close(self) -> None:
        self._conn.close()


class SQLStorageVariant:
    """leadersim's SQLStorage: ``get`` then ``update`` (decode/encode happen inside)."""

    name = "SQLStorage (aiosqlite)"
    hops = 2

    def __init__(self, storage: SQLStorage) -> None:
        self._storage = storage

    @classmethod
    async def open(cls, path: Path, synchronous: str | None) -> SQLStorageVariant:
        storage = await SQLStorage.open(path, TABLE)
        if synchronous is not None:
            await storage.connection.execute(f"PRAGMA synchronous={synchronous}")
        return cls(storage)

    async def run(self, trips: int) -> float:
        storage = self._storage
        start = time.perf_counter()
        for _ in range(trips):
            record = await storage.get()
            await storage.update(refreshed(record), False)
        return time.perf_counter() - start

    async def close(self) -> None:
        await self._storage.close()


class NaiveAiosqlite:
    """The naive way: BEGIN, a cursor select, the UPDATE, COMMIT; a hop for every call."""

    name = "aiosqlite naive (BEGIN..COMMIT)"
    hops = 6

    def __init__(self, conn: aiosqlite.Connection, sql: SQLiteStatements) -> None:
        self._conn = conn
        self._sql = sql

    @classmethod
    async def open(
        cls, path: Path, sql: SQLiteStatements, synchronous: str | None
    ) -> NaiveAiosqlite:
        conn = await aiosqlite.connect(path, timeout=DEFAULT_BUSY_TIMEOUT)
        await conn.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            await conn.execute(f"PRAGMA synchronous={synchronous}")
        return cls(conn, sql)

    async def run(self, trips: int) -> float:
        conn, sql = self._conn, self._sql
        start = time.perf_counter()
        for _ in range(trips):
            await conn.execute("BEGIN")
            async with conn.execute(sql.select) as cursor:
                rows = await cursor.fetchall()
            statement, args = sql.write_args(refreshed(sql.decode(rows)))
            cursor = await conn.execute(statement, args)
            if cursor.rowcount != 1:
                raise RuntimeError("unexpected CAS conflict in the round-trip benchmark")
            await conn.commit()
        return time.perf_counter() - start

    async def close(self) -> None:
        await self._conn.close()


@dataclasses.dataclass
class RoundTripResult:
    name: str
    hops: int
    per_round_us: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_round_us)


async def bench_round_trip(
    directory: Path, trips: int, rounds: int, synchronous: str | None
) -> tuple[list[RoundTripResult], dict[str, str]]:
    """Time the three variants, interleaved round by round; the first round is a warm-up."""
    path = directory / f"roundtrip-{synchronous or 'default'}.db"
    sql = SQLiteStatements.for_table(TABLE)
    baseline = Sqlite3Baseline(path, sql, synchronous)
    variants = [
        baseline,
        await SQLStorageVariant.open(path, synchronous),
        await NaiveAiosqlite.open(path, sql, synchronous),
    ]
    statement, args = sql.write_args(realistic_record())
    baseline._conn.execute(statement, args)  # SQLStorage.open created the table
    info = {
        "journal_mode": baseline.pragma("journal_mode"),
        "synchronous": {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}.get(
            baseline.pragma("synchronous"), "?"
        ),
        "record_bytes": str(len(args[0])),
    }
    results = [RoundTripResult(v.name, v.hops, []) for v in variants]
    try:
        for round_no in range(rounds + 1):
            # Rotate the order so that no variant always runs right after another.
            order = list(range(len(variants)))
            order = order[round_no % len(order) :] + order[: round_no % len(order)]
            for index in order:
                seconds = await variants[index].run(trips)
                if round_no > 0:
                    results[index].per_round_us.append(seconds / trips * 1e6)
    finally:
        for variant in variants:
            await variant.close()
    return results, info


def print_round_trip_header(trips: int, rounds: int) -> None:
    print(
        "\n1. One renewal round trip: get + CAS update of a 3-member record on a SQLite file"
        f"\n   (median of {rounds} rounds x {trips} trips after 1 warm-up round; every variant "
        "does select + JSON decode\n   + refresh + JSON encode + CAS update with the same SQL; "
        "hops = calls to aiosqlite's thread)"
    )


def print_round_trip(
    results: list[RoundTripResult], info: dict[str, str], synchronous: str | None
) -> None:
    why = {
        None: "as SQLStorage leaves it",
        "FULL": "the WAL is synced at every commit",
        "NORMAL": "no sync per commit, so the hops show",
        "OFF": "no sync at all",
    }
    setting = f"synchronous={info['synchronous']}"
    if synchronous is None:
        setting += f" ({why[None]})"
    else:
        setting += f" (set here: {why[synchronous]})"
    print(
        f"\n   journal_mode={info['journal_mode']}, {setting}, {info['record_bytes']} bytes of JSON"
    )
    print(f"   {'variant':<34}{'hops':>5}{'us/trip':>10}{'min':>9}{'max':>9}{'ratio':>8}")
    floor = results[0].median_us
    for r in results:
        print(
            f"   {r.name:<34}{r.hops:>5}{r.median_us:>10.1f}{min(r.per_round_us):>9.1f}"
            f"{max(r.per_round_us):>9.1f}{r.median_us / floor:>7.2f}x"
        )
    ratio = results[1].median_us / floor
    verdict = "met" if ratio <= ROUND_TRIP_TARGET else "MISSED"
    print(
        f"ratio SQLStorage/sqlite3 = {ratio:.2f}x (synchronous={info['synchronous']}; "
        f"target <= {ROUND_TRIP_TARGET:g}x: {verdict}); naive aiosqlite/sqlite3 = "
        f"{results[2].median_us / floor:.2f}x"
    )


# ---------------------------------------------------------------------------------------
# 2. capacity


class TimedStorage:
    """Delegates to a storage and notes each read-modify-write window (get start to update end).

    The window is what a CAS races against: the longer it is, the likelier another member
    writes in between. In one process it includes waiting for the shared event loop.
    """

    def __init__(self, inner: SQLStorage, windows: list[float]) -> None:
        self._inner = inner
        self._windows = windows
        self._read_at = 0.0

    async def get(self) -> Record:
        self._read_at = time.perf_counter()
        return await self._inner.get()

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        try:
            await self._inner.update(record, is_leader_changed)
        finally:
            self._windows.append(time.perf_counter() - self._read_at)


@dataclasses.dataclass
class CapacityResult:
    members: int
    interval: float
    duration: float
    elected: bool
    renews_per_s: float
    attempts: int
    cas_conflicts: int
    storage_errors: int
    renew_failed: int
    leader_changes: int
    lost_leader: int
    callback_cancelled: int
    member_expired: int
    max_renew_gap: float
    window_p50: float
    window_p99: float
    loop_lag_max: float
    cpu_share: float

    @property
    def leadership_losses(self) -> int:
        """Spurious losses of leadership: nobody crashed, so each of these is one."""
        return self.leader_changes + self.lost_leader + self.callback_cancelled

    @property
    def clean(self) -> bool:
        """A leader was elected and kept leadership for the whole run."""
        return self.elected and self.leadership_losses == 0

    @property
    def strictly_clean(self) -> bool:
        """Clean, and no member failed a renew round or was expired by others either."""
        return self.clean and self.renew_failed == 0 and self.member_expired == 0

    @property
    def saturated(self) -> bool:
        # One core's worth of CPU (the GIL) or a loop that wakes late by a quarter of the
        # renew interval: the process, not the SQLite file, is the bottleneck.
        return self.cpu_share >= 0.9 or self.loop_lag_max >= self.interval / 4


async def _lead() -> None:
    await asyncio.Event().wait()


async def _join_after(elector: Elector, delay: float) -> None:
    await asyncio.sleep(delay)
    await elector.run_election()


async def _measure_loop_lag(period: float, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - before - period)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_capacity(
    directory: Path, members: int, duration: float, interval: float = INTERVAL
) -> CapacityResult:
    """Run ``members`` electors on one fresh file for ``duration`` s and count the losses."""
    lease, interval, deadline = timings_for(interval)
    path = directory / f"capacity-{members}-{interval:g}.db"
    recorder = TraceRecorder()  # time.monotonic: the clock the event loop uses too
    windows: list[float] = []
    storages = [await SQLStorage.open(path, TABLE) for _ in range(members)]
    with warnings.catch_warnings():
        # The reference defaults leave zero slack by design; the warning says so, once
        # per member, which is noise here.
        warnings.simplefilter("ignore", SafetyWarning)
        electors = [
            Elector(
                Config(
                    id=f"member-{i:03d}",
                    name=f"bench-{i}",
                    address=f"10.0.{i // 250}.{i % 250 + 1}:8261",
                    storage=TimedStorage(storage, windows),
                    leader_callback=_lead,
                    lease_duration=lease,
                    renew_interval=interval,
                    renew_deadline=deadline,
                ),
                observer=recorder,
                seed=i,
            )
            for i, storage in enumerate(storages)
        ]
    # Members join spread over one renew interval, as real processes would, not all in
    # the same millisecond.
    spread = random.Random(members)
    lags: list[float] = []
    lag_task = asyncio.create_task(_measure_loop_lag(0.05, lags))
    cpu_start, wall_start = time.process_time(), time.monotonic()
    tasks = [
        asyncio.create_task(_join_after(e, spread.uniform(0, interval)), name=e.id)
        for e in electors
    ]
    await asyncio.sleep(duration)
    stop_at = time.monotonic()
    cpu_share = (time.process_time() - cpu_start) / (stop_at - wall_start)
    measured_windows = list(windows)
    for task in [*tasks, lag_task]:
        task.cancel()
    await asyncio.gather(*tasks, lag_task, return_exceptions=True)
    for storage in storages:
        await storage.close()
    result = summarize(members, [e for e in recorder.events if e.true_time < stop_at])
    return dataclasses.replace(
        result,
        interval=interval,
        duration=stop_at - wall_start,
        renews_per_s=result.renews_per_s / (stop_at - wall_start),
        window_p50=_percentile(measured_windows, 0.5),
        window_p99=_percentile(measured_windows, 0.99),
        loop_lag_max=max(lags, default=0.0),
        cpu_share=cpu_share,
    )


def summarize(members: int, events: list[TraceEvent]) -> CapacityResult:
    """Count one run's trace events (all before the stop, so shutdown is not counted).

    ``renews_per_s`` holds the renewal count; the caller divides it by the duration.
    """

    def count(kind: EventKind, op: str | None = None) -> int:
        return sum(1 for e in events if e.kind is kind and (op is None or e.details["op"] == op))

    renew_ok = count(EventKind.RENEW_OK)
    conflicts = count(EventKind.CAS_CONFLICT, "renew")
    errors = count(EventKind.STORAGE_ERROR, "renew")
    became = count(EventKind.BECAME_LEADER)
    last_ok: dict[str, float] = {}
    max_gap = 0.0
    for event in events:
        if event.kind is EventKind.RENEW_OK:
            if event.node in last_ok:
                max_gap = max(max_gap, event.true_time - last_ok[event.node])
            last_ok[event.node] = event.true_time
    return CapacityResult(
        members=members,
        interval=INTERVAL,
        duration=0.0,
        elected=became > 0,
        renews_per_s=float(renew_ok),
        attempts=renew_ok + conflicts + errors,
        cas_conflicts=conflicts,
        storage_errors=errors,
        renew_failed=count(EventKind.RENEW_FAILED),
        leader_changes=max(0, became - 1),
        lost_leader=count(EventKind.LOST_LEADER),
        callback_cancelled=count(EventKind.CALLBACK_CANCELLED),
        member_expired=count(EventKind.MEMBER_EXPIRED),
        max_renew_gap=max_gap,
        window_p50=0.0,
        window_p99=0.0,
        loop_lag_max=0.0,
        cpu_share=0.0,
    )


def print_capacity_header(interval: float, duration: float) -> None:
    lease, interval, deadline = timings_for(interval)
    print(
        f"\n2. Members per SQLite file at lease/interval/deadline {lease:g}/{interval:g}/"
        f"{deadline:g} s: {duration:g} s per N, real clock, one process, no faults"
        "\n   changes: leader changes after the first election; lost, cancel: lost_leader, "
        "callback_cancelled events\n   (nobody crashes, so each is a spurious loss of "
        "leadership); failed: renew rounds that hit the deadline;\n   expired: live members "
        "pruned by others; conflict: CAS conflicts / renew attempts; gap: longest time\n   "
        "between two renewals of one member; rmw: read-modify-write window p50/p99; lag: "
        "worst event-loop delay"
    )
    print(
        f"   {'N':>5}{'renew/s':>9}{'conflict':>9}{'st.err':>7}{'failed':>7}{'changes':>8}"
        f"{'lost':>5}{'cancel':>7}{'expired':>8}{'gap s':>7}{'rmw ms':>11}{'lag ms':>7}"
        f"{'cpu':>5}  verdict"
    )


def print_capacity_row(r: CapacityResult) -> None:
    share = r.cas_conflicts / r.attempts if r.attempts else 0.0
    if not r.elected:
        verdict = "NO LEADER"
    elif not r.clean:
        verdict = "LEADERSHIP LOST"
    elif not r.strictly_clean:
        verdict = "leader kept, members churned"
    else:
        verdict = "clean"
    if r.saturated:
        verdict += ", process-bound"
    rmw = f"{r.window_p50 * 1e3:.1f}/{r.window_p99 * 1e3:.0f}"
    print(
        f"   {r.members:>5}{r.renews_per_s:>9.1f}{share:>8.1%}{r.storage_errors:>7}"
        f"{r.renew_failed:>7}{r.leader_changes:>8}{r.lost_leader:>5}{r.callback_cancelled:>7}"
        f"{r.member_expired:>8}{r.max_renew_gap:>7.1f}{rmw:>11}{r.loop_lag_max * 1e3:>7.0f}"
        f"{r.cpu_share:>5.0%}  {verdict}",
        flush=True,
    )


def _largest_prefix(results: list[CapacityResult], ok: Callable[[CapacityResult], bool]) -> int:
    """The largest N such that it and every smaller N tried passed ``ok`` (0 if none)."""
    largest = 0
    for r in sorted(results, key=lambda r: r.members):
        if not ok(r):
            break
        largest = r.members
    return largest


def print_capacity_summary(results: list[CapacityResult]) -> None:
    tried = sorted(r.members for r in results)
    largest = _largest_prefix(results, lambda r: r.clean)
    if largest >= CAPACITY_TARGET:
        verdict = "met"
    elif tried[-1] < CAPACITY_TARGET:
        verdict = "not judged, no N that large was tried"
    else:
        verdict = "MISSED"
    interval = results[0].interval
    judged = f"target >= {CAPACITY_TARGET}: {verdict}"
    print(
        f"largest N with zero spurious loss of leadership = {largest} of {tried} at interval "
        f"{interval:g} s ({judged if interval == INTERVAL else 'no target at this interval'})"
    )
    strict = _largest_prefix(results, lambda r: r.strictly_clean)
    print(
        "largest N with no failed renew round and no expired member either = "
        f"{strict} at interval {interval:g} s"
    )
    saturated = [r.members for r in results if r.saturated]
    if saturated:
        print(
            f"   note: at N={saturated} this one process was saturated (>= 90% of a core, or "
            f"the event loop woke >= {interval / 4:g} s late): with {os.cpu_count()} CPUs, "
            "one Python process cannot drive that many electors' thread hops on time, so "
            "those rows measure the process, not the SQLite file"
        )
    print(
        "   note: all members share one event loop here, so each read-modify-write window "
        "includes waiting\n   for the others' work on it; members in separate processes would "
        "not wait for each other\n   (not measured here), so their windows and conflicts "
        "could be smaller"
    )


# ---------------------------------------------------------------------------------------
# driver


@contextlib.contextmanager
def database_directory(given: str | None) -> Iterator[Path]:
    if given is not None:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="leadersim-bench-") as tmp:
        yield Path(tmp)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark leadersim on SQLite: one renewal round trip, and how many "
        "members one SQLite file sustains at the default timings.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run in a few seconds (numbers are rough)"
    )
    parser.add_argument(
        "--trips", type=int, default=1000, help="round trips per round and variant (1000)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per variant (7)")
    parser.add_argument(
        "--members",
        default="50,100,150,200",
        help="comma-separated member counts N for the capacity run (50,100,150,200)",
    )
    parser.add_argument(
        "--duration", type=float, default=40.0, help="wall seconds per N in the capacity run (40)"
    )
    parser.add_argument(
        "--fast-members",
        default="20,40,60,80,100",
        help="member counts N at renew interval 0.25 s (20,40,60,80,100; empty: skip it)",
    )
    parser.add_argument(
        "--fast-duration", type=float, default=15.0, help="wall seconds per N at 0.25 s (15)"
    )
    parser.add_argument(
        "--synchronous",
        choices=["OFF", "NORMAL", "FULL"],
        help="PRAGMA synchronous for the round-trip connections; default: two tables, "
        "one as SQLStorage leaves it (the build's default, FULL: the WAL is synced at every "
        "commit) and one at NORMAL (no sync per commit, so the thread hops are not hidden)",
    )
    parser.add_argument(
        "--only", choices=["roundtrip", "capacity"], help="run only one of the two benchmarks"
    )
    parser.add_argument(
        "--dir", help="directory for the SQLite files (default: a fresh temporary directory)"
    )
    args = parser.parse_args(argv)
    args.synchronous = [None, "NORMAL"] if args.synchronous is None else [args.synchronous]
    if args.quick:
        args.trips, args.rounds, args.members, args.duration = 100, 3, "10", 5.0
        args.fast_members, args.fast_duration = "10", 3.0
    for flag in ("members", "fast_members"):
        text = getattr(args, flag)
        try:
            setattr(args, flag, [int(n) for n in text.split(",") if n.strip()])
        except ValueError:
            parser.error(
                f"--{flag.replace('_', '-')} must be comma-separated integers, got {text!r}"
            )
    if args.trips < 1 or args.rounds < 1 or args.duration <= 0 or not args.members:
        parser.error("--trips, --rounds, --duration and --members must be positive")
    if args.fast_duration <= 0:
        parser.error("--fast-duration must be positive")
    if any(n < 1 for n in [*args.members, *args.fast_members]):
        parser.error("every N in --members and --fast-members must be at least 1")
    return args


async def main_async(args: argparse.Namespace, directory: Path) -> None:
    if args.only != "capacity":
        print_round_trip_header(args.trips, args.rounds)
        for synchronous in args.synchronous:
            results, info = await bench_round_trip(directory, args.trips, args.rounds, synchronous)
            print_round_trip(results, info, synchronous)
    if args.only != "roundtrip":
        runs = [
            (INTERVAL, args.members, args.duration),
            (0.25, args.fast_members, args.fast_duration),
        ]
        for interval, counts, duration in runs:
            if not counts:
                continue
            print_capacity_header(interval, duration)
            capacity = []
            for n in counts:
                capacity.append(await bench_capacity(directory, n, duration, interval))
                print_capacity_row(capacity[-1])
            print_capacity_summary(capacity)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Storage errors and conflicts are counted from the trace; their log lines would only
    # flood the table.
    logging.getLogger("leadersim").setLevel(logging.ERROR)
    print(
        f"leadersim SQLite benchmarks{' (--quick: rough numbers)' if args.quick else ''}: "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, aiosqlite "
        f"{aiosqlite.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    started = time.monotonic()
    with database_directory(args.dir) as directory:
        print(f"database directory: {directory}")
        asyncio.run(main_async(args, directory))
    print(f"done in {time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
