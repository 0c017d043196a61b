"""``SQLStorage``: the election record in one SQLite row, through aiosqlite.

The embedded default back-end. The schema is the reference's one-row table::

    CREATE TABLE IF NOT EXISTS <t> (id int NOT NULL, version bigint NOT NULL,
                                    record text NOT NULL, PRIMARY KEY (id))

Each storage operation is a single statement on an autocommit connection, so each costs
one hop to aiosqlite's worker thread. The statements live in :class:`SQLiteStatements` so
that the simulator's storage server runs exactly the same SQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from leadersim.errors import (
    ConfigError,
    NotLeaderError,
    RecordConflictError,
    StorageError,
    StorageUnavailableError,
)
from leadersim.record import Record, decode_stored_record, record_to_json
from leadersim.storage.base import TABLE_NAME_ELECTION, check_table_name

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLStorage", "SQLiteStatements"]

T = TypeVar("T")

#: Seconds a statement waits for a locked SQLite file before failing.
DEFAULT_BUSY_TIMEOUT = 5.0
_RECORD_ID = 1


@dataclasses.dataclass(frozen=True, slots=True)
class SQLiteStatements:
    """The SQL of the one-row layout for one (validated) table name."""

    table: str
    create: str
    select: str
    insert: str
    update: str

    @classmethod
    def for_table(cls, table_name: str) -> SQLiteStatements:
        """Build the statements; raises ``ConfigError`` for a non-identifier name."""
        t = check_table_name(table_name)
        return cls(
            table=t,
            create=(
                f'CREATE TABLE IF NOT EXISTS "{t}" (id int NOT NULL, version bigint NOT NULL, '
                "record text NOT NULL, PRIMARY KEY (id))"
            ),
            select=f'SELECT version, record FROM "{t}" WHERE id = {_RECORD_ID}',
            insert=f'INSERT INTO "{t}" (id, version, record) VALUES ({_RECORD_ID}, 1, ?)',
            update=(
                f'UPDATE "{t}" SET version = ?, record = ? WHERE id = {_RECORD_ID} AND version = ?'
            ),
        )

    def decode(self, rows: Any) -> Record:
        """Turn the rows of :attr:`select` into a record (empty, version 0, if none).

        Raises:
            CorruptRecordError: the row cannot be decoded; the message names the table.
        """
        rows = list(rows)
        if not rows:
            return Record()
        version, text = rows[0]
        return decode_stored_record(version, text, table=self.table, row=f"id = {_RECORD_ID}")

    def write_args(self, record: Record) -> tuple[str, tuple[object, ...]]:
        """The statement and parameters that CAS-write ``record`` (insert at version 0)."""
        payload = record_to_json(record)
        if record.version == 0:
            return self.insert, (payload,)
        return self.update, (record.version + 1, payload, record.version)


def _storage_error(table: str, what: str, exc: BaseException) -> StorageError:
    """Map a driver exception to a leadersim error naming the table."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StorageUnavailableError(
            f"table {table!r}: {what} failed because the SQLite database stayed locked "
            f"past the busy timeout ({text})"
        )
    return StorageError(f"table {table!r}: {what} failed: {type(exc).__name__}: {text}")


class SQLStorage:
    """The election record in a SQLite table, through an aiosqlite connection.

    Build one with :meth:`create`, :meth:`in_memory` or :meth:`open`; close it with
    :meth:`close` or ``async with``. One storage may be shared by an elector and a
    leader workload using :meth:`txn_with_leader_lock`: its operations are serialised.
    """

    def __init__(
        self,
        connection: aiosqlite.Connection,
        statements: SQLiteStatements,
        *,
        owns_connection: bool,
        label: str,
    ) -> None:
        self._conn = connection
        self._sql = statements
        self._owns = owns_connection
        self._label = label
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ constructors

    @classmethod
    async def create(
        cls, connection: aiosqlite.Connection, table_name: str = TABLE_NAME_ELECTION
    ) -> SQLStorage:
        """Use an open aiosqlite connection (not closed by :meth:`close`).

        Creates the table if it does not exist.

        Raises:
            ConfigError: ``table_name`` is not a plain identifier.
            StorageError: the table could not be created.
        """
        statements = SQLiteStatements.for_table(table_name)
        storage = cls(connection, statements, owns_connection=False, label="connection")
        await storage._create_table()
        return storage

    @classmethod
    async def in_memory(cls, db_name: str, table_name: str = TABLE_NAME_ELECTION) -> SQLStorage:
        """An in-memory database shared by name within this process.

        Every storage opened with the same ``db_name`` sees the same database (each
        through its own connection); it lives while any of them is open.
        """
        statements = SQLiteStatements.for_table(table_name)
        if not isinstance(db_name, str) or not db_name:
            raise ConfigError(f"db_name must be a non-empty string, got {db_name!r}")
        uri = f"file:/leadersim-{quote(db_name, safe='')}?vfs=memdb"
        return await cls._connect(uri, statements, uri=True, label=f"memory:{db_name}")

    @classmethod
    async def open(
        cls,
        path: str | Path,
        table_name: str = TABLE_NAME_ELECTION,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> SQLStorage:
        """Open (or create) a SQLite file in WAL mode with a busy timeout.

        Args:
            path: The database file; its directory must exist.
            table_name: The table of the record.
            busy_timeout: Seconds a statement waits for a lock held by another connection.

        Raises:
            ConfigError: bad table name or busy timeout.
            StorageUnavailableError: the file cannot be opened or stays locked.
        """
        statements = SQLiteStatements.for_table(table_name)
        if not busy_timeout >= 0:
            raise ConfigError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        storage = await cls._connect(
            str(path), statements, uri=False, label=str(path), busy_timeout=busy_timeout
        )
        try:
            await storage._enable_wal(busy_timeout)
        except sqlite3.Error as exc:
            await storage.close()
            raise _storage_error(statements.table, f"enabling WAL on {path}", exc) from exc
        return storage

    async def _enable_wal(self, busy_timeout: float) -> None:
        """Switch the file to WAL mode, waiting up to ``busy_timeout`` for other openers.

        Changing the journal mode needs the file to itself, and SQLite answers "database
        is locked" at once, without its busy handler, while another connection holds a
        lock: members that open a fresh file together would fail at start. So retry with
        a short backoff until the busy timeout. (Once the file is in WAL mode, which is
        persistent, the pragma is a no-op that takes no such lock.)
        """
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + busy_timeout
        pause = 0.001
        while True:
            try:
                await self._conn.execute_fetchall("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if not ("locked" in text or "busy" in text) or loop.time() >= give_up_at:
                    raise
            await asyncio.sleep(min(pause, max(0.0, give_up_at - loop.time())))
            pause = min(2 * pause, 0.05)

    @classmethod
    async def _connect(
        cls,
        target: str,
        statements: SQLiteStatements,
        *,
        uri: bool,
        label: str,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> SQLStorage:
        pending = aiosqlite.connect(target, uri=uri, isolation_level=None, timeout=busy_timeout)
        try:
            connection = await pending
        except sqlite3.Error as exc:
            # After a failed connect aiosqlite stops its worker thread in the background,
            # and that thread reports back to this loop: let it finish while the loop still
            # runs, or it dies with "Event loop is closed" when the caller exits right away.
            worker = getattr(pending, "_thread", None)
            for _ in range(1000):
                if worker is None or not worker.is_alive():
                    break
                await asyncio.sleep(0.001)
            raise StorageUnavailableError(f"cannot open SQLite database {label!r}: {exc}") from exc
        storage = cls(connection, statements, owns_connection=True, label=label)
        try:
            await storage._create_table()
        except BaseException:
            await connection.close()
            raise
        return storage

    async def _create_table(self) -> None:
        try:
            await self._conn.execute_fetchall(self._sql.create)
            await self._commit_if_needed()
        except sqlite3.Error as exc:
            raise _storage_error(self._sql.table, "creating the table", exc) from exc
        except ValueError as exc:  # aiosqlite: no active connection
            raise StorageError(f"table {self._sql.table!r}: {exc}") from exc

    # ------------------------------------------------------------------ Storage

    @property
    def table_name(self) -> str:
        """The table holding the record."""
        return self._sql.table

    @property
    def connection(self) -> aiosqlite.Connection:
        """The aiosqlite connection (for leader workloads sharing the database)."""
        return self._conn

    async def get(self) -> Record:
        """Read the record (empty with version 0 if there is none); one thread hop."""
        async with self._lock:
            try:
                rows = await self._conn.execute_fetchall(self._sql.select)
            except (sqlite3.Error, ValueError) as exc:
                raise _storage_error(self._sql.table, "reading the record", exc) from exc
        return self._sql.decode(rows)

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """CAS-write ``record`` at ``record.version``; one thread hop.

        ``is_leader_changed`` is not needed by this layout and is ignored.

        Raises:
            RecordConflictError: the stored version is not ``record.version`` (also when
                two creators race at version 0).
            StorageError: the statement failed.
        """
        statement, args = self._sql.write_args(record)
        async with self._lock:
            try:
                cursor = await self._conn.execute(statement, args)
                await self._commit_if_needed()
            except sqlite3.IntegrityError as exc:
                raise RecordConflictError(
                    f"table {self._sql.table!r}: record already created by another member"
                ) from exc
            except (sqlite3.Error, ValueError) as exc:
                raise _storage_error(self._sql.table, "writing the record", exc) from exc
        if cursor.rowcount != 1:
            raise RecordConflictError(
                f"table {self._sql.table!r}: record version is no longer {record.version}"
            )

    async def txn_with_leader_lock(
        self, leader_id: str, fn: Callable[[aiosqlite.Connection], Awaitable[T]]
    ) -> T:
        """Run ``fn(connection)`` in an immediate transaction fenced by the stored leader.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock first, so no leader change can
        commit between the check and ``fn``'s writes. ``fn`` must not commit itself.

        Raises:
            NotLeaderError: the stored record does not name ``leader_id`` leader.
            Exception: whatever ``fn`` raised, unchanged, after rolling back.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, ValueError) as exc:
                raise _storage_error(self._sql.table, "beginning a leader txn", exc) from exc
            try:
                try:
                    rows = await self._conn.execute_fetchall(self._sql.select)
                except sqlite3.Error as exc:
                    raise _storage_error(self._sql.table, "checking the leader", exc) from exc
                if self._sql.decode(rows).leader_id != leader_id or not leader_id:
                    raise NotLeaderError(leader_id)
                result = await fn(self._conn)
            except BaseException:
                await self._rollback_quietly()
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback_quietly()
                raise _storage_error(self._sql.table, "committing a leader txn", exc) from exc
            return result

    async def _rollback_quietly(self) -> None:
        try:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
        except (sqlite3.Error, ValueError):
            pass  # the original error is what the caller needs to see

    async def _commit_if_needed(self) -> None:
        # Connections we open are in autocommit mode; a user's connection in Python's
        # legacy transaction mode has an implicit transaction open after a write.
        if self._conn.in_transaction:
            await self._conn.commit()

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Close the connection if this storage opened it."""
        if self._owns:
            await self._conn.close()

    async def __aenter__(self) -> SQLStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<SQLStorage {self._label} table={self._sql.table!r}>"
