"""The simulated storage server: real SQL, simulated network.

:class:`StorageServer` keeps the election record in an in-memory stdlib ``sqlite3``
database and executes **the same statements as** :class:`~leadersim.storage.sqlite.SQLStorage`
(:class:`~leadersim.storage.sqlite.SQLiteStatements`), inline — no threads. SimPy adds
what the network and the server's load would: a latency in each direction, cuts (request
lost, reply lost, both, or writes refused), slow spells, injected errors, conflicts and busy
errors, and ambiguous outcomes (committed, but the reply is lost or late).

Each node talks to the server through its own :class:`SimStorage` client, which implements
the :class:`~leadersim.storage.base.Storage` protocol. Every operation is traced as one
``storage_op`` event carrying both the true outcome at the server and what the client saw.

:class:`ProtectedResource` is the thing a leader's work writes to. It is separate from the
record and stays reachable when a node is cut off from storage; with fencing it accepts a
write only if the record names the writer leader at that instant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import simpy
from simpy.events import NORMAL

from leadersim.errors import NotLeaderError, RecordConflictError, StorageError
from leadersim.record import MAX_VERSION, Record, read_back
from leadersim.sim.latency import Latency
from leadersim.storage.base import TABLE_NAME_ELECTION
from leadersim.storage.faultplan import OpRecord, StorageFaults, refusal
from leadersim.storage.sqlite import SQLiteStatements
from leadersim.trace import EventKind, Observer

__all__ = ["ProtectedResource", "SimStorage", "StorageServer"]

T = TypeVar("T")


class StorageServer:
    """A simulated database server holding the election record.

    Args:
        env: The SimPy environment (its clock is true time).
        latency: Default one-way latency of every operation.
        rng: Random source of latencies and injected faults (a named sub-stream).
        observer: Receives ``storage_op`` events (node = the client's id).
        table_name: Table of the record (validated like ``SQLStorage``'s).
        latency_by_op: Per-operation overrides (``get``, ``update``, ``txn``).
        latency_by_node: Per-node overrides.
        now: Reads the true time (the world passes its loop's ``SimLoop.time``, the one
            reader of SimPy's clock); defaults to ``env.now``.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        latency: Latency | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        table_name: str = TABLE_NAME_ELECTION,
        latency_by_op: dict[str, Latency] | None = None,
        latency_by_node: dict[str, Latency] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.env = env
        self._now: Callable[[], float] = now if now is not None else (lambda: float(env.now))
        self.latency = latency if latency is not None else Latency()
        self.latency_by_op = dict(latency_by_op or {})
        self.latency_by_node = dict(latency_by_node or {})
        self._rng = rng if rng is not None else random.Random(0)
        self._observer = observer
        self.sql = SQLiteStatements.for_table(table_name)
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.execute(self.sql.create)
        self._faults: dict[str, StorageFaults] = {}
        self._leader_id = ""
        # The committed row as this server last wrote it, (version, text), and the record
        # decoding it gives: a read whose row is still that one skips the JSON decode.
        # (The SELECT still runs: any other write to the table shows in the row.)
        self._written: tuple[object, object] | None = None
        self._written_record = Record()

    # ------------------------------------------------------------------ faults

    def faults(self, node: str) -> StorageFaults:
        """The composed storage faults of ``node`` (the fault schedule drives them)."""
        state = self._faults.get(node)
        if state is None:
            state = self._faults[node] = StorageFaults()
        return state

    def start_cut(self, node: str, mode: str) -> None:
        """Cut ``node`` off: ``request``, ``reply``, ``both`` or ``writes``.

        Raises:
            ValueError: an unknown mode.
        """
        self.faults(node).start("cut", {"mode": mode})

    def end_cut(self, node: str, mode: str) -> None:
        """Heal one cut of ``node`` started with :meth:`start_cut`."""
        self.faults(node).end("cut", {"mode": mode})

    def committed_record(self) -> Record:
        """The record as stored right now (no latency, no faults: the truth)."""
        return self.sql.decode(self.db.execute(self.sql.select).fetchall())

    @property
    def committed_leader(self) -> str:
        """The leader id stored right now (kept up to date by every committed write)."""
        return self._leader_id

    def client(self, node: str) -> SimStorage:
        """A :class:`SimStorage` through which ``node`` talks to this server."""
        return SimStorage(self, node)

    # ------------------------------------------------------------------ pipeline

    def _one_way(self, node: str, op: str, faults: StorageFaults) -> float:
        latency = self.latency
        if self.latency_by_node or self.latency_by_op:
            latency = self.latency_by_node.get(node) or self.latency_by_op.get(op) or latency
        return latency.sample(self._rng) + faults.leg_delay()

    def _at(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` ``delay`` simulated seconds from now (now if not > 0)."""
        if delay <= 0.0:
            # A zero-latency leg happens now: no SimPy event needed. (The client's
            # future may then be done before it is awaited, like a cache hit.)
            callback(*args)
            return
        # Scheduled like a SimPy timeout (same priority, same event counter, so the same
        # order), as a bare event that only runs the callback.
        self.env.schedule(_Leg(callback, args), NORMAL, delay)  # type: ignore[arg-type]

    def submit(
        self, node: str, op: str, execute: Callable[[OpRecord], T], *, write: bool
    ) -> asyncio.Future[T]:
        """Send one operation from ``node``; ``execute(op_record)`` runs on arrival.

        Each step is decided by the node's :class:`~leadersim.storage.faultplan.StorageFaults`
        (the pipeline the real fault wrapper shares) and carried out in simulated time.

        Returns:
            A future resolved when the reply reaches the client (never, if it is lost).
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        record = OpRecord(node, op, self._now())
        faults = self.faults(node)
        sent = faults.on_send(self._rng)
        if sent == "error":
            record.outcome = "error"
            after = faults.error_after_s or 0.0
            error = refusal("error", node, op, after)
            self._at(after, self._reply, record, future, error, None, faults)
        elif sent == "lost":
            self._emit(record, "no_reply")
        else:
            self._at(
                self._one_way(node, op, faults),
                self._arrive,
                record,
                future,
                execute,
                write,
                faults,
            )
        return future

    def _arrive(
        self,
        record: OpRecord,
        future: asyncio.Future[T],
        execute: Callable[[OpRecord], T],
        write: bool,
        faults: StorageFaults,
    ) -> None:
        record.arrived_at = self._now()
        result: T | None = None
        error: BaseException | None = None
        extra_delay: float | None = 0.0
        arrival = faults.on_arrival(write, self._rng)
        if arrival != "execute":
            record.outcome = "conflict" if arrival == "conflict" else "error"
            error = refusal(arrival, record.node, record.op)
        else:
            try:
                result = execute(record)
                record.outcome = "ok"
            except RecordConflictError as exc:
                record.outcome = "conflict"
                error = exc
            except (StorageError, NotLeaderError) as exc:
                record.outcome = "error"
                error = exc
            extra_delay = faults.reply_delay(record.op, record.outcome)
        if extra_delay is None:  # an ambiguous commit whose reply is lost
            self._emit(record, "no_reply")
            return
        self._at(
            self._one_way(record.node, record.op, faults) + extra_delay,
            self._reply,
            record,
            future,
            error,
            result,
            faults,
        )

    def _reply(
        self,
        record: OpRecord,
        future: asyncio.Future[T],
        error: BaseException | None,
        result: T | None,
        faults: StorageFaults,
    ) -> None:
        if faults.reply_lost():
            self._emit(record, "no_reply")
            return
        record.replied_at = self._now()
        if future.done():  # the client gave up (its deadline cancelled the call)
            self._emit(record, "timeout")
        elif error is not None:
            future.set_exception(error)
            # Mark it retrieved: a live client raises it when it resumes anyway, and a
            # crashed node's task never will (asyncio would log it at garbage collection).
            future.exception()
            self._emit(record, "conflict" if isinstance(error, RecordConflictError) else "error")
        else:
            future.set_result(result)  # type: ignore[arg-type]
            self._emit(record, "ok")

    def _emit(self, record: OpRecord, seen: str) -> None:
        """Trace one finished operation: the truth at the server and what the client saw.

        ``seen`` follows :mod:`leadersim.storage.faultplan`: ``ok``, ``conflict`` or
        ``error`` when the reply reached a waiting client, ``timeout`` when the client
        had already given up, ``no_reply`` when the request or the reply was lost.
        """
        record.seen = seen
        if self._observer is not None:
            self._observer(record.node, float("nan"), EventKind.STORAGE_OP, record.details())

    # ------------------------------------------------------------------ SQL (inline)

    def execute_get(self, op: OpRecord | None = None) -> Record:
        """Run ``SQLStorage.get``'s statement now."""
        try:
            rows = self.db.execute(self.sql.select).fetchall()
        except sqlite3.Error as exc:  # pragma: no cover - in-memory SQL does not fail
            raise StorageError(f"table {self.sql.table!r}: {exc}") from exc
        if rows and rows[0] == self._written:
            return self._written_record.clone()
        return self.sql.decode(rows)

    def execute_update(self, record: Record, op: OpRecord | None = None) -> None:
        """Run ``SQLStorage.update``'s statement now (CAS on the version)."""
        statement, args = self.sql.write_args(record)
        try:
            cursor = self.db.execute(statement, args)
        except sqlite3.IntegrityError as exc:
            raise RecordConflictError(
                f"table {self.sql.table!r}: record already created by another member"
            ) from exc
        if cursor.rowcount != 1:
            raise RecordConflictError(
                f"table {self.sql.table!r}: record version is no longer {record.version}"
            )
        self._leader_id = record.leader_id
        version = record.version + 1
        if version <= MAX_VERSION:  # beyond it, a read refuses the row: let decode say so
            self._written = (version, args[-2] if record.version else args[0])
            self._written_record = read_back(record, version)
        if op is not None:
            op.leader_id = record.leader_id
            op.version = record.version + 1


class SimStorage:
    """One node's client of a :class:`StorageServer` (implements ``Storage``).

    The reference has no per-request timeout: a lost request or reply leaves the call
    pending until the caller's own deadline cancels it.
    """

    def __init__(self, server: StorageServer, node: str) -> None:
        self.server = server
        self.node = node

    async def get(self) -> Record:
        """Read the record through the simulated network."""
        return await self.server.submit(self.node, "get", self.server.execute_get, write=False)

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """CAS-write ``record`` through the simulated network."""
        record = record.clone()
        server = self.server
        await server.submit(
            self.node, "update", lambda op: server.execute_update(record, op), write=True
        )

    async def txn_with_leader_lock(
        self, leader_id: str, fn: Callable[[sqlite3.Connection], Awaitable[T]]
    ) -> T:
        """Check the stored leader and run ``fn(connection)`` atomically at the server.

        The simulated transaction happens at one instant of simulated time, so ``fn``
        must not wait (it gets the server's stdlib ``sqlite3`` connection).

        Raises:
            NotLeaderError: the stored leader is not ``leader_id``.
            Exception: whatever ``fn`` raised, after rolling back.
        """
        server = self.server

        def execute(op: OpRecord) -> T:
            server.db.execute("BEGIN IMMEDIATE")
            try:
                if not leader_id or server.execute_get().leader_id != leader_id:
                    raise NotLeaderError(leader_id)
                result = _run_without_waiting(fn(server.db))
            except BaseException:
                server.db.execute("ROLLBACK")
                raise
            server.db.execute("COMMIT")
            server._leader_id = server.execute_get().leader_id  # fn may have written it
            return result

        future = server.submit(self.node, "txn", _capture(execute), write=True)
        outcome = await future
        value: T = outcome.unwrap()
        return value


class _Leg:
    """One leg of an operation in flight: the bare SimPy event :meth:`StorageServer._at` uses."""

    __slots__ = ("_args", "_call", "_ok", "callbacks")

    def __init__(self, call: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._call = call
        self._args = args
        self._ok = True  # SimPy's step checks it: a leg never fails
        self.callbacks: list[Callable[[_Leg], None]] | None = [_fire]


def _fire(leg: _Leg) -> None:
    leg._call(*leg._args)


@dataclasses.dataclass(slots=True)
class _Outcome:
    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _capture(execute: Callable[[OpRecord], T]) -> Callable[[OpRecord], _Outcome]:
    """Deliver ``fn``'s own exceptions to the caller unchanged, not as server errors."""

    def run(op: OpRecord) -> _Outcome:
        try:
            return _Outcome(execute(op))
        except (NotLeaderError, RecordConflictError, StorageError):
            raise
        except Exception as exc:
            return _Outcome(error=exc)

    return run


def _run_without_waiting(awaitable: Awaitable[T]) -> T:
    """Run a coroutine that must finish without suspending (a simulated instant)."""
    coro = awaitable.__await__()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    close = getattr(coro, "close", None)
    if close is not None:
        close()
    raise StorageError("a simulated leader transaction must not wait (fn suspended)")


class ProtectedResource:
    """What a leader's work writes to: separate from the record, never cut off.

    With ``fencing`` it accepts a write only if the stored record names the writer as
    leader at the instant the write arrives (the check ``txn_with_leader_lock`` makes);
    without, it accepts every write. Each write is traced as a ``guarded_write`` event
    with ``accepted`` and ``stale`` (the record did not name the writer leader).

    Args:
        server: The storage server whose record is the source of truth.
        latency: One-way latency to the resource.
        rng: Random source of latencies.
        observer: Receives ``guarded_write`` events.
        fencing: Whether stale writes are rejected.
    """

    def __init__(
        self,
        server: StorageServer,
        *,
        latency: Latency | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        fencing: bool = False,
    ) -> None:
        self.server = server
        self.latency = latency if latency is not None else server.latency
        self.fencing = fencing
        self._rng = rng if rng is not None else random.Random(1)
        self._observer = observer
        self.accepted: list[tuple[float, str]] = []

    def write(self, node: str, seq: int) -> asyncio.Future[bool]:
        """Send write number ``seq`` from ``node``; resolves to whether it was accepted."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        env = self.server.env
        sent_at = env.now

        def arrive() -> None:
            leader = self.server.committed_leader
            stale = leader != node
            accepted = not (self.fencing and stale)
            if accepted:
                self.accepted.append((env.now, node))
            if self._observer is not None:
                self._observer(
                    node,
                    float("nan"),
                    EventKind.GUARDED_WRITE,
                    {
                        "seq": seq,
                        "accepted": accepted,
                        "stale": stale,
                        "fencing": self.fencing,
                        "leader_id": leader,
                        "sent_at": sent_at,
                    },
                )
            self.server._at(
                self.latency.sample(self._rng),
                lambda: None if future.done() else future.set_result(accepted),
            )

        self.server._at(self.latency.sample(self._rng), arrive)
        return future
