"""The worlds a test body can run in: real asyncio on SQLite, or the simulator.

A test written once as ``async def body()`` runs unchanged in each world through
:meth:`World.run`. The body takes from its world everything that differs between them —
one storage per member, the clock each elector is given, how a member's
``run_election`` is started, and the true time that stamps the trace — and uses stock
asyncio for everything else (sleeps, timeouts, tasks, queues).

- ``memory``: ``asyncio.run`` on the host's clock; one shared in-memory SQLite database,
  a connection per member.
- ``file``: the same on one SQLite file (WAL), a connection per member.
- ``sim``: a :class:`~leadersim.sim.loop.SimLoop` on SimPy's clock; one simulated
  storage server with a client per member, a :class:`~leadersim.sim.clock.NodeClock` per
  elector, and each ``run_election`` spawned as its own node.

Server worlds (:data:`SERVER_WORLDS`, used by ``tests/storage/test_orm_elector.py``):

- ``postgresql`` / ``mariadb``: ``asyncio.run`` on the host's clock; an
  :class:`~leadersim.ORMStorage` (its own engine) per member on one table, unique to the
  world and dropped when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from leadersim import Clock, SQLStorage, Storage
from leadersim.sim.clock import NodeClock
from leadersim.sim.loop import NodeTag, SimLoop, SimulationDeadlock
from leadersim.sim.storage import StorageServer

T = TypeVar("T")

WORLDS = ("memory", "file", "sim")
SERVER_WORLDS = ("postgresql", "mariadb")


class World:
    """Where a test body runs; see the module docstring for the three worlds."""

    name: str

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main()`` to completion in this world and return its result."""
        raise NotImplementedError

    def now(self) -> float:
        """True time in seconds (comparable across members; stamps the trace)."""
        raise NotImplementedError

    async def open_storage(self, member_id: str) -> Storage:
        """A new storage for ``member_id``, sharing the one record of this world."""
        raise NotImplementedError

    async def close_storages(self) -> None:
        """Close every storage opened so far: later calls through them fail."""
        raise NotImplementedError

    def clock(self, member_id: str) -> Clock | None:
        """The clock to give ``member_id``'s elector (``None``: the real default)."""
        raise NotImplementedError

    def spawn(self, member_id: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as ``member_id``'s own task (in the simulator, its node)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class RealWorld(World):
    """asyncio on the host's clock against SQLStorage (in memory, or a file)."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        if name not in ("memory", "file"):
            raise ValueError(f"unknown real world {name!r}")
        self.name = name
        self._db_name = f"test-world-{uuid.uuid4().hex}"
        self._path = tmp_path / "election.db"
        self._storages: list[SQLStorage] = []

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await main()

        return asyncio.run(wrapped())

    def now(self) -> float:
        return time.monotonic()  # what asyncio's default loop reads

    async def open_storage(self, member_id: str) -> Storage:
        if self.name == "memory":
            storage = await SQLStorage.in_memory(self._db_name)
        else:
            storage = await SQLStorage.open(self._path)
        self._storages.append(storage)
        return storage

    async def close_storages(self) -> None:
        for storage in self._storages:
            await storage.close()

    def clock(self, member_id: str) -> Clock | None:
        return None

    def spawn(self, member_id: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return asyncio.get_running_loop().create_task(coro, name=f"{member_id}-main")


class SimWorld(World):
    """The simulator: SimPy's clock, one storage server, a node per member.

    Args:
        seed: Seeds the server's latencies (baseline: lognormal, 5 ms median each way).
    """

    name = "sim"

    def __init__(self, seed: int = 0) -> None:
        self.loop = SimLoop()
        self.server = StorageServer(self.loop.env, rng=random.Random(seed))
        self._clocks: dict[str, NodeClock] = {}
        self._clients: list[str] = []

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await main()

        loop = self.loop
        try:
            return loop.run_until_complete(wrapped())
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                with contextlib.suppress(SimulationDeadlock):
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()
            self.server.db.close()

    def now(self) -> float:
        return self.loop.time()

    async def open_storage(self, member_id: str) -> Storage:
        self._clients.append(member_id)
        return self.server.client(member_id)

    async def close_storages(self) -> None:
        # A closed connection fails every call at once with a storage error.
        for member_id in self._clients:
            self.server.faults(member_id).error_after_s = 0.0

    def clock(self, member_id: str) -> Clock | None:
        clock = self._clocks.get(member_id)
        if clock is None:
            # Each node's monotonic clock has its own origin, as on real machines.
            origin = 1000.0 * (len(self._clocks) + 1)
            clock = self._clocks[member_id] = NodeClock(self.now, origin=origin)
        return clock

    def spawn(self, member_id: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return self.loop.spawn(NodeTag(member_id), coro, name=f"{member_id}-main")


class ServerWorld(World):
    """asyncio on the host's clock against ORMStorage on a database server.

    Args:
        name: The world's name (``postgresql`` or ``mariadb``).
        url: The server's URL.
    """

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.table = unique_table("world")
        self._storages: list[Any] = []

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            try:
                return await main()
            finally:
                await self.close_storages()
                await drop_tables(self.url, self.table)

        return asyncio.run(wrapped())

    def now(self) -> float:
        return time.monotonic()

    async def open_storage(self, member_id: str) -> Storage:
        from leadersim import ORMStorage

        storage = await ORMStorage.from_url(self.url, self.table)
        self._storages.append(storage)
        return storage

    async def close_storages(self) -> None:
        for storage in self._storages:
            await storage.close()

    def clock(self, member_id: str) -> Clock | None:
        return None

    def spawn(self, member_id: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return asyncio.get_running_loop().create_task(coro, name=f"{member_id}-main")


def unique_table(prefix: str = "t") -> str:
    """A table name no other test uses (tests share the servers)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def drop_tables(url: str, *tables: str) -> None:
    """Drop ``tables`` if they exist, through a short-lived engine on ``url``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in tables:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        await engine.dispose()


def make_world(name: str, tmp_path: Path, url: str | None = None) -> World:
    """The world called ``name`` (one of :data:`WORLDS`, or of :data:`SERVER_WORLDS`
    with the server's ``url``)."""
    if name == "sim":
        return SimWorld()
    if name in SERVER_WORLDS:
        if url is None:
            raise ValueError(f"the {name} world needs the server's URL")
        return ServerWorld(name, url)
    return RealWorld(name, tmp_path)
