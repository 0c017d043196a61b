"""ORMStorage: the storage contract on PostgreSQL, MariaDB and SQLite, fencing, bad input.

Each test uses a table of its own (tests share the servers with other runs) and drops it
afterwards. Server tests are marked ``server``: without the servers they skip with the
reason, unless ``LEADERSIM_REQUIRE_SERVERS=1`` (CI), which makes that a failure.

Fencing is checked with synchronisation that does not depend on timing: a leader
transaction's ``fn`` waits on an event, and a competing leader change is shown to wait
for it by asking the server itself whether the change's session is waiting for a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from worlds import drop_tables, unique_table

from leadersim import (
    ConfigError,
    CorruptRecordError,
    NotLeaderError,
    ORMStorage,
    Record,
    RecordConflictError,
    Storage,
    StorageContentionError,
    StorageError,
    StorageUnavailableError,
)
from leadersim.testing import StorageContract, sample_record

BACKENDS = [
    pytest.param("postgresql", marks=pytest.mark.server),
    pytest.param("mariadb", marks=pytest.mark.server),
    "sqlite",
]
SERVERS = [p for p in BACKENDS if not isinstance(p, str)]


def backend_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    if kind == "mariadb":
        return str(request.getfixturevalue("mysql_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'orm.db'}"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each backend."""
    return backend_url(request, request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each server (PostgreSQL, MariaDB)."""
    return backend_url(request, request.param, tmp_path)


class Tables:
    """Storages on one fresh election table plus a marks table, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = unique_table("orm")
        self.marks = f"{self.name}_marks"
        self.storages: list[ORMStorage] = []

    async def open(self, n: int = 1, **options: Any) -> list[ORMStorage]:
        opened = [await ORMStorage.from_url(self.url, self.name, **options) for _ in range(n)]
        if not self.storages:
            async with opened[0].engine.begin() as conn:
                await conn.execute(
                    sa.text(f"CREATE TABLE {self.marks} (mark VARCHAR(100) NOT NULL)")
                )
        self.storages.extend(opened)
        return opened

    async def aclose(self) -> None:
        for storage in self.storages:
            await storage.close()
        await drop_tables(self.url, self.name, self.marks)

    async def write_mark(self, connection: AsyncConnection, mark: str) -> None:
        await connection.execute(
            sa.text(f"INSERT INTO {self.marks} (mark) VALUES (:mark)"), {"mark": mark}
        )

    async def read_marks(self) -> set[str]:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(sa.text(f"SELECT mark FROM {self.marks}"))
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    async def raw(self, sql: str, **params: Any) -> list[Any]:
        """Run ``sql`` on a connection of its own (committed) and return the rows."""
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(sql), params)
                return list(result) if result.returns_rows else []
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def tables(url: str) -> AsyncIterator[Tables]:
    t = Tables(url)
    try:
        yield t
    finally:
        await t.aclose()


# ---------------------------------------------------------------------- contract suite


class ORMContract(StorageContract):
    """The leadersim.testing contract on ORMStorage; subclasses pick the backend."""

    leader_lock = True
    kind = ""

    @pytest.fixture(autouse=True)
    def _backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.url = backend_url(request, self.kind, tmp_path)
        self.opened: list[Tables] = []

    async def make_storages(self, n: int) -> Sequence[Storage]:
        t = Tables(self.url)
        self.opened.append(t)
        return await t.open(n)

    async def close_storages(self, storages: Sequence[Storage]) -> None:
        for t in self.opened:
            await t.aclose()
        self.opened.clear()

    def _tables_of(self, storage: Storage) -> Tables:
        return next(t for t in self.opened if storage in t.storages)

    async def write_mark(self, connection: Any, mark: str) -> None:
        await self.opened[-1].write_mark(connection, mark)

    async def read_marks(self, storage: Storage) -> set[str]:
        return await self._tables_of(storage).read_marks()


@pytest.mark.server
class TestPostgresContract(ORMContract):
    kind = "postgresql"


@pytest.mark.server
class TestMariaDBContract(ORMContract):
    kind = "mariadb"


class TestSQLiteContract(ORMContract):
    kind = "sqlite"


# ---------------------------------------------------------------------- fencing


async def wait_until_lock_wait(url: str, table: str, within: float = 15.0) -> None:
    """Return once the server shows a session waiting for a row lock on ``table``.

    This is the server's own account of the competing write being blocked, so the test
    does not guess with a sleep.
    """
    backend = sa.make_url(url).get_backend_name()
    if backend == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE :pattern"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.INNODB_TRX "
            "WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE :pattern"
        )
    engine = create_async_engine(url)
    try:
        async with asyncio.timeout(within), engine.connect() as conn:
            while True:
                count = (await conn.execute(sa.text(sql), {"pattern": f"%{table}%"})).scalar()
                if count:
                    return
                await conn.rollback()  # a fresh snapshot of the lock tables
                await asyncio.sleep(0.01)
    finally:
        await engine.dispose()


async def hold_leader_txn(
    storage: ORMStorage, leader: str, t: Tables, mark: str
) -> tuple[asyncio.Task[str], asyncio.Event]:
    """Open a leader txn whose fn wrote ``mark`` and now waits; return it and its gate."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def fn(conn: AsyncConnection) -> str:
        await t.write_mark(conn, mark)
        entered.set()
        await release.wait()
        return "held"

    txn = asyncio.create_task(storage.txn_with_leader_lock(leader, fn))
    waiter = asyncio.create_task(entered.wait())
    await asyncio.wait({txn, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not entered.is_set():
        txn.result()
    return txn, release


async def test_leader_txn_commits_and_a_deposed_leaders_txn_is_refused_with_no_writes(
    url: str,
) -> None:
    async with tables(url) as t:
        a, b = await t.open(2)
        await a.update(sample_record("A"), True)
        calls = []

        async def write(mark: str) -> Any:
            async def fn(conn: AsyncConnection) -> str:
                calls.append(mark)
                await t.write_mark(conn, mark)
                return mark

            return fn

        assert await a.txn_with_leader_lock("A", await write("while-a-leads")) == "while-a-leads"
        read = await b.get()
        await b.update(Record("B", read.members, read.version), True)
        with pytest.raises(NotLeaderError, match=r"^A is not leader$"):
            await a.txn_with_leader_lock("A", await write("after-b-took-over"))
        assert calls == ["while-a-leads"]
        assert await t.read_marks() == {"while-a-leads"}
        assert await b.txn_with_leader_lock("B", await write("b-leads")) == "b-leads"


@pytest.mark.server
async def test_leader_change_waits_for_an_open_leader_txn_then_fences_the_old_leader(
    server_url: str,
) -> None:
    async with tables(server_url) as t:
        a, b = await t.open(2)
        await a.update(sample_record("A"), True)
        read = await b.get()
        txn, release = await hold_leader_txn(a, "A", t, "fenced-write")
        change = asyncio.create_task(b.update(Record("B", read.members, read.version), True))
        try:
            await wait_until_lock_wait(server_url, t.name)
            assert not change.done(), "the leader change finished while A's txn was open"
            release.set()
            assert await txn == "held"
            async with asyncio.timeout(15):
                await change
        finally:
            release.set()
            await asyncio.gather(txn, change, return_exceptions=True)
        assert await t.read_marks() == {"fenced-write"}
        assert (await a.get()).leader_id == "B"
        with pytest.raises(NotLeaderError):
            await a.txn_with_leader_lock("A", _never_called)


async def test_sqlite_leader_change_during_a_leader_txn_fails_and_never_succeeds(
    tmp_path: Path,
) -> None:
    # SQLite has no row locks: the leader txn holds the file's write lock, so a leader
    # change meanwhile waits for the busy timeout and fails. With a zero busy timeout it
    # fails at once: deterministic, no timing involved.
    async with tables(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}") as t:
        (a,) = await t.open(1)
        (b,) = await t.open(1, connect_args={"timeout": 0})
        await a.update(sample_record("A"), True)
        read = await b.get()
        txn, release = await hold_leader_txn(a, "A", t, "fenced-write")
        with pytest.raises(StorageUnavailableError, match="locked") as caught:
            await b.update(Record("B", read.members, read.version), True)
        assert caught.value.__cause__ is not None
        release.set()
        assert await txn == "held"
        assert (await b.get()).leader_id == "A"  # the change never happened
        await b.update(Record("B", read.members, read.version), True)
        assert (await a.get()).leader_id == "B"
        assert await t.read_marks() == {"fenced-write"}


async def test_after_a_resign_clears_the_slot_the_old_leader_is_refused_and_columns_cleared(
    url: str,
) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        await a.update(sample_record("A"), True)
        read = await a.get()
        await a.update(Record("", read.members, read.version), True)  # resign
        with pytest.raises(NotLeaderError, match=r"^A is not leader$"):
            await a.txn_with_leader_lock("A", _never_called)
        with pytest.raises(NotLeaderError, match=r"^ is not leader$"):
            await a.txn_with_leader_lock("", _never_called)
        # The reference's ORM skips writing an empty leader_id; here both rows clear it.
        rows = await t.raw(f"SELECT id, leader_id FROM {t.name} ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, ""), (2, "")]


async def _never_called(conn: AsyncConnection) -> None:
    raise AssertionError("fn must not run for a refused leader")


@pytest.mark.server
async def test_an_open_leader_txn_blocks_neither_another_leader_txn_nor_a_renewal(
    server_url: str,
) -> None:
    async with tables(server_url) as t:
        a, other = await t.open(2)
        await a.update(sample_record("A"), True)
        txn, release = await hold_leader_txn(a, "A", t, "first")
        try:
            async with asyncio.timeout(10):  # a block would hang here until release is set

                async def second(conn: AsyncConnection) -> str:
                    await t.write_mark(conn, "second")
                    return "second done"

                assert await a.txn_with_leader_lock("A", second) == "second done"
                read = await other.get()
                await other.update(Record("A", read.members[:1], read.version), False)
            assert not txn.done()
        finally:
            release.set()
        assert await txn == "held"
        assert await t.read_marks() == {"first", "second"}
        assert len((await other.get()).members) == 1


async def test_a_caller_cancelled_while_fn_awaits_commits_nothing_and_releases_the_lock(
    url: str,
) -> None:
    async with tables(url) as t:
        a, b = await t.open(2)
        await a.update(sample_record("A"), True)
        txn, _ = await hold_leader_txn(a, "A", t, "cancelled-write")
        txn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await txn
        read = await b.get()
        async with asyncio.timeout(15):  # the lock is gone: the change goes through
            await b.update(Record("B", read.members, read.version), True)
        assert await t.read_marks() == set()
        # a's storage still works after the cancellation
        read = await a.get()
        await a.update(Record("A", read.members, read.version), True)
        assert await a.txn_with_leader_lock("A", _returns_one) == 1


async def _returns_one(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())


async def test_leader_ids_compare_exactly(url: str) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        await a.update(sample_record("node-a"), True)
        for near_miss in ("Node-A", "node-a ", "NODE-A  ", "node-á"):
            with pytest.raises(NotLeaderError):
                await a.txn_with_leader_lock(near_miss, _never_called)
        assert await a.txn_with_leader_lock("node-a", _returns_one) == 1


# ---------------------------------------------------------------------- cancellation


@pytest.mark.server
@pytest.mark.slow
async def test_cancelling_at_random_points_never_hangs_or_desynchronises_the_pool(
    server_url: str,
) -> None:
    """Cancel leader txns and renewals at random moments, also in the middle of queries.

    After every cancellation the storages must still answer promptly and correctly (a
    desynchronised pooled connection would hang its next user or return another
    query's rows), and at the end nothing of a cancelled txn is committed and a leader
    change goes through (no lock left behind). Replay: LEADERSIM_CANCEL_SEED=<seed>.
    """
    seed = int(os.environ.get("LEADERSIM_CANCEL_SEED", random.randrange(2**32)))
    print(f"random cancellation test: replay with LEADERSIM_CANCEL_SEED={seed}")
    rng = random.Random(seed)
    backend = sa.make_url(server_url).get_backend_name()
    pause = "SELECT pg_sleep(0.002)" if backend == "postgresql" else "SELECT SLEEP(0.002)"
    async with tables(server_url) as t:
        # A small pool, so that the same connections are reused again and again.
        leader, follower = await t.open(2, pool_size=2, max_overflow=0)
        await leader.update(sample_record("A"), True)
        committed: set[str] = set()
        finished: set[str] = set()
        cancelled = 0

        for i in range(300):
            mark = f"m{i}"

            async def fn(conn: AsyncConnection, mark: str = mark, i: int = i) -> int:
                await t.write_mark(conn, mark)
                await conn.execute(sa.text(pause))
                value = (await conn.execute(sa.select(sa.literal(i, sa.Integer)))).scalar_one()
                await t.write_mark(conn, mark + "-b")
                finished.add(mark)  # from here on the txn commits, cancelled or not
                return int(value)

            what = rng.choice(["txn", "txn", "renew", "get"])
            if what == "txn":
                op: Any = leader.txn_with_leader_lock("A", fn)
            elif what == "renew":
                op = _renew(leader if rng.random() < 0.5 else follower)
            else:
                op = follower.get()
            task = asyncio.create_task(op)
            await asyncio.sleep(rng.uniform(0, 0.006))
            task.cancel()
            try:
                async with asyncio.timeout(10):
                    result = await task
            except asyncio.CancelledError:
                cancelled += 1
            except TimeoutError:
                pytest.fail(f"seed {seed}, step {i}: a cancelled {what} hung for 10 s")
            else:
                if what == "txn":
                    assert result == i, f"seed {seed}, step {i}: fn read {result}"
                    committed |= {mark, mark + "-b"}
            # Every storage answers promptly and correctly after each cancellation.
            async with asyncio.timeout(10):
                assert await leader.txn_with_leader_lock("A", _returns_one) == 1
                assert (await follower.get()).leader_id == "A"
        assert cancelled > 20, f"seed {seed}: only {cancelled} operations were cancelled"
        marks = await t.read_marks()
        # A txn cancelled before fn returned commits nothing; one whose fn returned
        # commits even if the cancellation arrives during the commit.
        assert committed <= {m for f in finished for m in (f, f + "-b")}
        expected = {m for f in finished for m in (f, f + "-b")}
        assert marks == expected, f"seed {seed}: marks wrong: {sorted(marks ^ expected)}"
        read = await follower.get()
        async with asyncio.timeout(15):
            await follower.update(Record("B", read.members, read.version), True)


async def _renew(storage: ORMStorage) -> None:
    read = await storage.get()
    with contextlib.suppress(RecordConflictError):
        await storage.update(Record(read.leader_id, read.members, read.version), False)


# ---------------------------------------------------------------------- layout & errors


async def test_version_0_without_a_leader_change_is_a_clear_error_and_writes_nothing(
    url: str,
) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        with pytest.raises(StorageError, match="without a leader change"):
            await a.update(Record("", sample_record().members, 0), False)
        assert await t.raw(f"SELECT id FROM {t.name}") == []
        assert (await a.get()).version == 0


async def test_racing_creators_one_wins_the_other_gets_a_conflict(url: str) -> None:
    async with tables(url) as t:
        storages = await t.open(3)
        outcomes = await asyncio.gather(
            *(s.update(sample_record(f"n{i}"), True) for i, s in enumerate(storages)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert all(isinstance(o, RecordConflictError) for o in outcomes if o is not None)


async def test_create_and_from_url_may_be_called_many_times_also_at_once(url: str) -> None:
    table = unique_table("many")
    engine = create_async_engine(url)
    try:
        storages = await asyncio.gather(
            *(ORMStorage.create(engine, table) for _ in range(4)),
            ORMStorage.from_url(url, table),
        )
        await storages[0].update(sample_record("A"), True)
        again = await ORMStorage.create(engine, table)
        assert (await again.get()).leader_id == "A"
        for storage in [*storages, again]:
            await storage.close()
        # create() leaves the caller's engine alone: still usable.
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
        await drop_tables(url, table)


async def test_a_closed_storage_refuses_every_call(url: str) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        await a.close()
        await a.close()  # harmless
        with pytest.raises(StorageError, match="closed"):
            await a.get()
        with pytest.raises(StorageError, match="closed"):
            await a.update(sample_record(), True)
        with pytest.raises(StorageError, match="closed"):
            await a.txn_with_leader_lock("A", _never_called)


GO_DDL = {
    # What the Go reference's AutoMigrate creates (MySQL), and its PostgreSQL analogue.
    "mysql": (
        "CREATE TABLE {t} (`id` int(10) unsigned AUTO_INCREMENT,`leader_id` text NOT NULL,"
        "`record` text,`version` bigint(20) unsigned NOT NULL,PRIMARY KEY (`id`))"
    ),
    "postgresql": (
        "CREATE TABLE {t} (id bigserial, leader_id text NOT NULL, record text, "
        "version bigint NOT NULL, PRIMARY KEY (id))"
    ),
    "sqlite": (
        "CREATE TABLE {t} (id integer PRIMARY KEY AUTOINCREMENT, leader_id text NOT NULL, "
        "record text, version integer NOT NULL)"
    ),
}
GO_RECORD = (
    '{"leader_id":"go-1","members":[{"id":"go-1","name":"go-1","address":"10.0.0.1:10240",'
    '"lease_duration":10000000000,"renew_time":"2024-05-01T12:00:03.123456789+08:00"}]}'
)


async def test_rows_written_by_the_go_reference_are_read_and_updated(url: str) -> None:
    backend = sa.make_url(url).get_backend_name()
    async with tables(url) as t:
        await t.raw(
            GO_DDL["mysql" if backend in ("mysql", "mariadb") else backend].format(t=t.name)
        )
        await t.raw(
            f"INSERT INTO {t.name} (leader_id, record, version, id) VALUES "
            "(:l, :r, 7, 1), (:l, NULL, 7, 2)",
            l="go-1",
            r=GO_RECORD,
        )
        (a,) = await t.open(1)
        read = await a.get()
        assert (read.leader_id, read.version, read.members[0].renew_time_ns) == ("go-1", 7, 789)
        assert await a.txn_with_leader_lock("go-1", _returns_one) == 1
        # The Go table's collation is case-insensitive on MySQL: the check still is not.
        with pytest.raises(NotLeaderError):
            await a.txn_with_leader_lock("GO-1 ", _never_called)
        await a.update(Record("py-1", read.members, read.version), True)
        rows = await t.raw(f"SELECT id, leader_id, version FROM {t.name} ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "py-1", 8), (2, "py-1", 8)]
        assert '"renew_time":"2024-05-01T12:00:03.123456789+08:00"' in str(
            (await t.raw(f"SELECT record FROM {t.name} WHERE id = 1"))[0][0]
        )


@pytest.mark.parametrize(
    "record",
    ["{not json", '{"leader_id": 5, "members": "x"}', None],
    ids=["bad-json", "bad-shape", "null"],
)
async def test_a_corrupt_record_row_is_a_clear_error_and_nothing_is_touched(
    url: str, record: str | None
) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        await a.update(sample_record("A"), True)
        await t.raw(f"UPDATE {t.name} SET record = :r WHERE id = 1", r=record)
        before = [tuple(r) for r in await t.raw(f"SELECT * FROM {t.name} ORDER BY id")]
        with pytest.raises(CorruptRecordError, match=f"table '{t.name}'.*left as it is"):
            await a.get()
        assert [tuple(r) for r in await t.raw(f"SELECT * FROM {t.name} ORDER BY id")] == before
        assert await t.read_marks() == set()


async def test_a_missing_leader_row_makes_a_leader_change_a_clear_error(url: str) -> None:
    async with tables(url) as t:
        (a,) = await t.open(1)
        await a.update(sample_record("A"), True)
        await t.raw(f"DELETE FROM {t.name} WHERE id = 2")
        read = await a.get()
        with pytest.raises(CorruptRecordError, match="leader row"):
            await a.update(Record("B", read.members, read.version), True)
        assert (await a.get()).version == read.version  # rolled back
        await a.update(Record("A", read.members, read.version), False)  # renewals go on


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("not a url", "invalid database URL 'not a url'"),
        ("oracle://scott@db/x", "unsupported database 'oracle'"),
        ("postgresql+psycopg2://u@h/db", "unsupported driver 'psycopg2'.*postgresql\\+asyncpg"),
        ("sqlite+aiosqlite:///:memory:", "in-memory SQLite"),
        (42, "must be a string"),
    ],
)
async def test_a_bad_url_is_a_one_line_config_error(bad: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        await ORMStorage.from_url(bad)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["", "x; DROP TABLE y", "1abc", "a" * 65, None])
async def test_a_bad_table_name_is_refused_before_connecting(name: Any) -> None:
    with pytest.raises(ConfigError, match="invalid table name"):
        # An unreachable port: the name is refused before any connection attempt.
        await ORMStorage.from_url("postgresql+asyncpg://u@127.0.0.1:1/db", name)


@pytest.mark.parametrize(
    "unreachable",
    ["postgresql+asyncpg://postgres@127.0.0.1:1/test", "mysql+aiomysql://root@127.0.0.1:1/test"],
)
async def test_an_unreachable_server_fails_fast_naming_the_host(unreachable: str) -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=r"cannot reach .*127\.0\.0\.1:1") as caught:
        await ORMStorage.from_url(unreachable)
    assert time.monotonic() - started < 15
    assert caught.value.__cause__ is not None


@pytest.mark.slow
async def test_a_server_that_never_answers_fails_within_15_s_naming_the_host() -> None:
    # A listening socket that never speaks: the driver waits for the greeting.
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for url in (
            f"postgresql+asyncpg://u@127.0.0.1:{port}/db",
            f"mysql://u@127.0.0.1:{port}/db",
        ):
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError, match=f"127.0.0.1:{port}"):
                await ORMStorage.from_url(url)
            assert time.monotonic() - started < 15
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.server
async def test_a_lock_wait_timeout_is_a_contention_error_chaining_the_driver_error(
    server_url: str,
) -> None:
    backend = sa.make_url(server_url).get_backend_name()
    if backend == "postgresql":
        options: dict[str, Any] = {"connect_args": {"server_settings": {"lock_timeout": "300"}}}
    else:
        options = {"connect_args": {"init_command": "SET innodb_lock_wait_timeout = 1"}}
    async with tables(server_url) as t:
        (a,) = await t.open(1, **options)
        await a.update(sample_record("A"), True)
        read = await a.get()
        blocker = create_async_engine(server_url)
        try:
            async with blocker.connect() as conn:
                await conn.execute(sa.text(f"SELECT * FROM {t.name} WHERE id = 1 FOR UPDATE"))
                with pytest.raises(StorageContentionError, match="failed") as caught:
                    await a.update(Record("A", read.members, read.version), False)
                await conn.rollback()
        finally:
            await blocker.dispose()
        assert caught.value.__cause__ is not None
        await a.update(Record("A", read.members, read.version), False)  # and then it works


@pytest.mark.server
async def test_real_deadlocks_map_to_contention_errors(server_url: str) -> None:
    """A real deadlock from the server, classified as the storage classifies its own."""
    from leadersim.storage.orm import _Dialect

    async with tables(server_url) as t:
        await t.raw(f"CREATE TABLE {t.name} (id int PRIMARY KEY, v int)")
        await t.raw(f"INSERT INTO {t.name} VALUES (1, 0), (2, 0)")
        engine = create_async_engine(server_url)
        try:
            c1, c2 = await engine.connect(), await engine.connect()
            await c1.execute(sa.text(f"UPDATE {t.name} SET v = 1 WHERE id = 1"))
            await c2.execute(sa.text(f"UPDATE {t.name} SET v = 1 WHERE id = 2"))
            results = await asyncio.gather(
                c1.execute(sa.text(f"UPDATE {t.name} SET v = 2 WHERE id = 2")),
                c2.execute(sa.text(f"UPDATE {t.name} SET v = 2 WHERE id = 1")),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1, results
            assert _Dialect.of(engine).classify(errors[0]) is StorageContentionError
            for conn in (c1, c2):
                await conn.rollback()
                await conn.close()
        finally:
            await engine.dispose()


def test_import_leadersim_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, leadersim, leadersim.storage; "
        "assert 'sqlalchemy' not in sys.modules, 'imported sqlalchemy'; "
        "leadersim.ORMStorage; assert 'sqlalchemy' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
