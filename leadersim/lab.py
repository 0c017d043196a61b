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
verdict. Stdlib and leadersim's core only: no pandas, no simpy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import leadersim
from leadersim.config import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RENEW_INTERVAL,
    Config,
)
from leadersim.elector import Elector
from leadersim.storage import open_storage
from leadersim.storage.base import TABLE_NAME_ELECTION
from leadersim.trace import (
    EventKind,
    Scalar,
    TraceEvent,
    TraceRecorder,
    read_jsonl,
    read_trace_dir,
)

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "LAB_TRACE_NAME",
    "Lab",
    "LabError",
    "read_trace_dir",
    "run_member",
    "serve_member",
]

#: The lab's own trace file in the trace directory (hence no member may be called "lab").
LAB_TRACE_NAME = "lab.jsonl"

#: Seconds :meth:`Lab.stop_all` waits for graceful exits before it kills what is left;
#: above the elector's 5-s release timeout.
DEFAULT_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


async def _hold_leadership() -> None:
    """The lab's leader callback: lead, doing nothing, until cancelled."""
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


async def serve_member(
    db_path: str | Path,
    node_id: str,
    *,
    lease_duration: float = DEFAULT_LEASE_DURATION,
    renew_interval: float = DEFAULT_RENEW_INTERVAL,
    renew_deadline: float = DEFAULT_RENEW_DEADLINE,
    trace_path: str | Path | None = None,
    table_name: str = TABLE_NAME_ELECTION,
    seed: int | None = None,
    stop: asyncio.Event | None = None,
    url: str | None = None,
) -> None:
    """Run one election member on a SQLite file until ``stop`` is set or it is cancelled.

    Stopping (by ``stop`` or by cancellation) is graceful: the elector releases its lease
    and stops its leader callback before this returns (or re-raises the cancellation).

    Args:
        db_path: The SQLite file shared by all members (created if missing).
        node_id: This member's id.
        lease_duration: Lease in seconds.
        renew_interval: Seconds between renew rounds.
        renew_deadline: Seconds one renew round may retry.
        trace_path: JSON-lines file the trace is appended to, one flushed line per event;
            ``None`` for no trace.
        table_name: The election table.
        seed: Seed of the elector's retry jitter.
        stop: Set it to stop the member; by default it runs until cancelled.
        url: A database URL (e.g. ``postgresql+asyncpg://user@host/db``) to use instead
            of ``db_path`` (needs the ``[server]`` extra).

    Raises:
        ConfigError: invalid id, durations, table name or URL.
        StorageError: the database could not be opened.
    """
    storage = await open_storage(url if url is not None else db_path, table_name)
    try:
        with _trace_sink(trace_path) as sink:
            recorder = TraceRecorder(true_clock=time.monotonic, sink=sink, keep=False)
            config = Config(
                id=node_id,
                name=node_id,
                address=f"pid {os.getpid()}",
                storage=storage,
                leader_callback=_hold_leadership,
                lease_duration=lease_duration,
                renew_interval=renew_interval,
                renew_deadline=renew_deadline,
            )
            elector = Elector(config, observer=recorder, seed=seed)
            await _run_until_stopped(elector, stop if stop is not None else asyncio.Event())
    finally:
        await storage.close()


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


def run_member(
    db_path: str | Path,
    node_id: str,
    *,
    lease_duration: float = DEFAULT_LEASE_DURATION,
    renew_interval: float = DEFAULT_RENEW_INTERVAL,
    renew_deadline: float = DEFAULT_RENEW_DEADLINE,
    trace_path: str | Path | None = None,
    table_name: str = TABLE_NAME_ELECTION,
    seed: int | None = None,
    url: str | None = None,
) -> None:
    """Run one member in this process until ``SIGTERM`` or ``SIGINT`` (then release).

    The process entry of ``leadersim member``; arguments as for :func:`serve_member`.
    Returns after a graceful stop.

    Raises:
        ConfigError: invalid id, durations or table name.
        StorageError: the database could not be opened.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_member(
            db_path,
            node_id,
            lease_duration=lease_duration,
            renew_interval=renew_interval,
            renew_deadline=renew_deadline,
            trace_path=trace_path,
            table_name=table_name,
            seed=seed,
            stop=stop,
            url=url,
        )

    asyncio.run(main())


# How the lab's signals read as faults in a trace: (fault kind, start or end).
_SIGNAL_FAULTS: dict[int, tuple[str, EventKind]] = {
    signal.SIGKILL: ("crash", EventKind.FAULT_START),
    signal.SIGTERM: ("cancel", EventKind.FAULT_START),
    signal.SIGINT: ("cancel", EventKind.FAULT_START),
    signal.SIGSTOP: ("pause", EventKind.FAULT_START),
    signal.SIGCONT: ("pause", EventKind.FAULT_END),
}


class LabError(RuntimeError):
    """Something the lab waited for did not happen; the message shows the members' state."""


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
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
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

    def _record_fault(self, node: str, kind: str, sig: str | None, at: float) -> int:
        """Record the start of an injected fault; returns its number."""
        index = self._faults
        self._faults += 1
        details: dict[str, Scalar] = {"fault": index, "kind": kind}
        if sig is not None:
            details["signal"] = sig
        self._record(EventKind.FAULT_START, node, details, at)
        return index

    def _begin_run(self) -> None:
        """Open a fresh ``lab.jsonl`` and write the run's start: its time origin."""
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self._lab_trace = open(self.lab_trace_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._record(
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
            },
        )

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

    def _spawn(self, node_id: str) -> None:
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        old_log = self._logs.pop(node_id, None)
        if old_log is not None:
            old_log.close()
        log = self._logs[node_id] = open(self.log_path(node_id), "ab")  # noqa: SIM115
        seed = self.seed + self.node_ids.index(node_id)
        command = [
            sys.executable, "-m", "leadersim", "member",
            *(["--url", self.url] if self.url else ["--db", str(self.db_path)]),
            "--id", node_id,
            "--lease", repr(self.lease_duration),
            "--interval", repr(self.renew_interval),
            "--deadline", repr(self.renew_deadline),
            "--trace", str(self.trace_path(node_id)),
            "--table", self.table_name,
            "--seed", str(seed),
        ]  # fmt: skip
        self.processes[node_id] = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_env()
        )

    def is_running(self, node_id: str) -> bool:
        """Whether ``node_id``'s process exists and has not exited."""
        process = self.processes.get(node_id)
        return process is not None and process.poll() is None

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
        process.send_signal(sig)
        if phase is EventKind.FAULT_END:
            # SIGCONT ends this member's open pause; to a running process it is a no-op.
            index = self._open_pauses.pop(node_id, None)
            if index is not None:
                details: dict[str, Scalar] = {"fault": index, "kind": kind, "signal": name}
                self._record(EventKind.FAULT_END, node_id, details, sent_at)
            return sent_at
        index = self._record_fault(node_id, kind, name, sent_at)
        if kind == "pause":
            self._open_pauses[node_id] = index
        elif kind == "crash":
            self._open_pauses.pop(node_id, None)
            try:
                process.wait(DEFAULT_STOP_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                raise LabError(
                    f"member {node_id!r} still runs {DEFAULT_STOP_TIMEOUT:g} s after SIGKILL"
                ) from exc
            self._record_crashed_callback(node_id, sent_at)
        return sent_at

    def _record_crashed_callback(self, node_id: str, killed_at: float) -> None:
        """After a kill, end the dead member's running callback in the trace, at the kill.

        The process is gone, so its trace file is complete. An event it stamped between
        the lab's clock reading and the signal's delivery would be later than the kill;
        the stop is then put just after that event, never before what it ends.
        """
        path = self.trace_path(node_id)
        own = read_jsonl(path) if path.exists() else []
        # Its own events and the lab's about it (an earlier crash's stop is in lab.jsonl).
        started: TraceEvent | None = None
        for event in self.read_trace():
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
