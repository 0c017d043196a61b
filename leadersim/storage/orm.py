"""``ORMStorage``: the election record on a database server, through SQLAlchemy (async).

The reference's second storage, for members on several machines: PostgreSQL (asyncpg),
MySQL/MariaDB (aiomysql) and, for tests, SQLite files (aiosqlite). The table has two
rows, in the reference's layout (columns ``id``, ``leader_id``, ``record``, ``version``):

- id 1, the *record row*: the record's leader, the record as JSON, the version;
- id 2, the *leader row*: the leader only (``record`` NULL). It exists to be locked.

A renewal compare-and-swaps the record row on its version and never touches the leader
row. Only a write that changes the leader also sets the leader row, which needs its
exclusive row lock. :meth:`ORMStorage.txn_with_leader_lock` takes a *shared* lock on the
leader row where it names the caller, so a leader change waits for the leader's open
transactions, and once it has committed the old leader's transactions are refused:
fencing done by the database.

How it talks to the server (the per-dialect differences all live in :class:`_Dialect`):

- Every connection runs in autocommit mode, and the storage writes its own ``BEGIN``
  (``START TRANSACTION`` on MySQL/MariaDB, ``BEGIN IMMEDIATE`` on SQLite, which has no
  row locks: its leader transaction takes the database's write lock instead). So a read
  or a renewal costs one statement, and the server is never left with an idle
  transaction open.
- The elector's reads and writes go through one connection the storage keeps (they come
  one at a time); leader transactions take connections from the engine's pool.
- Leader ids are compared in Python, exactly: MySQL/MariaDB's default collations say
  ``'node-a' = 'Node-A '``. An empty id never passes.

Cancellation, dead connections, and what remains. The elector cancels the leader
callback in the middle of its transaction, and its renew deadline cancels a renewal
that waits too long. A task cancelled inside a driver call leaves that connection in an
unknown protocol state: with SQLAlchemy, asyncmy was seen to hang for ever after such a
cancellation, and aiomysql to leave a pooled connection desynchronised so that its next
user waits for ever. So this storage never reuses a connection on which anything went
wrong: after a cancellation, a driver error or a failed rollback the connection is
invalidated (closed, never returned to the pool), and, on the servers, its server
session is then terminated from a fresh connection (``pg_terminate_backend``, MySQL
``KILL``) in the background, because a server that is busy with a query, or waiting for
a lock, notices a closed socket only when that statement ends, and would keep the
transaction's locks until then. Checking a connection out of the pool and giving it back
are never cut short by a cancellation either (SQLAlchemy loses a connection whose
checkout is cancelled half-way, and a small pool then runs dry); and once ``fn`` has
returned, its commit runs to the server's answer before a cancellation is raised. The
driver for MySQL/MariaDB is aiomysql: it marks a connection closed when it is cancelled
mid-read, and with the rules above a randomized
cancellation test (``tests/storage/test_orm.py``) found no hang and no desynchronised
connection. What remains: a connection whose server session cannot be reached (the
network is down) cannot be terminated, so its locks last until the server notices, as
for any client; a connection that dies while idle in the pool is found out by the next
operation, which fails with :class:`~leadersim.StorageUnavailableError` (the elector
retries within its deadline, on a new connection, since SQLAlchemy then recycles the
whole pool) — there is no ``pool_pre_ping``, which would cost a round trip per
operation.

Errors. Driver exceptions become leadersim errors at this boundary, with the driver's
exception as ``__cause__``: an unreachable server or a lost connection is a
:class:`~leadersim.StorageUnavailableError` naming the host; a lock wait timeout, a
deadlock or a serialization failure is a :class:`~leadersim.StorageContentionError`;
anything else a :class:`~leadersim.StorageError`. None of them is a conflict or a
refusal: the outcome is unknown, and the elector retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from leadersim.errors import (
    ConfigError,
    CorruptRecordError,
    LeadersimError,
    NotLeaderError,
    RecordConflictError,
    StorageContentionError,
    StorageError,
    StorageUnavailableError,
)
from leadersim.record import Record, record_from_json, record_to_json
from leadersim.storage.base import TABLE_NAME_ELECTION, check_table_name

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "ORMStorage", "election_table"]

T = TypeVar("T")

#: Seconds to wait for a server to accept a connection before giving up.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Seconds a background termination of a discarded server session may take.
_KILL_TIMEOUT: Final = 5.0
#: Seconds to wait for a discarded connection to close.
_DISCARD_TIMEOUT: Final = 2.0

RECORD_ROW_ID: Final = 1
LEADER_ROW_ID: Final = 2

_SESSION_KEY = "leadersim_session"
_log = logging.getLogger("leadersim.storage.orm")

#: The async driver used when a URL names only the database (``postgresql://...``).
_DEFAULT_DRIVERS: Final = {
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
    "sqlite": "aiosqlite",
}
_ALLOWED_URLS = (
    "postgresql+asyncpg://user@host:port/db, mysql+aiomysql://user@host:port/db, "
    "mariadb+aiomysql://user@host:port/db or sqlite+aiosqlite:///path/to/file.db"
)


def election_table(table_name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The SQLAlchemy table of the two-row layout (reference ``DO``).

    On MySQL/MariaDB ``leader_id`` gets a binary collation, so that the database, too,
    compares leader ids exactly (tables created by the Go reference keep their own
    collation; the storage compares in Python as well).

    Args:
        table_name: A plain identifier (``[A-Za-z_][A-Za-z0-9_]*``, at most 64 characters).
        metadata: The metadata to attach it to (a new one by default).

    Raises:
        ConfigError: ``table_name`` is not a plain identifier.
    """
    name = check_table_name(table_name)
    return sa.Table(
        name,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "leader_id",
            sa.Text().with_variant(mysql.TEXT(collation="utf8mb4_bin"), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("record", sa.Text, nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


# ---------------------------------------------------------------------- dialects


@dataclasses.dataclass(frozen=True, slots=True)
class _Dialect:
    """Everything that differs between the databases, in one place."""

    name: str
    #: Starts a transaction on an autocommit connection.
    begin: str
    #: Returns a token identifying this connection's server session (None: no server).
    session_sql: str | None
    #: Terminates the session named by the token (formatted in with ``{0}``/``{1}``).
    kill_sql: str | None

    @staticmethod
    def of(engine: AsyncEngine) -> _Dialect:
        name = engine.dialect.name
        if name == "postgresql":
            # backend_start guards against a reused pid: only the very session is ended.
            return _Dialect(
                name,
                "BEGIN",
                "SELECT pid, backend_start::text FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid()",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = {0} AND backend_start::text = '{1}'",
            )
        if name in ("mysql", "mariadb"):
            # Connection ids are not reused while the server runs.
            return _Dialect(name, "START TRANSACTION", "SELECT CONNECTION_ID(), ''", "KILL {0}")
        if name == "sqlite":
            # No row locks: a leader transaction takes the write lock of the whole file,
            # so a leader change meanwhile waits (busy timeout) or fails; it never passes.
            return _Dialect(name, "BEGIN IMMEDIATE", None, None)
        raise ConfigError(f"ORMStorage supports PostgreSQL, MySQL/MariaDB and SQLite, not {name!r}")

    def classify(self, exc: BaseException) -> type[StorageError] | None:
        """The leadersim error class for a driver exception (None: a plain StorageError)."""
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return StorageUnavailableError
        if isinstance(exc, (OSError, TimeoutError)):
            return StorageUnavailableError
        orig = getattr(exc, "orig", None)
        if self.name == "postgresql":
            state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            if state is None and orig is not None:
                state = getattr(orig.__cause__, "sqlstate", None)
            state = str(state or "")
            if state in ("40001", "40P01", "55P03"):
                return StorageContentionError
            if state.startswith(("08", "57P")):
                return StorageUnavailableError
        elif self.name in ("mysql", "mariadb"):
            args = getattr(orig, "args", ())
            code = args[0] if args and isinstance(args[0], int) else None
            if code in (1205, 1213):
                return StorageContentionError
            if code in (2003, 2006, 2013, 2014, 2055, 1927, 1053, 4031) or (
                code == 0 and "not connected" in str(orig).lower()
            ):
                return StorageUnavailableError
        elif self.name == "sqlite":
            text = str(orig if orig is not None else exc).lower()
            if "locked" in text or "busy" in text:
                return StorageUnavailableError
        return None

    def is_duplicate_key(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a unique-key violation (a racing creator of the rows)."""
        return isinstance(exc, sa_exc.IntegrityError)


def _describe_target(url: URL) -> str:
    """Where the database is, for messages (never the password)."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database!r}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{url.get_backend_name()} server {host}{port} (database {url.database!r})"


def _parse_url(url: object) -> URL:
    """Check and complete a database URL; raise one-line ``ConfigError`` if unusable."""
    if not isinstance(url, (str, sa.URL)):
        raise ConfigError(f"database URL must be a string, got {type(url).__name__}")
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(
            f"invalid database URL {str(url)!r}: expected one like {_ALLOWED_URLS}"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    default = _DEFAULT_DRIVERS.get(backend)
    if default is None:
        raise ConfigError(
            f"unsupported database {backend!r} in URL "
            f"{parsed.render_as_string(hide_password=True)!r}: expected one like {_ALLOWED_URLS}"
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{default}")
    elif driver != default:
        raise ConfigError(
            f"unsupported driver {driver!r} for {backend} in URL "
            f"{parsed.render_as_string(hide_password=True)!r}: use {backend}+{default}"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            "an in-memory SQLite database is private to one connection, so members cannot "
            "share it: use a file URL such as sqlite+aiosqlite:///path/to/file.db "
            "(or SQLStorage.in_memory)"
        )
    return parsed


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"timeout": timeout}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": timeout}
    return {"timeout": 5.0}  # SQLite busy timeout, as SQLStorage


# ---------------------------------------------------------------------- the storage


class ORMStorage:
    """The election record in a two-row table on a server, via SQLAlchemy's async engine.

    Build one with :meth:`from_url` (it owns its engine) or :meth:`create` (on your
    engine); release it with :meth:`close` or ``async with``. One storage serves one
    elector and that elector's leader workload; members on other machines use their
    own storages on the same table.
    """

    def __init__(
        self, engine: AsyncEngine, table: sa.Table, *, owns_engine: bool, where: str
    ) -> None:
        self._dialect = _Dialect.of(engine)
        # Autocommit: the storage writes its own BEGIN (see the module docstring).
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._user_engine = engine
        self._table = table
        self._owns = owns_engine
        self._where = where
        self._closed = False
        self._conn: AsyncConnection | None = None
        self._op_lock = asyncio.Lock()
        self._kills: set[asyncio.Task[None]] = set()
        t = table
        self._select = sa.select(t.c.leader_id, t.c.record, t.c.version).where(
            t.c.id == RECORD_ROW_ID
        )
        self._lock_leader = (
            sa.select(t.c.leader_id).where(t.c.id == LEADER_ROW_ID).with_for_update(read=True)
        )
        self._insert = sa.insert(t)
        self._cas = (
            sa.update(t)
            .where(t.c.id == RECORD_ROW_ID, t.c.version == sa.bindparam("old_version"))
            .values(
                leader_id=sa.bindparam("new_leader"),
                record=sa.bindparam("new_record"),
                version=sa.bindparam("new_version"),
            )
        )
        self._set_leader = (
            sa.update(t)
            .where(t.c.id == LEADER_ROW_ID)
            .values(leader_id=sa.bindparam("new_leader"), version=sa.bindparam("new_version"))
        )

    # ------------------------------------------------------------------ constructors

    @classmethod
    async def create(
        cls,
        engine: AsyncEngine,
        table_name: str = TABLE_NAME_ELECTION,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> ORMStorage:
        """Use your async engine (not disposed by :meth:`close`); create the table if missing.

        May be called any number of times for one table, also concurrently.

        Args:
            engine: A SQLAlchemy ``AsyncEngine`` on PostgreSQL (asyncpg), MySQL/MariaDB
                (aiomysql) or a SQLite file (aiosqlite).
            table_name: The table of the two rows.
            connect_timeout: Seconds the whole setup may take (it fails in bounded time
                when the server is unreachable).

        Raises:
            ConfigError: bad table name, unsupported database, or not an ``AsyncEngine``.
            StorageUnavailableError: the server cannot be reached (the message names it).
            StorageError: the table could not be created.
        """
        if not isinstance(engine, AsyncEngine):
            raise ConfigError(
                f"engine must be a sqlalchemy.ext.asyncio.AsyncEngine, got {type(engine).__name__}"
            )
        table = election_table(table_name)
        _check_timeout(connect_timeout)
        storage = cls(engine, table, owns_engine=False, where=_describe_target(engine.url))
        await storage._setup(connect_timeout)
        return storage

    @classmethod
    async def from_url(
        cls,
        url: str,
        table_name: str = TABLE_NAME_ELECTION,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **engine_options: Any,
    ) -> ORMStorage:
        """Open an engine on ``url`` (disposed by :meth:`close`); create the table if missing.

        A URL without a driver gets the default one: ``postgresql://`` means
        ``postgresql+asyncpg://``, ``mysql://`` and ``mariadb://`` mean ``+aiomysql``,
        ``sqlite:///file.db`` means ``sqlite+aiosqlite:///file.db``.

        Args:
            url: e.g. ``postgresql+asyncpg://user@db.example:5432/app``.
            table_name: The table of the two rows.
            connect_timeout: Seconds to wait for the server to accept a connection.
            **engine_options: Passed on to ``create_async_engine`` (e.g. ``pool_size``).

        Raises:
            ConfigError: bad URL, unsupported database or driver, bad table name.
            StorageUnavailableError: the server cannot be reached (the message names it).
            StorageError: the table could not be created.
        """
        parsed = _parse_url(url)
        table = election_table(table_name)
        _check_timeout(connect_timeout)
        connect_args = _connect_args(parsed, connect_timeout)
        connect_args.update(engine_options.pop("connect_args", {}))
        try:
            engine = create_async_engine(parsed, connect_args=connect_args, **engine_options)
        except (sa_exc.ArgumentError, TypeError) as exc:
            raise ConfigError(
                f"cannot open {parsed.render_as_string(hide_password=True)!r}: {exc}"
            ) from exc
        except ImportError as exc:
            raise ConfigError(
                f"the driver for {parsed.drivername} is not installed ({exc}): "
                'pip install "leadersim[server]"'
            ) from exc
        storage = cls(engine, table, owns_engine=True, where=_describe_target(parsed))
        try:
            await storage._setup(connect_timeout)
        except BaseException:
            await storage.close()
            raise
        return storage

    async def _setup(self, connect_timeout: float) -> None:
        """Create the table (if missing) within a bounded time."""
        try:
            async with asyncio.timeout(connect_timeout):
                for attempt in (1, 2):
                    try:
                        async with self._engine.connect() as conn:
                            await conn.run_sync(
                                lambda sync: self._table.create(sync, checkfirst=True)
                            )
                        return
                    except sa_exc.DBAPIError as exc:
                        # Two members creating the table at once: the loser's CREATE
                        # fails (PostgreSQL even with IF NOT EXISTS); look again.
                        if attempt == 2 or self._dialect.classify(exc) is not None:
                            raise
        except TimeoutError as exc:
            raise StorageUnavailableError(
                f"cannot reach {self._where}: no answer within {connect_timeout:g} s"
            ) from exc
        except LeadersimError:
            raise
        except Exception as exc:
            raise self._error(exc, "connecting and creating the table") from exc

    # ------------------------------------------------------------------ properties

    @property
    def table_name(self) -> str:
        """The table holding the two rows."""
        return self._table.name

    @property
    def table(self) -> sa.Table:
        """The SQLAlchemy table of the layout (for queries of your own)."""
        return self._table

    @property
    def engine(self) -> AsyncEngine:
        """The engine this storage was given or opened."""
        return self._user_engine

    # ------------------------------------------------------------------ Storage

    async def get(self) -> Record:
        """Read the record (empty with version 0 if there is none); one statement.

        Raises:
            CorruptRecordError: the record row cannot be decoded (left as it is).
            StorageUnavailableError: the server cannot be reached.
            StorageError: the read failed otherwise.
        """

        async def read(conn: AsyncConnection) -> Any:
            return (await conn.execute(self._select)).first()

        row = await self._on_own_connection("reading the record", read, locks=False)
        if row is None:
            return Record()
        _, text, version = row
        if text is None:
            raise CorruptRecordError(
                f"table {self.table_name!r}: the election record (id = {RECORD_ROW_ID}) has "
                "no record (NULL) and was left as it is"
            )
        try:
            return record_from_json(text, int(version))
        except CorruptRecordError as exc:
            raise CorruptRecordError(
                f"table {self.table_name!r}: the election record (id = {RECORD_ROW_ID}) is "
                f"corrupt and was left as it is: {exc}"
            ) from exc.__cause__

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """CAS-write ``record`` at ``record.version``, in one transaction.

        Version 0 inserts both rows. Otherwise the record row is updated where its
        version is still ``record.version``; only when ``is_leader_changed``, the leader
        row is set first (its exclusive lock waits for open leader transactions, while
        renewals of the record row go on).

        Raises:
            RecordConflictError: the stored version is not ``record.version`` (also when
                two creators race at version 0); nothing was written.
            StorageError: ``record.version`` is 0 but ``is_leader_changed`` is false (the
                reference crashes there): the record is created only together with its
                leader row; nothing was written.
            StorageUnavailableError: the server cannot be reached; the outcome is unknown.
            StorageContentionError: a lock wait timed out, a deadlock or a serialization
                failure; nothing was written.
        """
        payload = record_to_json(record)
        version, leader = record.version, record.leader_id
        if version == 0 and not is_leader_changed:
            raise StorageError(
                f"table {self.table_name!r}: cannot create the election record without a "
                "leader change (version 0 with is_leader_changed=False); nothing was written"
            )
        if version == 0:
            await self._on_own_connection(
                "creating the record", lambda conn: self._create_rows(conn, leader, payload)
            )
            return

        async def cas(conn: AsyncConnection) -> None:
            params = {
                "old_version": version,
                "new_version": version + 1,
                "new_leader": leader,
                "new_record": payload,
            }
            if not is_leader_changed:
                # One statement: atomic by itself, no transaction needed.
                if (await conn.execute(self._cas, params)).rowcount != 1:
                    raise self._conflict(version)
                return
            await conn.exec_driver_sql(self._dialect.begin)
            changed = (await conn.execute(self._set_leader, params)).rowcount
            if changed != 1:
                await conn.exec_driver_sql("ROLLBACK")
                raise CorruptRecordError(
                    f"table {self.table_name!r}: the leader row (id = {LEADER_ROW_ID}) is "
                    "missing, so the leader cannot change; nothing was written"
                )
            if (await conn.execute(self._cas, params)).rowcount != 1:
                await conn.exec_driver_sql("ROLLBACK")
                raise self._conflict(version)
            await conn.exec_driver_sql("COMMIT")

        await self._on_own_connection("writing the record", cas)

    async def _create_rows(self, conn: AsyncConnection, leader: str, payload: str) -> None:
        await conn.exec_driver_sql(self._dialect.begin)
        try:
            await conn.execute(
                self._insert,
                [
                    {"id": RECORD_ROW_ID, "leader_id": leader, "record": payload, "version": 1},
                    {"id": LEADER_ROW_ID, "leader_id": leader, "record": None, "version": 1},
                ],
            )
        except sa_exc.DBAPIError as exc:
            if not self._dialect.is_duplicate_key(exc):
                raise
            await conn.exec_driver_sql("ROLLBACK")
            raise RecordConflictError(
                f"table {self.table_name!r}: record already created by another member"
            ) from exc
        await conn.exec_driver_sql("COMMIT")

    def _conflict(self, version: int) -> RecordConflictError:
        return RecordConflictError(
            f"table {self.table_name!r}: record version is no longer {version}"
        )

    # ------------------------------------------------------------------ fencing

    async def txn_with_leader_lock(
        self, leader_id: str, fn: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """Run ``fn(connection)`` in one transaction, only while ``leader_id`` leads.

        The transaction first takes a shared lock on the leader row (``FOR SHARE`` on
        PostgreSQL, ``LOCK IN SHARE MODE`` on MariaDB and MySQL 5.7, ``FOR SHARE`` on
        MySQL 8; on SQLite the transaction is an immediate one) and checks, exactly, that
        it names ``leader_id``. The lock is held until the transaction ends, so a leader
        change waits for it; other leader transactions and renewals do not. ``fn`` gets
        the SQLAlchemy ``AsyncConnection`` inside the transaction and must not commit or
        roll back itself.

        Returns:
            What ``fn`` returned, after committing.

        Raises:
            NotLeaderError: the stored leader is not ``leader_id`` (or it is empty);
                ``fn`` was not called.
            Exception: whatever ``fn`` raised, the very same object, after rolling back.
            asyncio.CancelledError: the caller was cancelled: before ``fn`` returned,
                nothing is committed and the lock is released; during the commit (after
                ``fn`` returned) the commit completes first.
            StorageUnavailableError: the server cannot be reached (before ``fn`` ran, or
                at commit: then the outcome is unknown).
            StorageError: the check or the commit failed otherwise.
        """
        self._check_open()
        what = f"a leader transaction of {leader_id!r}"
        try:
            conn = await self._checkout()
        except Exception as exc:
            raise self._error(exc, what) from exc
        ran_fn = False
        try:
            try:
                await self._remember_session(conn)
                await conn.exec_driver_sql(self._dialect.begin)
                stored = (await conn.execute(self._lock_leader)).scalar()
            except Exception as exc:
                raise self._error(exc, f"checking the leader for {what}") from exc
            # Exact comparison in Python: MySQL collations ignore case and trailing blanks.
            if not leader_id or stored != leader_id:
                await self._rollback(conn)
                raise NotLeaderError(leader_id)
            ran_fn = True
            result = await fn(conn)
            ran_fn = False
            # Once fn has returned, the commit is not interrupted: a cancellation that
            # arrives during it waits for the server's answer, then is raised. So a
            # cancelled caller knows: cancelled before fn returned, nothing committed;
            # after, committed (and the connection is never left mid-reply).
            commit = asyncio.ensure_future(conn.exec_driver_sql("COMMIT"))
            try:
                try:
                    await asyncio.shield(commit)
                except asyncio.CancelledError:
                    await asyncio.wait({commit})
                    commit.result()
                    raise
            except Exception as exc:
                raise self._error(exc, f"committing {what}") from exc
        except NotLeaderError:
            await self._give_back(conn)
            raise
        except Exception:
            # fn raised: roll back and hand back its own exception unchanged.
            if ran_fn and await self._rollback(conn):
                await self._give_back(conn)
                raise
            await self._discard(conn, kill=True)
            raise
        except BaseException:  # cancelled (or interrupted) somewhere in the transaction
            await self._discard(conn, kill=True)
            raise
        await self._give_back(conn)
        return result

    async def _rollback(self, conn: AsyncConnection) -> bool:
        """Roll back; False if that failed (the caller then discards the connection)."""
        try:
            await conn.exec_driver_sql("ROLLBACK")
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ connections

    async def _on_own_connection(
        self,
        what: str,
        body: Callable[[AsyncConnection], Awaitable[T]],
        *,
        locks: bool = True,
    ) -> T:
        """Run ``body`` on the storage's own connection, discarding it if anything breaks.

        ``body`` raises leadersim errors only after leaving the connection clean (rolled
        back); driver errors and cancellation discard the connection.
        """
        async with self._op_lock:
            self._check_open()
            conn = self._conn
            if conn is None:
                try:
                    conn = self._conn = await self._checkout()
                except Exception as exc:
                    raise self._error(exc, what) from exc
            try:
                if locks:
                    await self._remember_session(conn)
                return await body(conn)
            except LeadersimError:
                raise
            except Exception as exc:
                self._conn = None
                await self._discard(conn, kill=locks)
                raise self._error(exc, what) from exc
            except BaseException:
                self._conn = None
                await self._discard(conn, kill=locks)
                raise

    async def _checkout(self) -> AsyncConnection:
        """A connection from the pool; a cancellation meanwhile does not lose it.

        SQLAlchemy loses a connection whose checkout (or connect) is cancelled half-way
        (it stays checked out until garbage collection), and a small pool then runs dry.
        So the checkout runs to its end, and a cancelled caller's connection goes back.
        """
        checkout = asyncio.ensure_future(self._engine.connect().start())
        try:
            return await asyncio.shield(checkout)
        except asyncio.CancelledError:
            self._track(self._return_when_done(checkout))
            raise

    async def _give_back(self, conn: AsyncConnection) -> None:
        """Return ``conn`` to the pool; a cancellation meanwhile does not stop that."""
        closing = asyncio.ensure_future(conn.close())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            self._track(_quietly(closing))
            raise
        except Exception:  # a broken connection: the pool has dropped it
            _log.debug("closing a connection to %s failed", self._where, exc_info=True)

    @staticmethod
    async def _return_when_done(checkout: asyncio.Future[AsyncConnection]) -> None:
        with contextlib.suppress(Exception):
            conn = await checkout
            await conn.close()

    def _track(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` in the background; :meth:`close` waits for it."""
        task = asyncio.ensure_future(coro)
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    async def _remember_session(self, conn: AsyncConnection) -> None:
        """Note the server session of a new connection (once per connection)."""
        if self._dialect.session_sql is None:
            return
        info = conn.info  # lives as long as the DBAPI connection
        if _SESSION_KEY not in info:
            row: Any = (await conn.exec_driver_sql(self._dialect.session_sql)).first()
            info[_SESSION_KEY] = None if row is None else (int(row[0]), str(row[1]))

    async def _discard(self, conn: AsyncConnection, *, kill: bool) -> None:
        """Never reuse ``conn``: invalidate it, then end its server session.

        The session is ended only if it may still hold locks, and in the background: a
        cancelled caller must not wait.
        """
        session = None
        with contextlib.suppress(Exception):
            session = conn.info.get(_SESSION_KEY)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(conn.invalidate()), _DISCARD_TIMEOUT)
        await self._give_back(conn)
        if kill and session is not None and self._dialect.kill_sql is not None:
            self._track(self._kill_session(session))

    async def _kill_session(self, session: tuple[int, str]) -> None:
        assert self._dialect.kill_sql is not None
        pid, start = session
        sql = self._dialect.kill_sql.format(int(pid), start.replace("'", ""))
        try:
            async with asyncio.timeout(_KILL_TIMEOUT), self._engine.connect() as conn:
                await conn.exec_driver_sql(sql)
        except Exception as exc:  # gone already, or unreachable: nothing more to do
            _log.debug("could not end discarded session %s on %s: %r", pid, self._where, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"table {self.table_name!r}: the storage is closed")

    def _error(self, exc: BaseException, what: str) -> StorageError:
        """The leadersim error for a driver exception raised while doing ``what``."""
        kind = self._dialect.classify(exc) or StorageError
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            detail = f"{type(exc.orig).__name__}: {exc.orig}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        if kind is StorageUnavailableError:
            text = f"cannot reach {self._where} while {what}: {detail}"
        else:
            text = f"table {self.table_name!r} on {self._where}: {what} failed: {detail}"
        return kind(text)

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Release the connection this storage keeps, and the engine if it opened it.

        Later calls raise :class:`~leadersim.StorageError`. Calling it again is harmless.
        """
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), _DISCARD_TIMEOUT)
        if self._kills:
            await asyncio.gather(*self._kills, return_exceptions=True)
        if self._owns:
            await self._user_engine.dispose()

    async def __aenter__(self) -> ORMStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<ORMStorage {self._where} table={self.table_name!r}>"


async def _quietly(future: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await future


def _check_timeout(value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"connect_timeout must be > 0 seconds, got {value!r}")
