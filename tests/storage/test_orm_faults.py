"""ORMStorage under real server faults: sessions terminated by the server.

The storage's sessions are terminated from outside, as an operator or a failover would:
``pg_terminate_backend`` on PostgreSQL, ``KILL`` on MariaDB. Only this test's sessions
are touched (the servers are shared): on PostgreSQL they carry a unique
``application_name``, on MariaDB they log in as a user created for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from worlds import drop_tables, unique_table

from leadersim import (
    Config,
    Elector,
    EventKind,
    ORMStorage,
    StorageUnavailableError,
    TraceRecorder,
)
from leadersim.testing import sample_record

pytestmark = pytest.mark.server


class Sessions:
    """Opens storages whose server sessions this test alone can find and terminate."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.tag = f"ls_{uuid.uuid4().hex[:12]}"
        parsed = sa.make_url(url)
        self.postgres = parsed.get_backend_name() == "postgresql"
        self.url = url if self.postgres else parsed.set(username=self.tag, password=None)
        self.table = unique_table("faults")
        self.admin = create_async_engine(url)

    @property
    def options(self) -> dict[str, Any]:
        if self.postgres:
            return {"connect_args": {"server_settings": {"application_name": self.tag}}}
        return {}

    async def setup(self) -> None:
        if not self.postgres:
            async with self.admin.begin() as conn:
                for host in ("%", "localhost"):
                    await conn.execute(sa.text(f"CREATE USER '{self.tag}'@'{host}'"))
                    await conn.execute(sa.text(f"GRANT ALL ON test.* TO '{self.tag}'@'{host}'"))

    async def open(self, **options: Any) -> ORMStorage:
        return await ORMStorage.from_url(
            str(self.url) if isinstance(self.url, str) else self.url.render_as_string(False),
            self.table,
            **self.options,
            **options,
        )

    async def terminate(self, session: int) -> None:
        """Terminate one session (of this test) by its server id."""
        sql = f"SELECT pg_terminate_backend({session})" if self.postgres else f"KILL {session}"
        async with self.admin.connect() as conn:
            await conn.execute(sa.text(sql))

    async def terminate_all(self) -> int:
        """Terminate every session of this test; returns how many there were."""
        async with self.admin.connect() as conn:
            if self.postgres:
                rows = await conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :tag"
                    ),
                    {"tag": self.tag},
                )
                return len(rows.all())
            ids = (
                await conn.execute(
                    sa.text("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = :tag"),
                    {"tag": self.tag},
                )
            ).all()
            for (session,) in ids:
                with contextlib.suppress(sa.exc.DBAPIError):  # ended meanwhile
                    await conn.execute(sa.text(f"KILL {int(session)}"))
            return len(ids)

    async def aclose(self) -> None:
        try:
            await drop_tables(self.admin_url, self.table)
            if not self.postgres:
                await self.terminate_all()
                async with self.admin.begin() as conn:
                    for host in ("%", "localhost"):
                        await conn.execute(sa.text(f"DROP USER IF EXISTS '{self.tag}'@'{host}'"))
        finally:
            await self.admin.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    fixture = "postgres_url" if request.param == "postgresql" else "mysql_url"
    return str(request.getfixturevalue(fixture))


@contextlib.asynccontextmanager
async def sessions(url: str) -> AsyncIterator[Sessions]:
    s = Sessions(url)
    await s.setup()
    try:
        yield s
    finally:
        await s.aclose()


async def test_a_dead_pooled_connection_fails_one_call_and_the_next_one_works(
    server_url: str,
) -> None:
    async with sessions(server_url) as s:
        storage = await s.open()
        try:
            await storage.update(sample_record("A"), True)
            assert await s.terminate_all() >= 1
            outcomes: list[object] = []
            for _ in range(3):
                try:
                    outcomes.append((await storage.get()).leader_id)
                except StorageUnavailableError as exc:
                    outcomes.append(exc)
            first = outcomes[0]
            if isinstance(first, StorageUnavailableError):
                assert first.__cause__ is not None
                assert "cannot reach" in str(first)
            # At most the first call meets the dead connection; later ones reconnect.
            assert outcomes[1:] == ["A", "A"], outcomes
        finally:
            await storage.close()


async def test_a_connection_lost_inside_fn_reaches_fn_commits_nothing_and_the_storage_recovers(
    server_url: str,
) -> None:
    async with sessions(server_url) as s:
        storage = await s.open()
        try:
            await storage.update(sample_record("A"), True)
            async with s.admin.begin() as conn:
                await conn.execute(sa.text(f"CREATE TABLE {s.table}_w (v int)"))

            async def fn(conn: AsyncConnection) -> None:
                await conn.execute(sa.text(f"INSERT INTO {s.table}_w VALUES (1)"))
                me = "pg_backend_pid()" if s.postgres else "CONNECTION_ID()"
                session = (await conn.execute(sa.text(f"SELECT {me}"))).scalar_one()
                await s.terminate(int(session))  # the server ends this very transaction
                await conn.execute(sa.text("SELECT 1"))

            with pytest.raises(Exception) as caught:  # noqa: PT011 - fn's own error, unchanged
                await storage.txn_with_leader_lock("A", fn)
            assert isinstance(caught.value, sa.exc.DBAPIError)
            async with s.admin.connect() as conn:
                rows = (await conn.execute(sa.text(f"SELECT v FROM {s.table}_w"))).all()
            assert rows == []
            # Afterwards the storage works on fresh connections.
            assert (await storage.get()).leader_id == "A"
            assert await storage.txn_with_leader_lock("A", _one) == 1
        finally:
            await storage.close()
            await drop_tables(s.admin_url, f"{s.table}_w")


async def _one(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())


@pytest.mark.slow
async def test_elector_keeps_leadership_through_session_kills_shorter_than_the_deadline(
    server_url: str, tmp_path: Path
) -> None:
    """Kill the elector's sessions for 1 s (deadline 2 s), three times: it stays leader."""
    lease, interval, deadline = 3.0, 0.25, 2.0
    async with sessions(server_url) as s:
        storage = await s.open()
        trace = TraceRecorder(time.monotonic)
        started = asyncio.Event()

        async def lead() -> None:
            started.set()
            await asyncio.Event().wait()

        config = Config(
            "leader",
            storage=storage,
            leader_callback=lead,
            lease_duration=lease,
            renew_interval=interval,
            renew_deadline=deadline,
        )
        elector = Elector(config, observer=trace, seed=1)
        task = asyncio.create_task(elector.run_election())
        try:
            async with asyncio.timeout(10):
                await started.wait()
            killed = 0
            for _ in range(3):
                outage_end = time.monotonic() + 1.0
                while time.monotonic() < outage_end:  # every session dies at once
                    killed += await s.terminate_all()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.5)  # recover before the next outage
            last_kill = time.monotonic()
            await asyncio.sleep(3 * interval + 0.5)
            assert killed >= 3, "the outages never met a session"
            assert elector.is_leader()
            kinds = {e.kind for e in trace.events}
            assert EventKind.RENEW_FAILED not in kinds
            assert EventKind.CALLBACK_CANCELLED not in kinds
            errors = trace.of_kind(EventKind.STORAGE_ERROR)
            assert errors, "no renewal met the outage: the test proved nothing"
            assert EventKind.LOST_LEADER not in kinds
            renewed_after = [
                e for e in trace.of_kind(EventKind.RENEW_OK) if e.true_time > last_kill
            ]
            assert len(renewed_after) >= 2, "the elector stopped renewing after the outages"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await storage.close()
