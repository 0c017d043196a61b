"""SQLStorage: the storage contract three ways, plus what only SQLite does.

The contract suite (:mod:`leadersim.testing`) runs against a shared in-memory database,
a WAL file opened through separate connections, and a user's own aiosqlite connections
in Python's default (legacy) transaction mode. The tests below it check the SQLite
specifics: the reference schema, WAL, the busy timeout, table-name validation, corrupt
rows, unreachable paths, in-memory naming and fencing with ``txn_with_leader_lock``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from leadersim import (
    Config,
    ConfigError,
    CorruptRecordError,
    Elector,
    EventKind,
    NotLeaderError,
    Record,
    RecordConflictError,
    SQLStorage,
    Storage,
    StorageUnavailableError,
    TraceRecorder,
)
from leadersim.testing import StorageContract, sample_record

ALLOWED = "[A-Za-z_][A-Za-z0-9_]*"
MARKS_TABLE = "contract_marks"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------------- contract suite


class SQLiteMarks:
    """The contract's commit/rollback probe: a marks table written through fn's connection."""

    async def write_mark(self, connection: Any, mark: str) -> None:
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} (mark text NOT NULL)")
        await connection.execute(f"INSERT INTO {MARKS_TABLE} (mark) VALUES (?)", (mark,))

    async def read_marks(self, storage: Storage) -> set[str]:
        assert isinstance(storage, SQLStorage)
        try:
            rows = await storage.connection.execute_fetchall(f"SELECT mark FROM {MARKS_TABLE}")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return set()  # no mark was ever committed
            raise
        return {row[0] for row in rows}


async def close_all(storages: Sequence[SQLStorage]) -> None:
    for storage in storages:
        await storage.close()


class TestInMemoryContract(SQLiteMarks, StorageContract):
    """Storages of one shared in-memory database, each with its own connection."""

    async def make_storages(self, n: int) -> list[Storage]:
        name = unique_name("contract")
        storages: list[SQLStorage] = []
        try:
            for _ in range(n):
                storages.append(await SQLStorage.in_memory(name))
        except BaseException:
            await close_all(storages)
            raise
        return list(storages)


class TestFileContract(SQLiteMarks, StorageContract):
    """Storages of one WAL file, each opened with :meth:`SQLStorage.open`."""

    @pytest.fixture(autouse=True)
    def _database_path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "election.db"

    async def make_storages(self, n: int) -> list[Storage]:
        storages: list[SQLStorage] = []
        try:
            for _ in range(n):
                storages.append(await SQLStorage.open(self.path))
        except BaseException:
            await close_all(storages)
            raise
        return list(storages)


class TestLegacyConnectionContract(SQLiteMarks, StorageContract):
    """Storages made with :meth:`SQLStorage.create` on the user's own aiosqlite
    connections, left in Python's default legacy transaction mode (rollback journal)."""

    @pytest.fixture(autouse=True)
    def _database_path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "legacy.db"
        self.connections: list[aiosqlite.Connection] = []

    async def make_storages(self, n: int) -> list[Storage]:
        storages: list[Storage] = []
        try:
            for _ in range(n):
                connection = await aiosqlite.connect(self.path)
                self.connections.append(connection)
                assert connection.isolation_level == ""  # legacy implicit transactions
                storages.append(await SQLStorage.create(connection))
        except BaseException:
            await self.close_connections()
            raise
        return storages

    async def close_storages(self, storages: Sequence[Storage]) -> None:
        await super().close_storages(storages)
        # create() never closes the user's connection: still open, still usable.
        for connection in self.connections:
            assert await connection.execute_fetchall("SELECT 1") == [(1,)]
        await self.close_connections()

    async def close_connections(self) -> None:
        for connection in self.connections:
            await connection.close()
        self.connections.clear()


# ---------------------------------------------------------------------- helpers


def dump(path: Path) -> list[str]:
    """Every table's schema and rows, as SQL text, read with the stdlib driver."""
    with closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


def raw_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    """The table's rows with the record column as its exact stored bytes and type."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(
            f'SELECT id, version, typeof(record), CAST(record AS BLOB) FROM "{table}"'
        ).fetchall()


#: The reference table as ``PRAGMA table_info`` describes it:
#: (cid, name, declared type, notnull, default, primary-key position).
REFERENCE_COLUMNS = [
    (0, "id", "int", 1, None, 1),
    (1, "version", "bigint", 1, None, 0),
    (2, "record", "text", 1, None, 0),
]


def declared_columns(rows: Any) -> list[tuple[Any, ...]]:
    """``PRAGMA table_info`` rows, declared types lower-cased (SQLite upper-cases some)."""
    return [(cid, name, kind.lower(), *rest) for cid, name, kind, *rest in rows]


def make_victim_file(path: Path) -> None:
    """A database holding someone else's table, which nothing may touch."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE victim (id int PRIMARY KEY, payload text)")
        connection.execute("INSERT INTO victim VALUES (1, 'keep me'), (2, 'me too')")
        connection.commit()


def assert_names_what_is_allowed(error: ConfigError, bad_name: str) -> None:
    message = str(error)
    assert ALLOWED in message
    assert "64" in message
    assert repr(bad_name) in message


async def write_through(storage: SQLStorage, leader_id: str) -> Record:
    """Create or CAS-replace the record with ``leader_id`` leading; return it as stored."""
    read = await storage.get()
    record = sample_record(leader_id, version=read.version)
    await storage.update(record, True)
    return await storage.get()


# ---------------------------------------------------------------------- schema and WAL


@pytest.mark.parametrize("table_name", ["election", "Jobs_Election_2"])
async def test_open_creates_the_reference_one_row_table(tmp_path: Path, table_name: str) -> None:
    path = tmp_path / "schema.db"
    async with await SQLStorage.open(path, table_name) as storage:
        await storage.update(sample_record("node-a"), True)

    with closing(sqlite3.connect(path)) as connection:
        columns = declared_columns(connection.execute(f'PRAGMA table_info("{table_name}")'))
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        rows = connection.execute(f'SELECT id, version, record FROM "{table_name}"').fetchall()
    assert columns == REFERENCE_COLUMNS
    assert tables == [(table_name,)]
    [(row_id, version, text)] = rows
    assert (row_id, version) == (1, 1)
    # The reference's JSON: ns lease durations, RFC 3339 renew times with ns and offset.
    data = json.loads(text)
    assert set(data) == {"leader_id", "members"}
    assert data["leader_id"] == "node-a"
    assert [m["id"] for m in data["members"]] == ["node-c", "node-a", "node-b"]
    assert data["members"][0]["lease_duration"] == 10_000_000_000
    assert data["members"][0]["renew_time"] == "2024-05-01T12:00:03.123456789+08:00"
    assert data["members"][2]["lease_duration"] == 2_000_000_001
    assert data["members"][2]["renew_time"] == "2024-04-30T22:30:03.999999999-05:30"


async def test_create_on_a_users_connection_creates_the_same_table(tmp_path: Path) -> None:
    path = tmp_path / "user.db"
    async with aiosqlite.connect(path) as connection:
        await SQLStorage.create(connection, "election")
        columns = declared_columns(
            await connection.execute_fetchall('PRAGMA table_info("election")')
        )
    assert columns == REFERENCE_COLUMNS


async def test_open_reads_and_continues_a_row_written_by_another_implementation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "go.db"
    go_json = (
        '{"leader_id":"go-1","members":[{"id":"go-1","name":"tiflow","address":"10.1.1.1:1",'
        '"lease_duration":10000000000,"renew_time":"2024-05-01T12:00:03.123456789+08:00"}]}'
    )
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "CREATE TABLE election (id int NOT NULL, version bigint NOT NULL, "
            "record text NOT NULL, PRIMARY KEY (id))"
        )
        connection.execute("INSERT INTO election VALUES (1, 41, ?)", (go_json,))
        connection.commit()

    async with await SQLStorage.open(path) as storage:
        read = await storage.get()
        assert read.version == 41
        assert read.leader_id == "go-1"
        await storage.update(read, False)
        again = await storage.get()

    assert again.version == 42
    [(_, version, _, stored)] = raw_rows(path, "election")
    assert version == 42
    assert stored.decode() == go_json  # the Go member's renew time is re-encoded exactly


async def test_open_puts_the_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with await SQLStorage.open(path):
        pass
    with closing(sqlite3.connect(path)) as connection:
        [(mode,)] = connection.execute("PRAGMA journal_mode").fetchall()
    assert mode == "wal"


# ---------------------------------------------------------------------- busy timeout


async def test_members_opening_a_fresh_file_together_all_get_in(tmp_path: Path) -> None:
    # Switching a fresh file to WAL needs it to itself, and SQLite refuses at once (no
    # busy handler) while another opener holds a lock: before open() retried, a lab
    # member started beside others now and then died at start with "database is locked".
    for attempt in range(10):
        path = tmp_path / f"fresh-{attempt}.db"
        storages = await asyncio.gather(*(SQLStorage.open(path) for _ in range(6)))
        try:
            assert all(s.table_name == "election" for s in storages)
        finally:
            await asyncio.gather(*(s.close() for s in storages))
        with closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_update_on_a_locked_file_waits_then_raises_unavailable_and_recovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.db"
    loop = asyncio.get_running_loop()
    async with await SQLStorage.open(path, busy_timeout=0.2) as storage:
        stored = await write_through(storage, "node-c")
        takeover = sample_record("node-a", version=stored.version)
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = loop.time()
            with pytest.raises(StorageUnavailableError, match="locked"):
                await storage.update(takeover, True)
            assert loop.time() - started >= 0.1  # it waited for the lock, not failed at once
            # WAL: readers are not blocked by a writer; the failed write changed nothing.
            during = await storage.get()
            assert (during.version, during.leader_id) == (stored.version, "node-c")
            locker.execute("ROLLBACK")

        await storage.update(takeover, True)
        after = await storage.get()
    assert (after.leader_id, after.version != stored.version) == ("node-a", True)


async def test_get_on_an_exclusively_locked_file_raises_unavailable_and_recovers(
    tmp_path: Path,
) -> None:
    # A user's own connection on a rollback-journal file: an exclusive lock blocks readers.
    path = tmp_path / "exclusive.db"
    async with aiosqlite.connect(path, timeout=0.2) as connection:
        storage = await SQLStorage.create(connection)
        stored = await write_through(storage, "node-c")
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StorageUnavailableError, match="locked") as info:
                await storage.get()
            assert "'election'" in str(info.value)
            with pytest.raises(StorageUnavailableError, match="locked"):
                await storage.update(sample_record("node-a", version=stored.version), True)
            locker.execute("COMMIT")

        after = await storage.get()
    assert (after.version, after.leader_id) == (stored.version, "node-c")


# ---------------------------------------------------------------------- table names

BAD_TABLE_NAMES = [
    "election; DROP TABLE victim",
    '"victim"',
    'x"; DROP TABLE victim; --',
    "",
    "a-b",
    "a" * 65,
    "1election",
    "élection",
    "elec tion",
    "election\n",
]


@pytest.mark.parametrize("bad_name", BAD_TABLE_NAMES)
async def test_open_refuses_a_table_name_that_is_not_an_identifier(
    tmp_path: Path, bad_name: str
) -> None:
    path = tmp_path / "victim.db"
    make_victim_file(path)
    before = dump(path)
    with pytest.raises(ConfigError) as info:
        await SQLStorage.open(path, bad_name)
    assert_names_what_is_allowed(info.value, bad_name)
    assert dump(path) == before

    fresh = tmp_path / "never-created.db"
    with pytest.raises(ConfigError):
        await SQLStorage.open(fresh, bad_name)
    assert not fresh.exists()


@pytest.mark.parametrize("bad_name", BAD_TABLE_NAMES)
async def test_create_refuses_a_bad_table_name_and_leaves_the_connection_alone(
    tmp_path: Path, bad_name: str
) -> None:
    path = tmp_path / "victim.db"
    make_victim_file(path)
    before = dump(path)
    async with aiosqlite.connect(path) as connection:
        with pytest.raises(ConfigError) as info:
            await SQLStorage.create(connection, bad_name)
        assert_names_what_is_allowed(info.value, bad_name)
        assert await connection.execute_fetchall("SELECT count(*) FROM victim") == [(2,)]
    assert dump(path) == before


@pytest.mark.parametrize("bad_name", BAD_TABLE_NAMES)
async def test_in_memory_refuses_a_bad_table_name_and_leaves_the_database_alone(
    bad_name: str,
) -> None:
    db_name = unique_name("victim")
    async with await SQLStorage.in_memory(db_name, "victim") as victim:
        stored = await write_through(victim, "node-c")
        with pytest.raises(ConfigError) as info:
            await SQLStorage.in_memory(db_name, bad_name)
        assert_names_what_is_allowed(info.value, bad_name)
        tables = await victim.connection.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
        after = await victim.get()
    assert [tuple(t) for t in tables] == [("victim",)]
    assert (after.version, after.leader_id) == (stored.version, stored.leader_id)


@pytest.mark.parametrize("good_name", ["_", "a" * 64, "Election_2", "election"])
async def test_plain_identifiers_up_to_64_characters_are_accepted(
    tmp_path: Path, good_name: str
) -> None:
    path = tmp_path / "good.db"
    async with await SQLStorage.open(path, good_name) as storage:
        assert storage.table_name == good_name
        await write_through(storage, "node-a")
    assert [(row[0], row[1]) for row in raw_rows(path, good_name)] == [(1, 1)]


# ---------------------------------------------------------------------- corrupt rows

CORRUPT_RECORDS = [
    '{"leader_id":"node-a","members":[',
    "not json at all",
    "[]",
    '{"leader_id":5,"members":null}',
    '{"leader_id":"a","members":[{"id":"a","lease_duration":1,"renew_time":"yesterday"}]}',
]
CORRUPT_TABLE = "jobs_election"


def make_corrupt_file(path: Path, text: str | bytes, version: object = 7) -> None:
    """The record table with an undecodable row (at ``version``), next to another table."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            f"CREATE TABLE {CORRUPT_TABLE} (id int NOT NULL, version bigint NOT NULL, "
            "record text NOT NULL, PRIMARY KEY (id))"
        )
        connection.execute(f"INSERT INTO {CORRUPT_TABLE} VALUES (1, ?, ?)", (version, text))
        connection.execute("CREATE TABLE jobs (id int PRIMARY KEY, state text)")
        connection.execute("INSERT INTO jobs VALUES (1, 'running'), (2, 'done')")
        connection.commit()


@pytest.mark.parametrize("text", CORRUPT_RECORDS)
async def test_a_corrupt_record_is_reported_naming_the_table_and_left_untouched(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "corrupt.db"
    make_corrupt_file(path, text)
    row_before, everything_before = raw_rows(path, CORRUPT_TABLE), dump(path)

    async with await SQLStorage.open(path, CORRUPT_TABLE) as storage:
        with pytest.raises(CorruptRecordError, match=CORRUPT_TABLE):
            await storage.get()
        # A newcomer creating the record cannot clobber the corrupt row either.
        with pytest.raises(RecordConflictError):
            await storage.update(sample_record("node-a"), True)
        with pytest.raises(CorruptRecordError, match=CORRUPT_TABLE):
            await storage.get()

    assert raw_rows(path, CORRUPT_TABLE) == row_before
    assert row_before[0][3] == text.encode()
    assert dump(path) == everything_before


def row_bytes(path: Path, table: str) -> list[tuple[Any, ...]]:
    """Each column of the table's rows as its storage class and its exact bytes."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(
            f"SELECT typeof(id), CAST(id AS BLOB), typeof(version), CAST(version AS BLOB), "
            f'typeof(record), CAST(record AS BLOB) FROM "{table}"'
        ).fetchall()


GOOD_RECORD = '{"leader_id":"node-a","members":null}'
CORRUPT_ROWS = [
    pytest.param("abc", GOOD_RECORD, "invalid version 'abc'", id="version-text"),
    pytest.param(b"\x00\x07", GOOD_RECORD, "invalid version b'", id="version-blob"),
    pytest.param(-2, GOOD_RECORD, "invalid version -2", id="version-negative"),
    pytest.param(2.5, GOOD_RECORD, "invalid version 2.5", id="version-fraction"),
    pytest.param(0, GOOD_RECORD, "invalid version 0", id="version-zero"),
    pytest.param(7, "[" * 100_000, "nested too deeply", id="deep-json"),
    pytest.param(
        7,
        '{"leader_id":"a","members":[{"id":"a","lease_duration":' + "1" + "0" * 30 + "}]}",
        "beyond the longest lease",
        id="lease-1e30-ns",
    ),
    pytest.param(7, b"\xff\xfe\x00garbage", "invalid election record", id="record-blob"),
]


@pytest.mark.parametrize(("version", "text", "problem"), CORRUPT_ROWS)
async def test_a_corrupt_row_is_a_corrupt_record_error_and_stays_byte_for_byte(
    tmp_path: Path, version: object, text: str | bytes, problem: str
) -> None:
    path = tmp_path / "corrupt.db"
    make_corrupt_file(path, text, version)
    row_before, everything_before = row_bytes(path, CORRUPT_TABLE), dump(path)

    async with await SQLStorage.open(path, CORRUPT_TABLE) as storage:
        for _ in range(2):
            with pytest.raises(CorruptRecordError) as caught:
                await storage.get()
            message = str(caught.value)
            assert message.startswith(f"table {CORRUPT_TABLE!r}: the election record (id = 1)")
            assert problem in message
        # Fenced work refuses to run on it too (nothing committed).
        with pytest.raises(CorruptRecordError, match=CORRUPT_TABLE):
            await storage.txn_with_leader_lock("node-a", lambda conn: conn.execute("SELECT 1"))

    assert row_bytes(path, CORRUPT_TABLE) == row_before
    assert dump(path) == everything_before


@pytest.mark.slow
@pytest.mark.slow
async def test_electors_never_overwrite_a_corrupt_record(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    text = CORRUPT_RECORDS[0]
    make_corrupt_file(path, text)
    row_before, everything_before = raw_rows(path, CORRUPT_TABLE), dump(path)
    trace = TraceRecorder()
    callbacks_run: list[str] = []
    storages = [await SQLStorage.open(path, CORRUPT_TABLE) for _ in range(2)]
    electors = []
    for index, storage in enumerate(storages):
        member_id = f"node-{index}"

        async def lead(member_id: str = member_id) -> None:
            callbacks_run.append(member_id)
            await asyncio.Event().wait()

        config = Config(
            member_id,
            storage=storage,
            leader_callback=lead,
            lease_duration=1.0,
            renew_interval=0.1,
            renew_deadline=0.4,
        )
        electors.append(Elector(config, observer=trace, seed=index))
    tasks = [asyncio.create_task(e.run_election()) for e in electors]
    try:
        async with asyncio.timeout(60):
            while any(
                sum(1 for e in trace.of_kind(EventKind.RENEW_FAILED) if e.node == el.id) < 3
                for el in electors
            ):
                await asyncio.sleep(0.05)
        assert not any(e.is_leader() for e in electors)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)  # release: best effort
        await close_all(storages)

    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert callbacks_run == []
    assert trace.of_kind(EventKind.BECAME_LEADER, EventKind.RENEW_OK) == []
    errors = [str(e.details["error"]) for e in trace.of_kind(EventKind.STORAGE_ERROR)]
    assert errors
    assert all("CorruptRecordError" in e and CORRUPT_TABLE in e for e in errors)
    assert raw_rows(path, CORRUPT_TABLE) == row_before
    assert dump(path) == everything_before


# ---------------------------------------------------------------------- opening


async def test_open_in_a_missing_directory_raises_unavailable_naming_the_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "no-such-dir" / "election.db"
    with pytest.raises(StorageUnavailableError) as info:
        await SQLStorage.open(path)
    assert str(path) in str(info.value)
    assert not path.parent.exists()


async def test_in_memory_databases_are_shared_by_name_and_isolated_across_names() -> None:
    name, other_name = unique_name("shared"), unique_name("other")
    first = await SQLStorage.in_memory(name)
    second = await SQLStorage.in_memory(name)
    other = await SQLStorage.in_memory(other_name)
    try:
        written = await write_through(first, "node-b")
        seen = await second.get()
        assert (seen.version, seen.leader_id) == (written.version, "node-b")
        assert (await other.get()).version == 0

        await write_through(other, "node-c")
        assert (await second.get()).leader_id == "node-b"

        await first.close()  # the database lives while any storage of it is open
        assert (await second.get()).version == written.version
    finally:
        await close_all([first, second, other])


async def test_in_memory_database_is_discarded_when_its_last_storage_closes() -> None:
    name = unique_name("discarded")
    async with await SQLStorage.in_memory(name) as storage:
        await write_through(storage, "node-a")
    async with await SQLStorage.in_memory(name) as reopened:
        assert (await reopened.get()).version == 0


# ---------------------------------------------------------------------- fencing on a file


async def test_leader_txn_on_a_file_holds_off_a_takeover_and_fences_the_old_leader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fencing.db"
    async with (
        await SQLStorage.open(path) as leader,
        await SQLStorage.open(path, busy_timeout=30) as challenger,
    ):
        await write_through(leader, "node-c")
        entered, release = asyncio.Event(), asyncio.Event()

        async def guarded_work(connection: aiosqlite.Connection) -> str:
            await connection.execute("CREATE TABLE jobs (id int PRIMARY KEY, owner text)")
            await connection.execute("INSERT INTO jobs VALUES (1, 'node-c')")
            entered.set()
            await release.wait()
            return "done"

        txn = asyncio.create_task(leader.txn_with_leader_lock("node-c", guarded_work))
        await entered.wait()
        # WAL: the challenger can still read while the leader's transaction is open...
        read = await challenger.get()
        assert read.leader_id == "node-c"
        # ...but its takeover waits in SQLite's busy handler until the transaction ends.
        takeover = asyncio.create_task(
            challenger.update(sample_record("node-a", version=read.version), True)
        )
        await asyncio.sleep(0.3)
        assert not takeover.done()
        release.set()
        assert await txn == "done"
        await takeover

        async def late_work(connection: aiosqlite.Connection) -> None:
            await connection.execute("UPDATE jobs SET owner = 'node-c again'")

        with pytest.raises(NotLeaderError, match=r"^node-c is not leader$"):
            await leader.txn_with_leader_lock("node-c", late_work)
        assert (await challenger.get()).leader_id == "node-a"
        jobs = await challenger.connection.execute_fetchall("SELECT id, owner FROM jobs")
    assert [tuple(j) for j in jobs] == [(1, "node-c")]


async def test_takeover_that_outlasts_its_busy_timeout_fails_cleanly_and_can_retry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fencing.db"
    async with (
        await SQLStorage.open(path) as leader,
        await SQLStorage.open(path, busy_timeout=0.2) as challenger,
    ):
        stored = await write_through(leader, "node-c")
        entered, release = asyncio.Event(), asyncio.Event()

        async def hold(connection: aiosqlite.Connection) -> None:
            entered.set()
            await release.wait()

        txn = asyncio.create_task(leader.txn_with_leader_lock("node-c", hold))
        try:
            await entered.wait()
            takeover = sample_record("node-a", version=stored.version)
            with pytest.raises(StorageUnavailableError, match="locked"):
                await challenger.update(takeover, True)
        finally:
            release.set()
            await txn
        during = await challenger.get()
        assert (during.version, during.leader_id) == (stored.version, "node-c")
        await challenger.update(takeover, True)  # the elector's retry, after the txn
        assert (await leader.get()).leader_id == "node-a"
        with pytest.raises(NotLeaderError):
            await leader.txn_with_leader_lock("node-c", hold)
