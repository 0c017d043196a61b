"""Real mode: election members as separate OS processes on one SQLite file.

:func:`run_member` is what one member process runs: an :class:`~leadersim.Elector` on a
SQLite file (:meth:`~leadersim.SQLStorage.open`), with a leader callback that just holds
leadership until it is cancelled. Every trace event is written to the member's trace file
as one JSON line the moment it happens, so a member killed with ``SIGKILL`` leaves its
whole trace behind. ``SIGTERM`` and ``SIGINT`` stop a member gracefully: it releases its
lease (and the leader slot, if it holds it) before it exits.

:class:`Lab` spawns such members with ``python -m leadersim member ...``, injects real
faults by signal (``SIGKILL`` a crash, ``SIGSTOP``/``SIGCONT`` a pause, ``SIGTERM`` a
shutdown) and merges their traces. All members stamp ``true_time`` with the host's
``CLOCK_MONOTONIC`` (:func:`time.monotonic`), which every process of one Linux host
shares, so the merged trace and the lab's own :func:`time.monotonic` readings form one
timeline.

The lab writes what it does into the trace directory too, as ``lab.jsonl`` beside the
members' ``<node>.jsonl`` files: a ``run_started`` event (the run's time origin) and
every fault it injects, in the simulator's schema (``fault_start``/``fault_end`` with
``kind`` ``crash``, ``pause``, ``cancel`` or ``restart``, and the signal). A member killed
while its leader callback ran gets a ``callback_stopped`` (reason ``crashed``) there, as
the simulator records a crash: its process is gone, so nothing of it acts any more. A
saved directory therefore reads back (:func:`~leadersim.trace.read_trace_dir`, or
``Result.from_trace_dir``) to the very trace :meth:`Lab.read_trace` gives, and to the same
verdict.

:func:`run_scenario` (and :meth:`Lab.run_scenario`) runs a scenario, the simulator's data,
for real: members started as the simulator starts its nodes, each fault of the schedule a
real action at its time (``SIGKILL``, ``SIGSTOP``/``SIGCONT``, ``SIGTERM``, a new process,
or a control message on the member's stdin for ``resign`` and the storage faults, which
the member's :class:`~leadersim.storage.FaultyStorage` inflicts), and the scenario's
workload in every member (:func:`~leadersim.workload.leader_workload`, guarded writes to
``<table>_writes``). Each member gets one :class:`MemberSettings`. Kinds that cannot be
real are refused first (:func:`check_real`). A member process imports no pandas and no
simpy; only :func:`run_scenario` reads scenarios (lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import json
import logging
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import leadersim
from leadersim.clock import RealClock
from leadersim.config import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RENEW_INTERVAL,
    Config,
)
from leadersim.elector import Elector
from leadersim.errors import ConfigError, LeadersimError, NotLeaderError, StorageError
from leadersim.faults import FAULT_KINDS
from leadersim.storage import FaultyStorage, open_storage
from leadersim.storage.base import TABLE_NAME_ELECTION, Storage
from leadersim.trace import (
    EventKind,
    Observer,
    Scalar,
    TraceEvent,
    TraceRecorder,
    read_jsonl,
    read_trace_dir,
)
from leadersim.workload import leader_workload

if TYPE_CHECKING:
    from leadersim.analysis.result import Result
    from leadersim.sim.faults import Fault
    from leadersim.sim.scenario import Scenario

__all__ = [
    "CALLBACK_KEYS",
    "DEFAULT_STOP_TIMEOUT",
    "Failover",
    "LAB_TRACE_NAME",
    "Lab",
    "LabError",
    "MemberSettings",
    "READY_MARK",
    "check_real",
    "process_state",
    "read_trace_dir",
    "run_member",
    "run_scenario",
    "serve_member",
    "writes_table",
]

_logger = logging.getLogger("leadersim.lab")

#: The lab's own trace file in the trace directory (hence no member may be called "lab").
LAB_TRACE_NAME = "lab.jsonl"

#: Seconds :meth:`Lab.stop_all` waits for graceful exits before it kills what is left;
#: above the elector's 5-s release timeout.
DEFAULT_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_DURATIONS = ("lease_duration", "renew_interval", "renew_deadline")
#: Seconds the lab waits for a scenario's members to be ready before the run starts.
READY_TIMEOUT = 60.0


async def _hold_leadership() -> None:
    """The lab's leader callback without a workload: lead, doing nothing, until cancelled."""
    await asyncio.Event().wait()


@contextlib.contextmanager
def _trace_sink(path: str | Path | None) -> Iterator[IO[str] | None]:
    """The trace file, line-buffered (and flushed per event by the recorder), or None.

    A killed member thus leaves every event it has reported. Opened synchronously: the
    recorder writes synchronously too, by design.
    """
    if path is None:
        yield None
        return
    with open(path, "a", encoding="utf-8", buffering=1) as sink:
        yield sink


#: What a member started with ``wait_for_go`` logs when it is ready to start its election.
READY_MARK = "ready, waiting for the lab's go"
#: Keys of a member's ``callback`` settings (the scenario's built-in workload).
CALLBACK_KEYS = ("stop_latency", "writes_per_s", "prepare_s", "raise_after_s")


@dataclasses.dataclass(frozen=True)
class MemberSettings:
    """Everything one member process needs, as one object (JSON for ``leadersim member``).

    Attributes:
        id: The member's id.
        db: The shared SQLite file (created if missing); or give ``url``.
        url: A database URL (``postgresql+asyncpg://user@host/db`` ...) instead of ``db``
            (needs the ``[server]`` extra).
        lease_duration: Lease in seconds.
        renew_interval: Seconds between renew rounds.
        renew_deadline: Seconds one renew round may retry.
        config: Further :class:`~leadersim.Config` fields (``exit_on_renew_fail``,
            ``stop_before_release``, ``callback_failure_backoff`` ...): a scenario's
            ``config`` and ``nodes_config`` entries beyond the three durations.
        table: The election table; guarded writes go to ``<table>_writes``.
        seed: Seed of the elector's retry jitter (an int, or a string such as the
            simulator's ``"0:jitter:n1:0"``); ``None``: unseeded.
        trace: JSON-lines file the trace is appended to (one flushed line per event);
            ``None`` for no trace.
        callback: The leader workload (keys of :data:`CALLBACK_KEYS`, seconds and writes
            per second, as a scenario's ``callback``); ``None``: lead, doing nothing.
        fencing: Whether the workload's writes are fenced (``txn_with_leader_lock``).
        trace_storage: Whether every storage operation is traced (``storage_op`` with
            ``sent_at``/``arrived_at``/``replied_at``) through a
            :class:`~leadersim.storage.FaultyStorage`, which also takes storage faults.
        control: Whether the member reads control messages (JSON lines) on stdin; end
            of input then stops it gracefully (what the lab's members do, so that a dead
            lab leaves no member behind).
        wait_for_go: Get everything ready (imports, database, workload), log
            :data:`READY_MARK`, then wait for the control message ``{"op": "go"}``
            before the election starts: so the lab can start members at exact instants
            although starting a process takes a while. Needs ``control``.
    """

    id: str
    db: str | None = None
    url: str | None = None
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_interval: float = DEFAULT_RENEW_INTERVAL
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    table: str = TABLE_NAME_ELECTION
    seed: int | str | None = None
    trace: str | None = None
    callback: Mapping[str, Any] | None = None
    fencing: bool = False
    trace_storage: bool = True
    control: bool = False
    wait_for_go: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise ConfigError(f"member settings: id must be a string, got {self.id!r}")
        if (self.db is None) == (self.url is None):
            raise ConfigError(f"member settings of {self.id!r}: give db or url, exactly one")
        for key in ("lease_duration", "renew_interval", "renew_deadline"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"member settings: {key} must be seconds, got {value!r}")
        if self.callback is not None:
            unknown = sorted(set(self.callback) - set(CALLBACK_KEYS))
            if unknown:
                raise ConfigError(
                    f"member settings: callback key(s) {unknown}; allowed: {list(CALLBACK_KEYS)}"
                )
        if self.wait_for_go and not self.control:
            raise ConfigError("member settings: wait_for_go needs control (the go comes on stdin)")
        reserved = sorted(set(self.config) & _RESERVED_CONFIG)
        if reserved:
            raise ConfigError(
                f"member settings: config may not set {reserved}: they are the member's own"
            )

    def to_json(self) -> str:
        """The settings as one JSON object (what ``leadersim member --settings`` takes)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MemberSettings:
        """Parse :meth:`to_json`'s form (unknown keys are errors).

        Raises:
            ConfigError: not a JSON object, an unknown or missing key, a bad value.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"member settings are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"member settings must be a JSON object, got {data!r}")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"member settings: unknown key(s) {unknown}; allowed: {fields}")
        if "id" not in data:
            raise ConfigError("member settings need an 'id'")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"member settings: {exc}") from None


_RESERVED_CONFIG = frozenset(
    {"id", "name", "address", "storage", "leader_callback"}
    | {"lease_duration", "renew_interval", "renew_deadline"}
)
_WRITES_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    "node VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, "
    "sent_at DOUBLE PRECISION NOT NULL, fenced INTEGER NOT NULL)"
)
_WRITES_INSERT = (
    "INSERT INTO {table} (node, seq, sent_at, fenced) VALUES (:node, :seq, :sent_at, :fenced)"
)


def writes_table(table: str) -> str:
    """The table the leader workload writes to: ``<table>_writes``, beside the record."""
    return f"{table}_writes"


class _GuardedWrites:
    """The leader workload's writes into ``<table>_writes`` of the member's database.

    Like the simulator's protected resource, these writes are separate from the election
    record's traffic: they go over a storage connection of their own, which the member's
    storage faults do not touch, and a write once sent completes even if the work is
    cancelled meanwhile (it is in flight). Each write is traced as a ``guarded_write``
    event with the simulator's details. Whether a write is stale is decided by
    ``txn_with_leader_lock``: it checks, in the write's own transaction, that the stored
    record names the writer. Fenced, a stale write is rejected; unfenced it is then
    inserted anyway, in a transaction of its own (its ``leader_id`` is read just after
    the check).
    """

    def __init__(
        self,
        target: str,
        node: str,
        *,
        db: str | None,
        table: str,
        fencing: bool,
        observer: Observer,
    ) -> None:
        self._target = target
        self._node = node
        self._db = db
        self._election_table = table
        self._table = writes_table(table)
        self._fencing = fencing
        self._observer = observer
        self._storage: Any = None  # its own SQLStorage / ORMStorage
        self._conn: Any = None  # a SQLite connection for unfenced stale inserts
        self._in_flight: set[asyncio.Task[bool]] = set()

    async def open(self) -> None:
        """Connect, and create the writes table if it is missing (races are fine)."""
        self._storage = await open_storage(self._target, self._election_table)
        ddl = _WRITES_DDL.format(table=self._table)
        if self._db is not None:
            import aiosqlite

            self._conn = await aiosqlite.connect(self._db, timeout=10.0, isolation_level=None)
            await self._conn.execute(ddl)
            return
        import sqlalchemy as sa

        engine = self._storage.engine
        for attempt in range(3):
            try:
                async with engine.begin() as conn:
                    await conn.execute(sa.text(ddl))
                return
            except sa.exc.DBAPIError:
                # Two members creating it at once: one of them loses; the table exists.
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Let the writes in flight land (briefly), then close the connections."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=5.0)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._storage is not None:
            await self._storage.close()
            self._storage = None

    async def write(self, seq: int) -> bool:
        """Send guarded write number ``seq``; returns whether it was accepted.

        Cancelling the caller does not take the write back: it lands and is traced.
        """
        task = asyncio.ensure_future(self._write(seq))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def _write(self, seq: int) -> bool:
        sent_at = time.monotonic()
        row = {"node": self._node, "seq": seq, "sent_at": sent_at, "fenced": int(self._fencing)}
        insert = _WRITES_INSERT.format(table=self._table)
        try:
            try:
                await self._storage.txn_with_leader_lock(
                    self._node, lambda conn: _execute(conn, insert, row)
                )
                accepted, stale, leader = True, False, self._node
            except NotLeaderError:
                stale = True
                leader = (await self._storage.get()).leader_id
                accepted = not self._fencing
                if accepted:
                    await self._insert(insert, row)
        except StorageError as exc:
            # The database refused (busy, gone): the write did not happen; no harm to trace.
            _logger.warning("%s: guarded write %d failed: %s", self._node, seq, exc)
            return False
        details: dict[str, Scalar] = {
            "seq": seq,
            "accepted": accepted,
            "stale": stale,
            "fencing": self._fencing,
            "leader_id": leader,
            "sent_at": sent_at,
        }
        self._observer(self._node, time.monotonic(), EventKind.GUARDED_WRITE, details)
        return accepted

    async def _insert(self, insert: str, row: dict[str, Any]) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(insert, row)
            except sqlite3.Error as exc:
                raise StorageError(f"{self._table}: {exc}") from exc
            return
        import sqlalchemy as sa

        try:
            async with self._storage.engine.begin() as conn:
                await conn.execute(sa.text(insert), row)
        except sa.exc.DBAPIError as exc:
            raise StorageError(f"{self._table}: {exc}") from exc


async def _execute(conn: Any, statement: str, params: dict[str, Any]) -> None:
    """Run ``statement`` on the connection a leader transaction hands out.

    That is an ``aiosqlite`` connection for a SQLite file, a SQLAlchemy
    ``AsyncConnection`` for a server; both take ``:name`` parameters.
    """
    if type(conn).__module__.startswith("sqlalchemy"):
        import sqlalchemy as sa

        await conn.execute(sa.text(statement), params)
    else:
        await conn.execute(statement, params)


class _QuietFaults:
    """The member's observer, minus the fault starts the lab has already traced.

    When the lab re-sends a storage fault to a restarted member (a fault is the
    database's or the network's, so it outlives the process), its start is in the trace
    already: the repeat is dropped.
    """

    def __init__(self, observer: Observer) -> None:
        self._observer = observer
        self.quiet: set[int] = set()

    def __call__(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        if kind is EventKind.FAULT_START and details.get("fault") in self.quiet:
            self.quiet.discard(int(details["fault"]))  # type: ignore[arg-type]
            return
        self._observer(node, local_time, kind, details)


async def serve_member(settings: MemberSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run one election member until ``stop`` is set, it is cancelled, or its input ends.

    Stopping is graceful: the elector releases its lease and stops its leader callback
    (the workload keeps writing, unchecked, for its ``stop_latency``) before this
    returns (or re-raises the cancellation).

    Args:
        settings: What to run (see :class:`MemberSettings`).
        stop: Set it to stop the member; by default it runs until cancelled (or, with
            ``settings.control``, until stdin ends).

    Raises:
        ConfigError: invalid id, durations, table name, URL or callback.
        StorageError: the database could not be opened.
    """
    stop = stop if stop is not None else asyncio.Event()
    target = settings.url if settings.url is not None else settings.db
    assert target is not None  # MemberSettings checks it
    storage = await open_storage(target, settings.table)
    writes: _GuardedWrites | None = None
    used: Storage = storage
    try:
        with _trace_sink(settings.trace) as sink:
            recorder = TraceRecorder(true_clock=time.monotonic, sink=sink, keep=False)
            observer = _QuietFaults(recorder)
            faulty: FaultyStorage | None = None
            if settings.trace_storage:
                faulty = FaultyStorage(storage, node=settings.id, observer=observer)
                used = faulty
            holder: list[Elector] = []
            callback: Callable[[], Awaitable[None]] = _hold_leadership
            spec = dict(settings.callback or {})
            if settings.callback is not None:
                if float(spec.get("writes_per_s", 1.0)) > 0:
                    writes = _GuardedWrites(
                        str(target),
                        settings.id,
                        db=settings.db,
                        table=settings.table,
                        fencing=settings.fencing,
                        observer=recorder,
                    )
                    await writes.open()
                callback = leader_workload(
                    node=settings.id,
                    clock=RealClock(),
                    is_leader=lambda: holder[0].is_leader(),
                    write=writes.write if writes is not None else _no_write,
                    stop_latency=float(spec.get("stop_latency", 0.1)),
                    writes_per_s=float(spec.get("writes_per_s", 1.0)),
                    prepare_s=float(spec.get("prepare_s", 1.0)),
                    raise_after_s=spec.get("raise_after_s"),
                )
            config = Config(
                id=settings.id,
                name=settings.id,
                address=f"pid {os.getpid()}",
                storage=used,
                leader_callback=callback,
                lease_duration=settings.lease_duration,
                renew_interval=settings.renew_interval,
                renew_deadline=settings.renew_deadline,
                **settings.config,
            )
            seed = settings.seed
            elector = Elector(
                config,
                observer=recorder,
                rng=random.Random(seed) if isinstance(seed, str) else None,
                seed=seed if isinstance(seed, int) else None,
            )
            holder.append(elector)
            control: asyncio.Task[None] | None = None
            go = asyncio.Event()
            if settings.control:
                control = asyncio.create_task(_read_control(elector, faulty, observer, stop, go))
            try:
                if settings.wait_for_go:
                    _logger.info("%s: %s", settings.id, READY_MARK)
                    await _first(go, stop)
                if not stop.is_set():
                    await _run_until_stopped(elector, stop)
            finally:
                if control is not None:
                    control.cancel()
                    await asyncio.gather(control, return_exceptions=True)
    finally:
        if writes is not None:
            await writes.close()
        close = getattr(used, "close", None)
        if close is not None:
            await close()


async def _no_write(seq: int) -> bool:
    return False


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _read_control(
    elector: Elector,
    faulty: FaultyStorage | None,
    observer: _QuietFaults,
    stop: asyncio.Event,
    go: asyncio.Event,
) -> None:
    """Obey the lab's control messages on stdin until it ends, then stop the member.

    One JSON object per line: ``{"op": "go"}`` (start the election, see
    ``wait_for_go``), ``{"op": "start_fault", "fault": N, "kind": K, "params": {...},
    "traced": true}``, ``{"op": "end_fault", "fault": N}``, ``{"op": "resign",
    "duration": S}``, ``{"op": "stop"}``. A bad message is logged and skipped.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    resigns: set[asyncio.Task[None]] = set()
    try:
        while line := await reader.readline():
            try:
                message = json.loads(line)
                op = message["op"]
                if op == "stop":
                    break
                if op == "go":
                    go.set()
                    continue
                if op == "resign":
                    task = asyncio.create_task(
                        _resign_quietly(elector, float(message.get("duration") or 0.0))
                    )
                    resigns.add(task)
                    task.add_done_callback(resigns.discard)
                elif op in ("start_fault", "end_fault"):
                    if faulty is None:
                        raise ValueError("storage faults need trace_storage (a FaultyStorage)")
                    index = int(message["fault"])
                    if op == "end_fault":
                        faulty.end_fault(index)
                    else:
                        if not message.get("traced", True):
                            observer.quiet.add(index)
                        faulty.start_fault(
                            index,
                            message["kind"],
                            message.get("params") or {},
                            target=message.get("target"),
                        )
                else:
                    raise ValueError(f"unknown op {op!r}")
            except Exception as exc:  # a bad message must not kill the member
                _logger.error("%s: bad control message %r: %s", elector.id, line, exc)
    finally:
        transport.close()
        stop.set()


async def _resign_quietly(elector: Elector, duration: float) -> None:
    try:
        await elector.resign_leader(duration)
    except Exception as exc:  # the trace shows what happened; a failed resign is data
        _logger.warning("%s: resign failed: %s", elector.id, exc)


async def _run_until_stopped(elector: Elector, stop: asyncio.Event) -> None:
    election = asyncio.create_task(elector.run_election(), name=f"leadersim-member-{elector.id}")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({election, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Reached on a stop request, on an election that ended by itself, and when this
        # coroutine is cancelled: the election is cancelled (it releases) and awaited.
        stopping.cancel()
        election.cancel()
        await asyncio.wait({election})
    if not election.cancelled() and (error := election.exception()) is not None:
        raise error


def run_member(settings: MemberSettings) -> None:
    """Run one member in this process until ``SIGTERM``, ``SIGINT`` (or end of stdin).

    The process entry of ``leadersim member``; see :func:`serve_member`. Returns after a
    graceful stop.

    Raises:
        ConfigError: invalid id, durations, table name or callback.
        StorageError: the database could not be opened.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_member(settings, stop=stop)

    asyncio.run(main())


# How the lab's signals read as faults in a trace: (fault kind, start or end).
_SIGNAL_FAULTS: dict[int, tuple[str, EventKind]] = {
    signal.SIGKILL: ("crash", EventKind.FAULT_START),
    signal.SIGTERM: ("cancel", EventKind.FAULT_START),
    signal.SIGINT: ("cancel", EventKind.FAULT_START),
    signal.SIGSTOP: ("pause", EventKind.FAULT_START),
    signal.SIGCONT: ("pause", EventKind.FAULT_END),
}

#: How long (seconds) the lab keeps trying to stop a member outside SQLite's write lock
#: before it leaves it stopped holding the lock (see :func:`stop_member_process`).
STOP_CLEAR_OF_LOCK_FOR = 0.25


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of process ``pid`` (Linux's ``/proc/<pid>/stat``).

    ``R`` running, ``S`` sleeping, ``T`` stopped by a signal, ``Z`` a zombie waiting to
    be reaped, and so on; ``None`` when it cannot be read (no such process, or no
    ``/proc``).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name in parentheses may hold spaces and parentheses: the state follows the last.
    return stat.rpartition(")")[2].split()[0]


def _is_stopped(pid: int) -> bool:
    """Whether the kernel has stopped ``pid`` (without ``/proc``, assume so)."""
    state = process_state(pid)
    return state is None or state in ("T", "t", "Z", "X")


def holds_sqlite_write_lock(pid: int, db_path: str | Path) -> bool:
    """Whether process ``pid`` holds an exclusive lock on a SQLite file or its ``-shm``.

    SQLite's writer takes its locks as POSIX record locks, which Linux lists in
    ``/proc/locks`` with the holder's pid: a ``WRITE`` lock on the database file (rollback
    journal) or on its shared-memory file (WAL: the write, checkpoint and recovery locks)
    stalls every other writer until it is released. Where there is no ``/proc/locks``
    this says ``False``.
    """
    inodes: set[tuple[int, int, int]] = set()
    for path in (Path(db_path), Path(f"{db_path}-shm")):
        with contextlib.suppress(OSError):
            st = path.stat()
            inodes.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # "N: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END"; "N: -> ..." is a waiter.
        if len(fields) < 8 or fields[1] == "->" or fields[3] != "WRITE":
            continue
        try:
            holder = int(fields[4])
            major, minor, inode = fields[5].split(":")
            where = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if holder == pid and where in inodes:
            return True
    return False


def stop_member_process(
    process: subprocess.Popen[bytes], db_path: str | Path | None
) -> dict[str, Scalar]:
    """``SIGSTOP`` a member; on a SQLite file, at an instant it holds no write lock.

    On SQLite the member process *is* the database engine: stopped inside a commit, it
    keeps the file's write lock and every other member stalls on it, a database outage
    rather than the pause of one member that a scenario's ``pause`` means (a database
    server finishes a paused client's statement). So when the stopped process holds the
    lock (:func:`holds_sqlite_write_lock`), the lab lets it run for a millisecond and
    stops it again, for up to :data:`STOP_CLEAR_OF_LOCK_FOR` seconds. Returns what the
    fault's trace event adds: ``lock_retries`` (how many times it was let go on), and
    ``holds_write_lock`` if it is left stopped holding the lock all the same.
    """
    process.send_signal(signal.SIGSTOP)
    if db_path is None:
        return {}
    retries = 0
    give_up_at = time.monotonic() + STOP_CLEAR_OF_LOCK_FOR
    while True:
        settle_by = time.monotonic() + 0.1
        while not _is_stopped(process.pid) and time.monotonic() < settle_by:
            time.sleep(0.0002)
        if not holds_sqlite_write_lock(process.pid, db_path):
            return {"lock_retries": retries} if retries else {}
        if time.monotonic() >= give_up_at:
            return {"lock_retries": retries, "holds_write_lock": True}
        retries += 1
        process.send_signal(signal.SIGCONT)
        time.sleep(0.001)
        process.send_signal(signal.SIGSTOP)


class LabError(LeadersimError, RuntimeError):
    """Something the lab waited for did not happen; the message shows the members' state."""


@dataclasses.dataclass(frozen=True, slots=True)
class Failover:
    """What :meth:`Lab.kill_leader_and_watch` saw: a leader killed, and who took over.

    Every time is host monotonic seconds (the members' trace clock).

    Attributes:
        leader: The member that led and was killed.
        elected: Its ``callback_started`` event (``true_time``: when it began to lead).
        killed_at: When the ``SIGKILL`` was sent.
        last_renewal: Its last successful renewal (it renewed at least once: the
            routine waits for that before the kill).
        successor: The ``callback_started`` event of the member that led next.
    """

    leader: str
    elected: TraceEvent
    killed_at: float
    last_renewal: float
    successor: TraceEvent

    @property
    def failover_s(self) -> float:
        """Seconds from the kill to the successor's callback start."""
        return self.successor.true_time - self.killed_at

    @property
    def since_last_renewal_s(self) -> float:
        """Seconds from the killed leader's last renewal to the successor's start."""
        return self.successor.true_time - self.last_renewal


class Lab:
    """Election members as OS processes on one SQLite file, with their merged trace.

    Use it as a context manager (or call :meth:`close`): leaving it stops every member
    gracefully and kills whichever does not exit in time, so no process outlives it.

    Args:
        db_path: The shared SQLite file (its directory must exist).
        node_ids: Ids of the members :meth:`start` spawns by default.
        lease_duration: Lease in seconds, for every member.
        renew_interval: Seconds between renew rounds.
        renew_deadline: Seconds one renew round may retry.
        trace_dir: Where ``<node>.jsonl`` (trace), ``<node>.log`` (output) and the lab's
            ``lab.jsonl`` (run start, injected faults) go; defaults to the database's
            directory.
        table_name: The election table.
        seed: Member ``i`` (0-based, in ``node_ids`` order) uses jitter seed ``seed + i``.
        url: A database URL (PostgreSQL, MariaDB/MySQL) the members use instead of the
            SQLite file; ``db_path`` then only anchors the default ``trace_dir``.
        config: Further elector config fields for every member (``exit_on_renew_fail``
            ...), as a scenario's ``config``.
        nodes_config: Per-member config overrides (the three durations included), as a
            scenario's ``nodes_config``.
        callback: The members' leader workload (:data:`CALLBACK_KEYS`); ``None``: they
            lead doing nothing.
        fencing: Whether the workload's writes are fenced.
        trace_storage: Whether members trace every storage operation (and can take
            storage faults); on by default.

    Raises:
        ValueError: a member is called ``lab`` (the name of the lab's own trace file).
    """

    def __init__(
        self,
        db_path: str | Path,
        node_ids: Iterable[str] = ("n1", "n2", "n3"),
        *,
        lease_duration: float = DEFAULT_LEASE_DURATION,
        renew_interval: float = DEFAULT_RENEW_INTERVAL,
        renew_deadline: float = DEFAULT_RENEW_DEADLINE,
        trace_dir: str | Path | None = None,
        table_name: str = TABLE_NAME_ELECTION,
        seed: int = 0,
        url: str | None = None,
        config: Mapping[str, Any] | None = None,
        nodes_config: Mapping[str, Mapping[str, Any]] | None = None,
        callback: Mapping[str, Any] | None = None,
        fencing: bool = False,
        trace_storage: bool = True,
    ) -> None:
        self.db_path = Path(db_path)
        self.url = url
        self.node_ids = list(node_ids)
        for node_id in self.node_ids:
            _check_member_id(node_id)
        self.lease_duration = float(lease_duration)
        self.renew_interval = float(renew_interval)
        self.renew_deadline = float(renew_deadline)
        self.trace_dir = Path(trace_dir) if trace_dir is not None else self.db_path.parent
        self.table_name = table_name
        self.seed = seed
        self.config = dict(config or {})
        self.nodes_config = {n: dict(c) for n, c in (nodes_config or {}).items()}
        self.callback = dict(callback) if callback is not None else None
        self.fencing = fencing
        self.trace_storage = trace_storage
        # The simulator's seed rule for jitter ("seed:jitter:node:incarnation"), set by
        # run_scenario so a lab run and a simulated one draw alike; else seed + index.
        self._sim_seeds = False
        self._raise_on: tuple[str, ...] = ()
        self._scenario_name = ""
        self._run_origin = 0.0
        self._incarnations: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Every process id this lab has spawned, restarts included (to check none is left).
        self.pids: list[int] = []
        self._log_offsets: dict[str, int] = {}
        self._logs: dict[str, IO[bytes]] = {}
        # What the lab itself does to its members (the run's start, signals, restarts) is
        # written to lab.jsonl as it happens, in the simulator's fault schema, so that the
        # saved directory alone tells the whole story (no verdict depends on this object).
        self._lab_trace: IO[str] | None = None
        self._faults = 0
        self._open_pauses: dict[str, int] = {}

    # ------------------------------------------------------------------ paths

    def trace_path(self, node_id: str) -> Path:
        """The JSON-lines trace file of ``node_id``."""
        return self.trace_dir / f"{node_id}.jsonl"

    def log_path(self, node_id: str) -> Path:
        """The file collecting ``node_id``'s stdout and stderr."""
        return self.trace_dir / f"{node_id}.log"

    @property
    def lab_trace_path(self) -> Path:
        """The lab's own JSON-lines trace: the run's start and every injected fault."""
        return self.trace_dir / LAB_TRACE_NAME

    def _record(
        self,
        kind: EventKind,
        node: str,
        details: dict[str, Scalar],
        at: float | None = None,
    ) -> TraceEvent:
        """Write one event of the lab's to ``lab.jsonl`` (flushed: a crash loses none)."""
        if self._lab_trace is None or self._lab_trace.closed:
            raise LabError("the lab's trace is not open: start() opens it, close() ends it")
        now = time.monotonic() if at is None else at
        event = TraceEvent(now, node, now, kind, details)
        self._lab_trace.write(json.dumps(event.to_dict()) + "\n")
        self._lab_trace.flush()
        return event

    def _record_fault(
        self,
        node: str,
        kind: str,
        sig: str | None,
        at: float,
        extra: Mapping[str, Scalar] | None = None,
    ) -> int:
        """Record the start of an injected fault; returns its number."""
        index = self._faults
        self._faults += 1
        details: dict[str, Scalar] = {"fault": index, "kind": kind}
        if sig is not None:
            details["signal"] = sig
        details.update(extra or {})
        self._record(EventKind.FAULT_START, node, details, at)
        return index

    def _begin_run(self) -> None:
        """Open a fresh ``lab.jsonl`` and write the run's start: its time origin."""
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self._lab_trace = open(self.lab_trace_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        started = self._record(
            EventKind.RUN_STARTED,
            "",
            {
                "source": "lab",
                "clock": "CLOCK_MONOTONIC",
                "nodes": ",".join(self.node_ids),
                "lease_duration": self.lease_duration,
                "renew_interval": self.renew_interval,
                "renew_deadline": self.renew_deadline,
                "table": self.table_name,
                "seed": self.seed,
                **({"scenario": self._scenario_name} if self._scenario_name else {}),
            },
        )
        self._run_origin = started.true_time

    # ------------------------------------------------------------------ processes

    def start(self, *node_ids: str) -> None:
        """Spawn the given members (default: all of :attr:`node_ids` not running).

        The lab's first start begins the run: a fresh ``lab.jsonl`` with a
        ``run_started`` event. A member started for the first time gets a fresh trace
        file; a restarted one appends to its trace, and the restart is recorded as a
        ``restart`` fault.

        Raises:
            ValueError: a member is already running, or is called ``lab``.
        """
        for node_id in node_ids or [n for n in self.node_ids if not self.is_running(n)]:
            _check_member_id(node_id)
            if self.is_running(node_id):
                raise ValueError(f"member {node_id!r} is already running")
            if self._lab_trace is None:
                self._begin_run()
            if node_id not in self.node_ids:
                self.node_ids.append(node_id)
            first_start = node_id not in self.processes
            if first_start:
                self.trace_path(node_id).unlink(missing_ok=True)
            else:
                self._record_fault(node_id, "restart", None, time.monotonic())
            self._spawn(node_id)

    def settings_for(self, node_id: str, *, wait_for_go: bool = False) -> MemberSettings:
        """The :class:`MemberSettings` the lab starts ``node_id``'s next process with."""
        merged = {
            "lease_duration": self.lease_duration,
            "renew_interval": self.renew_interval,
            "renew_deadline": self.renew_deadline,
            **self.config,
            **self.nodes_config.get(node_id, {}),
        }
        lease, interval, deadline = (float(merged.pop(k)) for k in _DURATIONS)
        incarnation = self._incarnations.get(node_id, 0)
        seed: int | str
        if self._sim_seeds:
            seed = f"{self.seed}:jitter:{node_id}:{incarnation}"
        else:
            seed = self.seed + self.node_ids.index(node_id)
        callback = self.callback
        if callback is not None and self._raise_on and node_id not in self._raise_on:
            callback = {k: v for k, v in callback.items() if k != "raise_after_s"}
        return MemberSettings(
            id=node_id,
            db=None if self.url else str(self.db_path),
            url=self.url,
            config=merged,
            table=self.table_name,
            seed=seed,
            trace=str(self.trace_path(node_id)),
            callback=callback,
            fencing=self.fencing,
            trace_storage=self.trace_storage,
            control=True,
            wait_for_go=wait_for_go,
            lease_duration=lease,
            renew_interval=interval,
            renew_deadline=deadline,
        )

    def _spawn(self, node_id: str, *, wait_for_go: bool = False) -> None:
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        old_log = self._logs.pop(node_id, None)
        if old_log is not None:
            old_log.close()
        log = self._logs[node_id] = open(self.log_path(node_id), "ab")  # noqa: SIM115
        self._log_offsets[node_id] = log.tell()
        settings = self.settings_for(node_id, wait_for_go=wait_for_go)
        self._incarnations[node_id] = self._incarnations.get(node_id, 0) + 1
        command = [sys.executable, "-m", "leadersim", "member", "--settings", settings.to_json()]
        old = self.processes.get(node_id)
        if old is not None and old.stdin is not None:
            old.stdin.close()
        # stdin is the control channel: the member stops gracefully when it ends, so a
        # lab that dies (even by SIGKILL) leaves no running member behind.
        self.processes[node_id] = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=_env()
        )
        self.pids.append(self.processes[node_id].pid)

    def wait_ready(self, node_ids: Iterable[str], timeout: float) -> None:
        """Wait until members spawned with ``wait_for_go`` have logged :data:`READY_MARK`.

        Raises:
            LabError: one exited first, or not all were ready within ``timeout`` seconds.
        """
        waiting = set(node_ids)
        give_up_at = time.monotonic() + timeout
        while waiting:
            for node_id in sorted(waiting):
                with open(self.log_path(node_id), "rb") as log:
                    log.seek(self._log_offsets.get(node_id, 0))
                    if READY_MARK.encode() in log.read():
                        waiting.discard(node_id)
                    elif not self.is_running(node_id):
                        raise LabError(
                            f"member {node_id!r} exited before it was ready\n{self.describe()}"
                        )
            if waiting and time.monotonic() >= give_up_at:
                raise LabError(
                    f"members {sorted(waiting)} not ready within {timeout:g} s\n{self.describe()}"
                )
            if waiting:
                time.sleep(_POLL_INTERVAL)

    def send(self, node_id: str, message: Mapping[str, Any]) -> bool:
        """Send one control message (a JSON object) to ``node_id``'s running process.

        Returns:
            Whether it was written (``False``: the member is not running).
        """
        process = self.processes.get(node_id)
        if process is None or process.poll() is not None or process.stdin is None:
            return False
        try:
            process.stdin.write((json.dumps(dict(message)) + "\n").encode())
            process.stdin.flush()
        except (BrokenPipeError, ValueError):  # it died meanwhile, or the pipe is closed
            return False
        return True

    def is_running(self, node_id: str) -> bool:
        """Whether ``node_id``'s process exists and has not exited."""
        process = self.processes.get(node_id)
        return process is not None and process.poll() is None

    @property
    def _sqlite_file(self) -> Path | None:
        """The members' SQLite file, or ``None`` when they use a database server."""
        return None if self.url else self.db_path

    def pid(self, node_id: str) -> int:
        """The process id of ``node_id``'s latest process."""
        return self.processes[node_id].pid

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` to a member's process; returns the host monotonic time just before.

        ``SIGKILL`` is a crash (no release), ``SIGTERM`` a graceful stop, ``SIGSTOP`` /
        ``SIGCONT`` a pause and its end. Each is written to ``lab.jsonl`` as a fault
        (``crash``, ``cancel``, ``pause`` start and end) at the returned time. After a
        ``SIGKILL`` this waits for the process to be gone, so that its trace file is
        complete: if its callback was running, a ``callback_stopped`` (reason
        ``crashed``) is recorded at the kill.

        Raises:
            LabError: the member is not running, or a ``SIGKILL`` did not end it within
                :data:`DEFAULT_STOP_TIMEOUT` seconds.
        """
        process = self.processes.get(node_id)
        if process is None or process.poll() is not None:
            raise LabError(f"member {node_id!r} is not running\n{self.describe()}")
        return self._signal(node_id, process, sig)

    def _signal(self, node_id: str, process: subprocess.Popen[bytes], sig: int) -> float:
        """Send ``sig`` and record it as the fault it is (see :meth:`kill`)."""
        name = signal.Signals(sig).name
        kind, phase = _SIGNAL_FAULTS.get(sig, ("signal", EventKind.FAULT_START))
        sent_at = time.monotonic()
        extra: dict[str, Scalar] = {}
        if sig == signal.SIGSTOP:
            extra = stop_member_process(process, self._sqlite_file)
        else:
            process.send_signal(sig)
        if phase is EventKind.FAULT_END:
            # SIGCONT ends this member's open pause; to a running process it is a no-op.
            index = self._open_pauses.pop(node_id, None)
            if index is not None:
                details: dict[str, Scalar] = {"fault": index, "kind": kind, "signal": name}
                self._record(EventKind.FAULT_END, node_id, details, sent_at)
            return sent_at
        index = self._record_fault(node_id, kind, name, sent_at, extra)
        if kind == "pause":
            self._open_pauses[node_id] = index
        elif kind == "crash":
            self._open_pauses.pop(node_id, None)
            self._reap_killed(node_id, process, sent_at)
        return sent_at

    def _reap_killed(self, node_id: str, process: subprocess.Popen[bytes], sent_at: float) -> None:
        """Wait for a SIGKILLed process to be gone; end its running callback at the kill."""
        try:
            process.wait(DEFAULT_STOP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise LabError(
                f"member {node_id!r} still runs {DEFAULT_STOP_TIMEOUT:g} s after SIGKILL"
            ) from exc
        self._record_crashed_callback(node_id, sent_at)

    def _record_crashed_callback(self, node_id: str, killed_at: float) -> None:
        """After a kill, end the dead member's running callback in the trace, at the kill.

        The process is gone, so its trace file is complete. An event it stamped between
        the lab's clock reading and the signal's delivery would be later than the kill;
        the stop is then put just after that event, never before what it ends.
        """
        path = self.trace_path(node_id)
        own = read_jsonl(path) if path.exists() else []
        # Its own events and the lab's about it (an earlier crash's stop is in lab.jsonl),
        # merged as read_trace merges them; the other members' files are not read.
        started: TraceEvent | None = None
        files = sorted(p for p in (path, self.lab_trace_path) if p.exists())
        for event in read_jsonl(files):
            if event.node != node_id:
                continue
            if event.kind is EventKind.CALLBACK_STARTED:
                started = event
            elif event.kind is EventKind.CALLBACK_STOPPED:
                started = None
        if started is None:
            return
        at = max(killed_at, math.nextafter(own[-1].true_time, math.inf)) if own else killed_at
        details: dict[str, Scalar] = {"reason": "crashed", "error": None}
        if "incarnation" in started.details:
            details["incarnation"] = started.details["incarnation"]
        self._record(EventKind.CALLBACK_STOPPED, node_id, details, at)

    def wait(self, node_id: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """Wait for a member's process to exit and return its exit code.

        Raises:
            subprocess.TimeoutExpired: it did not exit within ``timeout`` seconds.
        """
        return self.processes[node_id].wait(timeout)

    def stop_all(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> dict[str, int]:
        """Stop every running member gracefully; kill those still running after ``timeout``.

        Paused members are resumed so that they can handle the stop request. Like
        :meth:`kill`, the signals are written to ``lab.jsonl`` (``cancel``, the end of a
        pause, and ``crash`` for a member that had to be killed).

        Returns:
            Each member's exit code (negative: the signal that ended it; ``-9`` for one
            this call or an earlier ``SIGKILL`` killed).
        """
        for node_id, process in self.processes.items():
            if process.poll() is None:
                self._signal(node_id, process, signal.SIGTERM)
                self._signal(node_id, process, signal.SIGCONT)
        give_up_at = time.monotonic() + timeout
        for node_id, process in self.processes.items():
            try:
                process.wait(max(0.0, give_up_at - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(node_id, process, signal.SIGKILL)
        return {node_id: process.wait() for node_id, process in self.processes.items()}

    def close(self) -> None:
        """Stop every member (see :meth:`stop_all`) and close the log and trace files.

        Leaves no member process behind: if the graceful stop itself fails (a signal
        refused, an interrupt), whatever still runs is killed and reaped.
        """
        try:
            self.stop_all()
        finally:
            for process in self.processes.values():
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                process.wait()
                if process.stdin is not None:
                    with contextlib.suppress(OSError):
                        process.stdin.close()
            for log in self._logs.values():
                log.close()
            self._logs.clear()
            if self._lab_trace is not None:
                self._lab_trace.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ traces

    def read_trace(self) -> list[TraceEvent]:
        """The run's trace so far: the members' files and ``lab.jsonl``, merged.

        Merged as :func:`~leadersim.trace.read_trace_dir` merges a directory (files in
        name order, then by true time), so the saved directory read back gives this very
        list. Includes what the lab did (the run's start, signals as
        ``fault_start``/``fault_end``, restarts, and the ``callback_stopped`` of a
        member killed while it acted).
        """
        paths = [self.trace_path(n) for n in self.node_ids] + [self.lab_trace_path]
        return read_jsonl(sorted(p for p in paths if p.exists()))

    def wait_for_event(
        self,
        kind: EventKind,
        *,
        nodes: Iterable[str] | None = None,
        after: float = -math.inf,
        timeout: float,
    ) -> TraceEvent:
        """Wait for the first event of ``kind`` on one of ``nodes`` later than ``after``.

        Args:
            kind: The event kind.
            nodes: Members to watch (default: all).
            after: Only events with a larger ``true_time`` (host monotonic seconds) count.
            timeout: Seconds to wait.

        Raises:
            LabError: no such event within ``timeout``.
        """
        watched = set(self.node_ids if nodes is None else nodes)
        give_up_at = time.monotonic() + timeout
        while True:
            for event in self.read_trace():
                if event.kind is kind and event.node in watched and event.true_time > after:
                    return event
            if time.monotonic() >= give_up_at:
                raise LabError(
                    f"no {kind.value} event on {sorted(watched)} within {timeout:g} s\n"
                    f"{self.describe()}"
                )
            time.sleep(_POLL_INTERVAL)

    def kill_leader_and_watch(
        self,
        *,
        hold: float = 0.0,
        startup_timeout: float = 30.0,
        timeout: float | None = None,
        before_kill: Callable[[TraceEvent], None] | None = None,
    ) -> Failover:
        """Wait for a leader, ``SIGKILL`` it (no release), and wait for the next one.

        The members must be started. The leader is killed once it has renewed at least
        ``hold`` seconds after it began to lead, so that the others have seen it renew
        and the successor has to wait out a moving lease.

        Args:
            hold: Seconds the first leader leads (up to its next renewal) before the kill.
            startup_timeout: Seconds to wait for the first leader (a leader left in the
                table by an earlier, crashed run must first expire), and for its renewal
                after ``hold``.
            timeout: Seconds to wait for the successor after the kill; default: one lease,
                deadline and interval, plus 15 s of slack for a loaded host.
            before_kill: Called with the leader's ``callback_started`` just before the
                kill (to report it as it happens).

        Raises:
            LabError: no leader, renewal or successor within its timeout, or the killed
                member did not end.
        """
        first = self.wait_for_event(EventKind.CALLBACK_STARTED, timeout=startup_timeout)
        leader = first.node
        self.wait_for_event(
            EventKind.RENEW_OK,
            nodes=[leader],
            after=first.true_time + hold,
            timeout=hold + startup_timeout,
        )
        if before_kill is not None:
            before_kill(first)
        killed_at = self.kill(leader, signal.SIGKILL)  # returns once the process is gone
        if timeout is None:
            timeout = self.lease_duration + self.renew_deadline + self.renew_interval + 15.0
        successor = self.wait_for_event(
            EventKind.CALLBACK_STARTED,
            nodes=[n for n in self.node_ids if n != leader],
            after=first.true_time,
            timeout=timeout,
        )
        last_renewal = max(
            e.true_time
            for e in self.read_trace()
            if e.node == leader and e.kind is EventKind.RENEW_OK
        )
        return Failover(
            leader=leader,
            elected=first,
            killed_at=killed_at,
            last_renewal=last_renewal,
            successor=successor,
        )

    # ------------------------------------------------------------------ scenarios

    @classmethod
    def for_scenario(
        cls,
        scenario: Scenario,
        db_path: str | Path,
        *,
        seed: int = 0,
        url: str | None = None,
        trace_dir: str | Path | None = None,
        table_name: str = TABLE_NAME_ELECTION,
    ) -> Lab:
        """A lab whose members are a scenario's: its nodes, config, workload and fencing.

        The members draw their retry jitter by the simulator's rule
        (``"SEED:jitter:NODE:INCARNATION"``). The scenario's ``storage`` latency model is
        not imposed: a real database has its own latency (which the members trace).

        Args:
            scenario: A resolved :class:`~leadersim.sim.scenario.Scenario`.
            db_path: The SQLite file (or the anchor of ``trace_dir`` with ``url``).
            seed: The run's seed.
            url: A database URL instead of the SQLite file.
            trace_dir: Where the traces go (default: the database's directory).
            table_name: The election table.

        Raises:
            ConfigError: the scenario cannot run for real (see :func:`check_real`).
        """
        from leadersim.sim.scenario import CallbackSpec

        check_real(scenario)
        config = dict(scenario.config)
        durations = {
            key: float(config.pop(key, default))
            for key, default in zip(
                _DURATIONS,
                (DEFAULT_LEASE_DURATION, DEFAULT_RENEW_INTERVAL, DEFAULT_RENEW_DEADLINE),
                strict=True,
            )
        }
        spec = scenario.callback
        assert isinstance(spec, CallbackSpec)  # check_real refuses Python callbacks
        callback = {key: getattr(spec, key) for key in CALLBACK_KEYS}
        lab = cls(
            db_path,
            scenario.nodes,
            lease_duration=durations["lease_duration"],
            renew_interval=durations["renew_interval"],
            renew_deadline=durations["renew_deadline"],
            trace_dir=trace_dir,
            table_name=table_name,
            seed=seed,
            url=url,
            config=config,
            nodes_config=scenario.nodes_config,
            callback=callback,
            fencing=scenario.fencing,
        )
        lab._sim_seeds = True
        lab._raise_on = spec.raise_on
        lab._scenario_name = scenario.name
        return lab

    def run_scenario(self, scenario: Scenario) -> Result:
        """Run ``scenario``'s schedule in real time on this lab's members; return the result.

        Members start as in the simulator (the first at 0, the others after
        ``start_stagger`` plus a seeded phase under ``start_jitter``); at each fault's
        ``at`` (seconds after the run's start, on ``CLOCK_MONOTONIC``) the lab acts:
        ``crash`` SIGKILL, ``restart``/``start`` a new process (same id, its trace
        appended), ``pause`` SIGSTOP until the last overlapping pause ends (SIGCONT),
        ``cancel`` SIGTERM, ``resign`` and the storage kinds (``cut``, ``slow``,
        ``error``, ``ambiguous``, ``conflicts``, ``busy``) a control message to the
        member's :class:`~leadersim.storage.FaultyStorage`. Targets resolve as in the
        simulator (``leader``: the acting node the stored record names). Each fault is
        traced with its schedule number, so the merged trace reads like a simulated one.
        At ``duration`` the members are stopped; the result covers ``[0, duration]``
        (the shutdown after it is in the saved traces only).

        The database is emptied first (the election record and the writes table), so a
        record left by an earlier run does not delay the first election.

        Raises:
            ConfigError: the scenario cannot run for real (nothing is started).
            ValueError: the lab has run already.
        """
        from leadersim.analysis.result import Result

        check_real(scenario)
        if self._lab_trace is not None:
            raise ValueError("this lab has run already; use a new Lab for another run")
        self._reset_database()
        run = _ScenarioRun(self, scenario)
        # The shutdown's signals are numbered after the schedule's faults.
        self._faults = len(scenario.faults)
        try:
            end = run.run()
        finally:
            self.stop_all()
        events = [e for e in self.read_trace() if e.true_time <= end]
        return Result(
            events,
            end,
            name=scenario.name,
            seed=self.seed,
            meta={
                "scenario": scenario,
                "source": "lab",
                "trace_dir": str(self.trace_dir),
                "pids": list(self.pids),
            },
        )

    def stored_leader(self) -> str:
        """The leader id the stored record names now (``""`` if none or unreadable)."""
        if self.url is not None:
            return self._stored_leader_url()
        from leadersim.storage.sqlite import SQLiteStatements

        statements = SQLiteStatements.for_table(self.table_name)
        try:
            with contextlib.closing(sqlite3.connect(self.db_path, timeout=5.0)) as connection:
                rows = connection.execute(statements.select).fetchall()
            return statements.decode(rows).leader_id
        except (sqlite3.Error, LeadersimError):
            return ""

    def _stored_leader_url(self) -> str:
        assert self.url is not None

        async def read() -> str:
            storage = await open_storage(self.url or "", self.table_name)
            try:
                return (await storage.get()).leader_id
            finally:
                await storage.close()

        try:
            return asyncio.run(read())
        except LeadersimError:
            return ""

    def _reset_database(self) -> None:
        """Empty the election table and the writes table, where they exist."""
        if self.url is not None:
            asyncio.run(self._reset_server())
            return
        if not self.db_path.exists():
            return
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10.0)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            for table in (self.table_name, writes_table(self.table_name)):
                if table in tables:
                    connection.execute(f'DELETE FROM "{table}"')
            connection.commit()

    async def _reset_server(self) -> None:
        import sqlalchemy as sa

        storage = await open_storage(self.url or "", self.table_name)  # creates the table
        try:
            engine = storage.engine  # type: ignore[union-attr]
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"DELETE FROM {self.table_name}"))
            with contextlib.suppress(sa.exc.DBAPIError):  # no writes table yet
                async with engine.begin() as conn:
                    await conn.execute(sa.text(f"DELETE FROM {writes_table(self.table_name)}"))
        finally:
            await storage.close()

    # ------------------------------------------------------------------ database

    def integrity_check(self) -> str:
        """The result of ``PRAGMA integrity_check`` on the database (``"ok"`` if sound)."""
        with contextlib.closing(sqlite3.connect(self.db_path)) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(row[0]) for row in rows)

    def describe(self) -> str:
        """A few lines on each member: process state, last trace event, end of its log."""
        lines = []
        for node_id in self.node_ids:
            process = self.processes.get(node_id)
            if process is None:
                state = "not started"
            elif (code := process.poll()) is None:
                state = f"running (pid {process.pid})"
            else:
                state = f"exited with {code} (pid {process.pid})"
            lines.append(f"  {node_id}: {state}")
            if self.trace_path(node_id).exists():
                events = read_jsonl(self.trace_path(node_id))
                if events:
                    last = events[-1]
                    lines.append(f"    last event: {last.kind.value} at {last.true_time:.3f}")
            if self.log_path(node_id).exists():
                tail = self.log_path(node_id).read_text(errors="replace").splitlines()[-3:]
                lines.extend(f"    log: {line}" for line in tail)
        return "\n".join(lines)


def _check_member_id(node_id: str) -> None:
    if f"{node_id}.jsonl" == LAB_TRACE_NAME:
        raise ValueError(
            f"a lab member may not be called {node_id!r}: {LAB_TRACE_NAME} is the lab's own "
            "trace file; choose another id"
        )


def _env() -> dict[str, str]:
    """The members' environment: they import the same leadersim as this process."""
    env = dict(os.environ)
    source_root = str(Path(leadersim.__file__).resolve().parent.parent)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = source_root if not path else os.pathsep.join([source_root, path])
    return env


# ---------------------------------------------------------------------- scenarios


def check_real(scenario: Scenario) -> None:
    """Refuse a scenario the real lab cannot run, before anything starts.

    Raises:
        ConfigError: one line naming what cannot be real: a fault kind that has no real
            counterpart (a clock's drift or step), per-node ``clocks``, ``timers``, or a leader
            callback written in Python (a member process runs the built-in workload only).
    """
    from leadersim.sim.scenario import CallbackSpec

    if scenario.clocks:
        raise ConfigError(
            f"clocks: {sorted(scenario.clocks)} cannot be set in the real lab: a real "
            "clock's rate and offset cannot be changed; drop 'clocks' to run it for real"
        )
    if scenario.timer_lateness is not None:
        raise ConfigError(
            "timers.lateness cannot be set in the real lab: it models how late a real "
            "process's timers fire, which a real run measures; drop 'timers' to run it for real"
        )
    for index, fault in enumerate(scenario.faults):
        reason = FAULT_KINDS[fault.kind].real
        if reason is not None:
            raise ConfigError(
                f"faults[{index}]: kind {fault.kind!r} cannot run in the real lab: {reason}"
            )
    if not isinstance(scenario.callback, CallbackSpec):
        raise ConfigError(
            "callback: a Python leader callback cannot run in the lab's member processes; "
            "give the built-in workload (a callback mapping)"
        )


class _ScenarioRun:
    """One real run of a scenario by a :class:`Lab`: the schedule in real time."""

    def __init__(self, lab: Lab, scenario: Scenario) -> None:
        self.lab = lab
        self.scenario = scenario
        self.origin = 0.0
        self.resolved: dict[int, list[str]] = {}
        self.pauses: dict[str, int] = {}  # node -> open pause faults
        self.cancelled: set[str] = set()
        # node -> fault index -> (kind, params): storage faults active now, re-sent to a
        # restarted process (they are the database's or the network's, not the process's).
        self.storage: dict[str, dict[int, tuple[str, dict[str, Scalar]]]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = 0

    def _at(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (at, self._order, action))
        self._order += 1

    def run(self) -> float:
        """Run to the scenario's end; returns the end instant (host monotonic seconds)."""
        lab, scenario = self.lab, self.scenario
        # A process takes a while to start (imports, a server connection): the members
        # get ready first, and the run starts once they all are; each then starts its
        # election at its instant, on the lab's "go".
        for node in scenario.nodes:
            lab.trace_path(node).unlink(missing_ok=True)
            lab._spawn(node, wait_for_go=True)
        lab.wait_ready(scenario.nodes, READY_TIMEOUT)
        lab._begin_run()
        self.origin = lab._run_origin
        # The simulator's start rule and seed stream: n1 at 0, the others after the
        # stagger plus a seeded phase.
        phases = random.Random(f"{lab.seed}:start")
        for i, node in enumerate(scenario.nodes):
            at = (
                0.0 if i == 0 else scenario.start_stagger + phases.uniform(0, scenario.start_jitter)
            )
            self._at(at, lambda node=node: self._go(node))  # type: ignore[misc]
        instants: dict[float, list[int]] = {}
        for index, fault in enumerate(scenario.faults):
            instants.setdefault(fault.at, []).append(index)
        for at, indices in instants.items():
            self._at(at, lambda indices=indices: self._apply_all(indices))  # type: ignore[misc]
        end = self.origin + scenario.duration
        while self._timers and self._timers[0][0] < scenario.duration:
            at, _, action = heapq.heappop(self._timers)
            _sleep_until(self.origin + at)
            action()
        _sleep_until(end)
        return end

    # ------------------------------------------------------------------ targets

    def _targets(self, fault: Fault) -> list[str]:
        target = fault.target
        if isinstance(target, tuple):
            return list(target)
        if target == "all":
            return list(self.lab.node_ids)
        if target.startswith("fault:"):
            return list(self.resolved.get(int(target.removeprefix("fault:")), []))
        if target == "leader":
            return self._leader()
        return [target]

    def _leader(self) -> list[str]:
        """The simulator's rule: the acting node the record names, else the first acting."""
        lab = self.lab
        acting: list[str] = []
        for event in lab.read_trace():
            if event.kind is EventKind.CALLBACK_STARTED and event.node not in acting:
                acting.append(event.node)
            elif event.kind is EventKind.CALLBACK_STOPPED and event.node in acting:
                acting.remove(event.node)
        acting = [n for n in acting if lab.is_running(n)]
        named = lab.stored_leader()
        if named in acting or (not acting and named in lab.node_ids):
            return [named]
        return acting[:1]

    # ------------------------------------------------------------------ faults

    def _apply_all(self, indices: list[int]) -> None:
        for index in indices:
            self._apply(index, self.scenario.faults[index])

    def _details(self, index: int, fault: Fault) -> dict[str, Scalar]:
        details: dict[str, Scalar] = {"fault": index, "kind": fault.kind}
        details.update({k: v for k, v in fault.params})
        details["target"] = fault.target if isinstance(fault.target, str) else "list"
        return details

    def _apply(self, index: int, fault: Fault) -> None:
        targets = self._targets(fault)
        self.resolved[index] = targets
        for node in targets:
            self._start_fault(index, fault, node)
            duration = fault.duration
            if duration is not None:
                self._at(
                    fault.at + duration,
                    lambda node=node: self._end_fault(index, fault, node),  # type: ignore[misc]
                )

    def _start_fault(self, index: int, fault: Fault, node: str) -> None:
        lab, kind = self.lab, fault.kind
        details = self._details(index, fault)
        if FAULT_KINDS[kind].scope == "storage":
            if FAULT_KINDS[kind].ends == "duration":  # one-shot ones hit one process
                # Re-sent without its duration: the lab ends it, on the schedule's time.
                rest = {k: v for k, v in fault.params if k != "duration"}
                self.storage.setdefault(node, {})[index] = (kind, rest)
            message = {
                "op": "start_fault",
                "fault": index,
                "kind": kind,
                "params": dict(fault.params),
                "target": details["target"],
            }
            if not lab.send(node, message):
                # Down: the lab traces the start; a restarted process gets the fault.
                lab._record(EventKind.FAULT_START, node, details)
            return
        process = lab.processes.get(node)
        running = lab.is_running(node)
        now = time.monotonic()
        if kind == "crash":
            lab._record(EventKind.FAULT_START, node, {**details, "signal": "SIGKILL"}, now)
            self.pauses.pop(node, None)
            if running and process is not None:
                process.send_signal(signal.SIGKILL)
                lab._reap_killed(node, process, now)
        elif kind == "pause":
            self.pauses[node] = self.pauses.get(node, 0) + 1
            extra: dict[str, Scalar] = {}
            if running and process is not None and self.pauses[node] == 1:
                extra = stop_member_process(process, lab._sqlite_file)
            lab._record(EventKind.FAULT_START, node, {**details, "signal": "SIGSTOP", **extra}, now)
        elif kind == "cancel":
            lab._record(EventKind.FAULT_START, node, {**details, "signal": "SIGTERM"}, now)
            if running and process is not None:
                self.cancelled.add(node)
                process.send_signal(signal.SIGTERM)
        elif kind == "resign":
            lab._record(EventKind.FAULT_START, node, details, now)
            lab.send(node, {"op": "resign", "duration": fault.get("resign_duration", 0.0)})
        elif kind in ("start", "restart"):
            lab._record(EventKind.FAULT_START, node, details, now)
            self._start(node)

    def _end_fault(self, index: int, fault: Fault, node: str) -> None:
        lab, kind = self.lab, fault.kind
        end: dict[str, Scalar] = {"fault": index, "kind": kind}
        if FAULT_KINDS[kind].scope == "storage":
            self.storage.get(node, {}).pop(index, None)
            if not lab.send(node, {"op": "end_fault", "fault": index}):
                lab._record(EventKind.FAULT_END, node, end)
            return
        now = time.monotonic()
        if kind == "pause" and self.pauses.get(node, 0) > 0:
            self.pauses[node] -= 1
            process = lab.processes.get(node)
            # Overlapping pauses compose: the process runs again when the last one ends.
            if self.pauses[node] == 0 and lab.is_running(node) and process is not None:
                process.send_signal(signal.SIGCONT)
                end["signal"] = "SIGCONT"
        lab._record(EventKind.FAULT_END, node, end, now)

    # ------------------------------------------------------------------ processes

    def _go(self, node: str) -> None:
        """Start the election of a member spawned ready (or spawn it, if it died)."""
        if not self.lab.send(node, {"op": "go"}):
            self._start(node)

    def _start(self, node: str) -> None:
        """Start ``node`` (``start`` or ``restart``) unless it runs.

        A member still stopping after a ``cancel`` is waited for, then started: as in
        the simulator, it comes back once it has stopped.
        """
        lab = self.lab
        if lab.is_running(node):
            if node not in self.cancelled:
                return  # a restart of a live member does nothing
            with contextlib.suppress(subprocess.TimeoutExpired):
                lab.wait(node, DEFAULT_STOP_TIMEOUT)
            if lab.is_running(node):
                return
        self.cancelled.discard(node)
        self.pauses.pop(node, None)
        if node not in lab.node_ids:
            lab.node_ids.append(node)
        first = node not in lab.processes
        if first:
            lab.trace_path(node).unlink(missing_ok=True)
        lab._spawn(node)
        for index, (kind, params) in sorted(self.storage.get(node, {}).items()):
            message = {"op": "start_fault", "fault": index, "kind": kind, "params": params}
            lab.send(node, {**message, "traced": False})


def _sleep_until(instant: float) -> None:
    while (left := instant - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def run_scenario(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    seed: int = 0,
    scale: float = 1.0,
    db_path: str | Path | None = None,
    url: str | None = None,
    trace_dir: str | Path | None = None,
    variant: str | None = None,
    **overrides: Any,
) -> Result:
    """Run a scenario for real: members as OS processes, its faults as real actions.

    The scenario is resolved, scaled and overridden exactly as
    :func:`~leadersim.simulate` does it (``scale`` first, then ``overrides``), checked
    with :func:`check_real`, then run by a :class:`Lab` in real time (see
    :meth:`Lab.run_scenario`).

    Args:
        scenario: Anything :func:`~leadersim.simulate` accepts.
        seed: Seeds the members' start phases and retry jitter (the simulator's rule);
            a real run is not reproducible, only its schedule is.
        scale: Multiply every time of the scenario by this (0.1: a 300-s entry in 30 s).
        db_path: The SQLite file (default: a fresh one in a temporary directory).
        url: A database URL instead of a SQLite file.
        trace_dir: Where the traces are kept (default: a temporary directory, removed
            after the run; the result holds the trace).
        variant: A catalogue variant, instead of ``NAME[VARIANT]``.
        **overrides: Scenario keys to replace, as :func:`~leadersim.simulate` takes them.

    Returns:
        The :class:`~leadersim.analysis.result.Result` of the real run.

    Raises:
        ConfigError: an unknown scenario, a bad scale or override, or a scenario that
            cannot run for real (the message names what).
        LabError: a member did not stop when killed.
    """
    from leadersim.experiment import prepare_scenario

    resolved = prepare_scenario(scenario, variant=variant, scale=scale, overrides=overrides)
    check_real(resolved)
    with contextlib.ExitStack() as stack:
        scratch = Path(".")
        if db_path is None or trace_dir is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadersim-")))
        db = Path(db_path) if db_path is not None else scratch / "election.db"
        traces = Path(trace_dir) if trace_dir is not None else scratch / "traces"
        lab = stack.enter_context(
            Lab.for_scenario(resolved, db, seed=seed, url=url, trace_dir=traces)
        )
        return lab.run_scenario(resolved)
