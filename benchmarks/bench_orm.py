"""Server benchmarks for ORMStorage: one renewal's cost, and members one server sustains.

Run from the repository root (PostgreSQL at 127.0.0.1:5432 and MariaDB at 127.0.0.1:3306, or set
``LEADERSIM_POSTGRES_URL`` / ``LEADERSIM_MYSQL_URL``)::

    python benchmarks/bench_orm.py            # full run, about 4 minutes
    python benchmarks/bench_orm.py --quick    # smoke run, about 30 seconds

1. Round trip. The same renewal of a 3-member record (select, decode, refresh one
   member's renew time, encode, CAS update, check one row changed) is timed two ways per
   server, interleaved round by round in this process:

   - ``raw driver``: asyncpg / aiomysql called directly on one autocommit connection:
     ``SELECT`` then ``UPDATE ... WHERE id = 1 AND version = ...``. The floor.
   - ``ORMStorage``: ``await storage.get()`` then ``await storage.update(...)``.

   It also times the CAS alone (``update`` vs the raw ``UPDATE``). It prints µs per
   operation (median of the rounds) and the ratios; the goal is at most 2x.

2. Capacity. N electors run in this process on one table of one server, each with its own
   ``ORMStorage`` (one connection each), on the real clock, at renew interval 2 s (lease
   10 s, deadline 8 s: the defaults) and at 0.25 s (lease 2 s, deadline 1.5 s). Nobody
   crashes, so any leader change after the first election, lost leadership, cancelled
   callback or failed renew round is spurious. It prints the largest N with none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from bench_sqlite import timings_for  # the capacity runs' timings: one home for both files

from leadersim import (
    Config,
    Elector,
    EventKind,
    Member,
    ORMStorage,
    Record,
    SafetyWarning,
    TraceRecorder,
    record_from_json,
    record_to_json,
)

POSTGRES_URL = os.environ.get(
    "LEADERSIM_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("LEADERSIM_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")


def realistic_record() -> Record:
    """Three members, about 450 bytes of JSON (as bench_sqlite)."""
    zone = timezone(timedelta(hours=8))
    now = datetime.now(zone)
    return Record(
        leader_id="node-1",
        members=[
            Member(f"node-{i}", f"node-{i}", f"10.0.0.{i}:10240", 10.0, now, 123) for i in (1, 2, 3)
        ],
    )


def refreshed(record: Record) -> Record:
    """What the leader's renewal changes: its own renew time."""
    record = record.clone()
    record.members[0] = record.members[0].renewed(datetime.now(UTC))
    return record


# ---------------------------------------------------------------------- round trip


class RawDriver:
    """asyncpg or aiomysql on one autocommit connection: the floor."""

    def __init__(self, url: sa.URL, table: str) -> None:
        self.url, self.table = url, table
        self.postgres = url.get_backend_name() == "postgresql"
        self.conn: object = None

    async def open(self) -> None:
        u = self.url
        if self.postgres:
            import asyncpg

            self.conn = await asyncpg.connect(
                host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
            )
        else:
            import aiomysql

            self.conn = await aiomysql.connect(
                host=u.host or "127.0.0.1",
                port=u.port or 3306,
                user=u.username or "root",
                password=u.password or "",
                db=u.database,
                autocommit=True,
            )

    async def read(self) -> Record:
        t = self.table
        if self.postgres:
            row = await self.conn.fetchrow(f"SELECT record, version FROM {t} WHERE id = 1")  # type: ignore[attr-defined]
        else:
            async with self.conn.cursor() as cur:  # type: ignore[attr-defined]
                await cur.execute(f"SELECT record, version FROM {t} WHERE id = 1")
                row = await cur.fetchone()
        return record_from_json(row[0], int(row[1]))

    async def cas(self, record: Record) -> None:
        t, v, payload = self.table, record.version, record_to_json(record)
        if self.postgres:
            status = await self.conn.execute(  # type: ignore[attr-defined]
                f"UPDATE {t} SET leader_id = $1, record = $2, version = $3 "
                "WHERE id = 1 AND version = $4",
                record.leader_id,
                payload,
                v + 1,
                v,
            )
            changed = int(status.split()[-1])
        else:
            async with self.conn.cursor() as cur:  # type: ignore[attr-defined]
                changed = await cur.execute(
                    f"UPDATE {t} SET leader_id = %s, record = %s, version = %s "
                    "WHERE id = 1 AND version = %s",
                    (record.leader_id, payload, v + 1, v),
                )
        if changed != 1:
            raise RuntimeError("unexpected CAS conflict in the round-trip benchmark")

    async def close(self) -> None:
        if self.postgres:
            await self.conn.close()  # type: ignore[attr-defined]
        else:
            self.conn.close()  # type: ignore[attr-defined]


async def timed(trips: int, trip: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    for _ in range(trips):
        await trip()
    return (time.perf_counter() - started) / trips * 1e6


async def bench_round_trip(name: str, url: str, trips: int, rounds: int) -> None:
    table = f"bench_{uuid.uuid4().hex[:12]}"
    storage = await ORMStorage.from_url(url, table)
    raw = RawDriver(sa.make_url(url), table)
    await raw.open()
    try:
        await storage.update(realistic_record(), True)

        async def orm_renewal() -> None:
            await storage.update(refreshed(await storage.get()), False)

        async def raw_renewal() -> None:
            await raw.cas(refreshed(await raw.read()))

        # The CAS alone: the record is read once per round; each trip writes the next
        # version of it.
        state: dict[str, Record] = {}

        async def orm_cas() -> None:
            record = state["orm"]
            await storage.update(record, False)
            state["orm"] = dataclasses.replace(record, version=record.version + 1)

        async def raw_cas() -> None:
            record = state["raw"]
            await raw.cas(record)
            state["raw"] = dataclasses.replace(record, version=record.version + 1)

        samples: dict[str, list[float]] = {k: [] for k in ("orm", "raw", "orm_cas", "raw_cas")}
        for index in range(rounds + 1):
            results = {
                "orm": await timed(trips, orm_renewal),
                "raw": await timed(trips, raw_renewal),
            }
            state["orm"] = refreshed(await storage.get())
            results["orm_cas"] = await timed(trips, orm_cas)
            state["raw"] = refreshed(await raw.read())
            results["raw_cas"] = await timed(trips, raw_cas)
            if index:  # the first round warms up caches and connections
                for key, value in results.items():
                    samples[key].append(value)
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"{name}:")
        print(
            f"  renewal (get + update)   ORMStorage {med['orm']:8.0f} µs   raw {med['raw']:8.0f} µs"
        )
        orm_cas, raw_cas = med["orm_cas"], med["raw_cas"]
        print(f"  CAS update alone         ORMStorage {orm_cas:8.0f} µs   raw {raw_cas:8.0f} µs")
        print(f"ratio ORMStorage/raw renewal = {med['orm'] / med['raw']:.2f}x ({name}; goal <= 2x)")
        print(f"ratio ORMStorage/raw CAS = {orm_cas / raw_cas:.2f}x ({name}; goal <= 2x)")
    finally:
        await raw.close()
        async with storage.engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE {table}"))
        await storage.close()


# ---------------------------------------------------------------------- capacity


@dataclasses.dataclass
class Capacity:
    members: int
    interval: float
    renewals: float
    conflicts: int
    errors: int
    failed: int
    changes: int
    lost: int
    cancelled: int
    expired: int

    @property
    def clean(self) -> bool:
        return self.changes == 0 and self.lost == 0 and self.cancelled == 0 and self.failed == 0


async def _lead() -> None:
    await asyncio.Event().wait()


async def bench_capacity(url: str, members: int, interval: float, duration: float) -> Capacity:
    table = f"cap_{uuid.uuid4().hex[:12]}"
    lease, interval, deadline = timings_for(interval)
    trace = TraceRecorder(time.monotonic)
    storages = [await ORMStorage.from_url(url, table, pool_size=1) for _ in range(members)]
    rng = random.Random(members)
    tasks = []

    async def join(elector: Elector, delay: float) -> None:
        await asyncio.sleep(delay)
        await elector.run_election()

    try:
        for i, storage in enumerate(storages):
            config = Config(
                f"m{i}",
                storage=storage,
                leader_callback=_lead,
                lease_duration=lease,
                renew_interval=interval,
                renew_deadline=deadline,
            )
            elector = Elector(config, observer=trace, seed=i)
            tasks.append(asyncio.create_task(join(elector, rng.uniform(0, interval))))
        started = time.monotonic()
        await asyncio.sleep(duration)
        events = list(trace.events)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with storages[0].engine.begin() as conn:
                await conn.execute(sa.text(f"DROP TABLE {table}"))
        for storage in storages:
            await storage.close()
    leaders = [e for e in events if e.kind is EventKind.BECAME_LEADER]

    def count(kind: EventKind) -> int:
        return sum(e.kind is kind for e in events)

    return Capacity(
        members,
        interval,
        count(EventKind.RENEW_OK) / (events[-1].true_time - started) if events else 0.0,
        count(EventKind.CAS_CONFLICT),
        count(EventKind.STORAGE_ERROR),
        count(EventKind.RENEW_FAILED),
        max(0, len(leaders) - 1),
        count(EventKind.LOST_LEADER),
        count(EventKind.CALLBACK_CANCELLED),
        count(EventKind.MEMBER_EXPIRED),
    )


def print_capacity(name: str, results: list[Capacity]) -> None:
    print(f"{name}:")
    print("     N  interval  renew/s  conflict  st.err  failed  changes  lost  cancel  expired")
    for r in results:
        print(
            f"  {r.members:4d}  {r.interval:7.2f}s  {r.renewals:7.1f}  {r.conflicts:8d}  "
            f"{r.errors:6d}  {r.failed:6d}  {r.changes:7d}  {r.lost:4d}  {r.cancelled:6d}  "
            f"{r.expired:7d}"
        )
    for interval in sorted({r.interval for r in results}, reverse=True):
        tried = [r for r in results if r.interval == interval]
        best = 0
        for r in tried:
            if not r.clean:
                break
            best = r.members
        print(
            f"largest N with zero spurious loss of leadership = {best} of "
            f"{[r.members for r in tried]} ({name}, interval {interval:g} s)"
        )


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few trips, N = 5")
    parser.add_argument("--trips", type=int, default=300, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant")
    parser.add_argument("--members", default="10,25,45", help="N to try, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="wall s per N at 2 s")
    parser.add_argument("--fast-duration", type=float, default=10.0, help="wall s per N at 0.25 s")
    parser.add_argument("--only", choices=["roundtrip", "capacity"], help="run one part")
    parser.add_argument("--server", choices=["postgresql", "mariadb"], help="one server only")
    args = parser.parse_args(argv)
    if args.quick:
        args.trips, args.rounds, args.members = 50, 2, "5"
        args.duration, args.fast_duration = 5.0, 3.0
    return args


async def main_async(args: argparse.Namespace) -> None:
    servers = [("PostgreSQL", POSTGRES_URL, "postgresql"), ("MariaDB", MYSQL_URL, "mariadb")]
    servers = [s for s in servers if args.server in (None, s[2])]
    print(f"leadersim bench_orm; python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}")
    if args.only in (None, "roundtrip"):
        print(f"\n== 1. renewal round trip ({args.trips} trips x {args.rounds} rounds)")
        for name, url, _ in servers:
            await bench_round_trip(name, url, args.trips, args.rounds)
    if args.only in (None, "capacity"):
        counts = [int(n) for n in args.members.split(",")]
        print("\n== 2. members one server sustains (one connection per member)")
        for name, url, _ in servers:
            results = [await bench_capacity(url, n, 2.0, args.duration) for n in counts]
            results += [await bench_capacity(url, n, 0.25, args.fast_duration) for n in counts]
            print_capacity(name, results)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> None:
    warnings.simplefilter("ignore", SafetyWarning)
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
