"""``FaultyStorage``: a tracing, fault-injecting wrapper around any storage.

The simulator's storage server (:mod:`leadersim.sim.storage`) traces every operation and
injects network and server faults in simulated time. :class:`FaultyStorage` brings the
same to a real run: it wraps any :class:`~leadersim.Storage` (a
:class:`~leadersim.SQLStorage` on a real file, say) on the running asyncio loop, and

- traces every operation to an :class:`~leadersim.trace.Observer` as one ``storage_op``
  event with the simulator's details (``op``, ``outcome`` at the inner storage, ``seen``
  by the caller, ``sent_at``, ``arrived_at``, ``replied_at``, ``leader_id`` and
  ``version`` of a committed update), so a real trace gets a storage lane and
  ``Result.storage_ops()`` reads it like a simulated one;
- injects faults at run time through methods (:meth:`FaultyStorage.cut`,
  :meth:`~FaultyStorage.heal`, :meth:`~FaultyStorage.slow`,
  :meth:`~FaultyStorage.fail_after`, :meth:`~FaultyStorage.recover`), each traced as a
  ``fault_start`` / ``fault_end`` event of the wrapper's node, so the analysis can name a
  fault as the cause of a failover.

What each fault does to one operation, in order (the simulator's order)::

    fail_after(s)    wait s, raise StorageError; the inner storage is never reached
    cut("request")   the request is lost: the call hangs until the caller cancels it
    cut("both")      (as "request"; and replies are lost too)
    slow(s)          wait s/2 ("request latency")
    cut("writes")    update / txn raise StorageError without reaching the inner storage;
                     reads still work
                     ... the inner storage runs the operation ...
    slow(s)          wait s/2 ("reply latency")
    cut("reply")     the reply is lost: the operation has taken effect (an update may
                     have committed) but the call hangs until the caller cancels it

A hung call stays hung after :meth:`~FaultyStorage.heal`, like a lost packet: the
elector's own deadline is what ends it (the reference has no per-request timeout). Waits
use the injected :class:`~leadersim.clock.Clock`; trace instants (``sent_at`` ...) use a
``true_clock``, by default :func:`time.monotonic`, which is what
:class:`~leadersim.trace.TraceRecorder` stamps ``true_time`` with and what asyncio's
default loops read, so they line up with the rest of a real trace.

A ``get`` or ``update`` that reached the inner storage finishes there even if its caller
gives up meanwhile (as a statement sent to a database does); the trace then records the
true outcome with ``seen`` = ``timeout``. A leader transaction is not shielded: cancelling
its caller cancels ``fn`` and rolls it back, as without the wrapper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TypeVar, overload

from leadersim.clock import Clock, RealClock
from leadersim.errors import RecordConflictError, StorageError
from leadersim.record import Record
from leadersim.storage.base import LeaderLockStorage, Storage
from leadersim.trace import EventKind, Observer, Scalar

__all__ = ["CUT_MODES", "FaultyLeaderLockStorage", "FaultyStorage"]

T = TypeVar("T")

#: Modes of :meth:`FaultyStorage.cut`: requests lost, replies lost, both, writes refused.
CUT_MODES: Final = ("request", "reply", "both", "writes")


@dataclasses.dataclass(slots=True)
class _Op:
    """One operation's trace row, filled in as it goes through the pipeline."""

    op: str
    sent_at: float
    outcome: str = "dropped"  # at the inner storage: ok | conflict | error | dropped
    arrived_at: float | None = None
    replied_at: float | None = None
    leader_id: str | None = None
    version: int | None = None
    handed_off: bool = False  # the caller gave up; the inner task reports when it ends


@dataclasses.dataclass(slots=True)
class _Fault:
    """An active fault: its trace id and kind."""

    fault_id: str
    kind: str


class FaultyStorage:
    """A :class:`~leadersim.Storage` that traces and injects faults into another one.

    ``FaultyStorage(inner)`` returns a :class:`FaultyLeaderLockStorage` when ``inner``
    has ``txn_with_leader_lock`` (so the wrapper offers fencing exactly when the inner
    storage does). No fault is active at first: the wrapper then only traces.

    Args:
        inner: The storage to wrap (any :class:`~leadersim.Storage`).
        node: Id of the member using this storage: the ``node`` of its trace events.
        clock: Clock of the injected waits (``slow``, ``fail_after``); defaults to
            :class:`~leadersim.clock.RealClock`. Its :meth:`~leadersim.clock.Clock.monotonic`
            is the events' ``local_time``.
        observer: Receives ``storage_op``, ``fault_start`` and ``fault_end`` events
            (optional: without one nothing is traced).
        true_clock: Returns the run's reference time in seconds for ``sent_at``,
            ``arrived_at`` and ``replied_at``; defaults to :func:`time.monotonic`, the
            default true clock of :class:`~leadersim.trace.TraceRecorder`.

    Raises:
        TypeError: ``inner`` is not a storage.
    """

    @overload
    def __new__(
        cls,
        inner: LeaderLockStorage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
    ) -> FaultyLeaderLockStorage: ...

    @overload
    def __new__(
        cls,
        inner: Storage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
    ) -> FaultyStorage: ...

    def __new__(
        cls,
        inner: Storage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
    ) -> FaultyStorage:
        """Pick :class:`FaultyLeaderLockStorage` when ``inner`` offers fencing."""
        if cls is FaultyStorage and isinstance(inner, LeaderLockStorage):
            cls = FaultyLeaderLockStorage
        return super().__new__(cls)

    def __init__(
        self,
        inner: Storage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(inner, Storage):
            raise TypeError(
                f"FaultyStorage wraps a Storage (with get() and update()), got {inner!r}"
            )
        self._inner = inner
        self._node = node
        self._clock: Clock = clock if clock is not None else RealClock()
        self._observer = observer
        self._true_clock = true_clock or time.monotonic
        self._cuts: dict[str, _Fault] = {}
        self._slow: tuple[float, _Fault] | None = None
        self._fail: tuple[float, _Fault] | None = None
        self._faults_started = 0
        self._late: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ queries

    @property
    def inner(self) -> Storage:
        """The wrapped storage."""
        return self._inner

    @property
    def node(self) -> str:
        """Id of the member using this storage (the ``node`` of its trace events)."""
        return self._node

    @property
    def cut_modes(self) -> frozenset[str]:
        """The cut modes active now (a subset of :data:`CUT_MODES`)."""
        return frozenset(self._cuts)

    @property
    def slow_duration(self) -> float:
        """Seconds of extra latency added to each operation now (0 when not slow)."""
        return 0.0 if self._slow is None else self._slow[0]

    @property
    def fail_after_duration(self) -> float | None:
        """Seconds after which each operation fails now, or ``None`` when it does not."""
        return None if self._fail is None else self._fail[0]

    # ------------------------------------------------------------------ faults

    def cut(self, mode: str = "request") -> None:
        """Cut this member off from its storage from now on (until :meth:`heal`).

        Args:
            mode: ``request`` (requests are lost: calls hang and never reach the inner
                storage), ``reply`` (the inner storage runs the operation, then the call
                hangs: an ambiguous outcome), ``both``, or ``writes`` (``update`` and
                ``txn_with_leader_lock`` raise :class:`~leadersim.StorageError` without
                reaching the inner storage; reads work). Cutting an active mode again
                does nothing.

        Raises:
            ValueError: ``mode`` is not one of :data:`CUT_MODES`.
        """
        _check_mode(mode)
        if mode not in self._cuts:
            self._cuts[mode] = self._start_fault("cut", mode=mode)

    def heal(self, mode: str = "request") -> None:
        """End the cut ``mode`` started by :meth:`cut` (nothing if it is not active).

        Calls left hanging by the cut stay hung: their requests or replies are lost.

        Raises:
            ValueError: ``mode`` is not one of :data:`CUT_MODES`.
        """
        _check_mode(mode)
        fault = self._cuts.pop(mode, None)
        if fault is not None:
            self._end_fault(fault)

    def slow(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every operation from now on (0 ends it).

        Half is waited before the operation reaches the inner storage, half after. A
        new value replaces the previous one.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        seconds = _check_seconds("slow", seconds)
        if self._slow is not None:
            self._end_fault(self._slow[1])
            self._slow = None
        if seconds > 0:
            self._slow = (seconds, self._start_fault("slow", latency_s=seconds))

    def fail_after(self, seconds: float) -> None:
        """Make every operation raise :class:`~leadersim.StorageError` after ``seconds``.

        Until :meth:`recover`, no operation reaches the inner storage. A new value
        replaces the previous one.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        seconds = _check_seconds("fail_after", seconds)
        self.recover()
        self._fail = (seconds, self._start_fault("error", after_s=seconds))

    def recover(self) -> None:
        """End :meth:`fail_after` (nothing if it is not active)."""
        if self._fail is not None:
            self._end_fault(self._fail[1])
            self._fail = None

    def _start_fault(self, kind: str, **params: Scalar) -> _Fault:
        self._faults_started += 1
        fault = _Fault(f"faulty-{self._faults_started}", kind)
        # ``duration`` None: an open-ended fault, ended by its fault_end event.
        self._trace(
            EventKind.FAULT_START,
            {"fault": fault.fault_id, "kind": kind, **params, "duration": None},
        )
        return fault

    def _end_fault(self, fault: _Fault) -> None:
        self._trace(EventKind.FAULT_END, {"fault": fault.fault_id, "kind": fault.kind})

    # ------------------------------------------------------------------ Storage

    async def get(self) -> Record:
        """Read the record through the faults (see :meth:`Storage.get`).

        Raises:
            StorageError: the inner read failed, or ``fail_after`` is active.
        """
        inner = self._inner
        return await self._call("get", inner.get, write=False, shield=True)

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """CAS-write ``record`` through the faults (see :meth:`Storage.update`).

        Raises:
            RecordConflictError: the stored version is not ``record.version``.
            StorageError: the inner write failed, writes are cut, or ``fail_after`` is
                active.
        """
        record = record.clone()  # what is traced is what was sent

        def run() -> Awaitable[None]:
            return self._inner.update(record, is_leader_changed)

        await self._call(
            "update",
            run,
            write=True,
            shield=True,
            committed=(record.leader_id, record.version + 1),
        )

    async def _call(
        self,
        op: str,
        run: Callable[[], Awaitable[T]],
        *,
        write: bool,
        shield: bool,
        committed: tuple[str, int] | None = None,
    ) -> T:
        """Send one operation through the fault pipeline and trace it."""
        trace = _Op(op, self._true_clock())
        try:
            if self._fail is not None:
                delay = self._fail[0]
                trace.outcome = "error"
                await self._clock.sleep(delay)
                trace.replied_at = self._true_clock()
                self._emit(trace, "error")
                raise StorageError(
                    f"injected fault on {self._label}: {op} failed after {delay:g} s "
                    "(fail_after is active)"
                )
            if self._is_cut("request", "both"):
                await _hang()
            slow = self.slow_duration
            if slow > 0:
                await self._clock.sleep(slow / 2)
            error: BaseException | None = None
            result: T | None = None
            if write and self._is_cut("writes"):
                trace.outcome = "error"
                error = StorageError(
                    f"injected fault on {self._label}: writes are cut; {op} refused "
                    "without reaching the storage"
                )
            else:
                trace.arrived_at = self._true_clock()
                # Interrupted inside the inner storage: a leader txn rolled back.
                trace.outcome = "error"
                try:
                    if shield:
                        result = await self._run_shielded(trace, run, committed)
                    else:
                        result = await run()
                    trace.outcome = "ok"
                    if committed is not None:
                        trace.leader_id, trace.version = committed
                except RecordConflictError as exc:
                    trace.outcome = "conflict"
                    error = exc
                except Exception as exc:
                    trace.outcome = "error"
                    error = exc
            if slow > 0:
                await self._clock.sleep(slow / 2)
            if self._is_cut("reply", "both"):
                await _hang()
            trace.replied_at = self._true_clock()
            if error is not None:
                self._emit(trace, _seen(error))
                raise error
            self._emit(trace, "ok")
            return result  # type: ignore[return-value]
        except asyncio.CancelledError:
            if not trace.handed_off:
                self._emit(trace, "timeout")
            raise

    async def _run_shielded(
        self,
        trace: _Op,
        run: Callable[[], Awaitable[T]],
        committed: tuple[str, int] | None,
    ) -> T:
        """Run ``run()`` to its end even if the caller gives up meanwhile."""
        task: asyncio.Task[T] = asyncio.ensure_future(run())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The caller gave up: trace the true outcome when the inner storage is done
            # (at once if it finished in the same instant).
            trace.handed_off = True
            self._late.add(task)
            task.add_done_callback(lambda done: self._finish_late(trace, done, committed))
            raise

    def _finish_late(
        self, trace: _Op, task: asyncio.Task[Any], committed: tuple[str, int] | None
    ) -> None:
        """Trace an operation whose caller gave up before the inner storage answered."""
        self._late.discard(task)
        if task.cancelled():  # closed while in flight: what happened is unknown
            trace.outcome = "error"
        else:
            error = task.exception()  # retrieved: nobody else will
            if error is None:
                trace.outcome = "ok"
                if committed is not None:
                    trace.leader_id, trace.version = committed
            else:
                trace.outcome = "conflict" if isinstance(error, RecordConflictError) else "error"
        if not self._is_cut("reply", "both"):
            trace.replied_at = self._true_clock()
        self._emit(trace, "timeout")

    def _is_cut(self, *modes: str) -> bool:
        cuts = self._cuts
        return bool(cuts) and any(mode in cuts for mode in modes)

    # ------------------------------------------------------------------ trace

    @property
    def _label(self) -> str:
        return f"node {self._node!r}" if self._node else "a FaultyStorage"

    def _emit(self, trace: _Op, seen: str) -> None:
        """Trace one finished operation: the truth at the inner storage, what was seen.

        ``seen`` is ``ok``, ``conflict`` or ``error`` when the caller got that answer,
        and ``timeout`` when the caller gave up (was cancelled) first.
        """
        self._trace(
            EventKind.STORAGE_OP,
            {
                "op": trace.op,
                "outcome": trace.outcome,
                "seen": seen,
                "sent_at": trace.sent_at,
                "arrived_at": trace.arrived_at,
                "replied_at": trace.replied_at,
                "leader_id": trace.leader_id,
                "version": trace.version,
            },
        )

    def _trace(self, kind: EventKind, details: dict[str, Scalar]) -> None:
        if self._observer is not None:
            self._observer(self._node, self._clock.monotonic(), kind, details)

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Stop the operations whose callers gave up, then close the inner storage.

        The inner storage is closed with its ``close()`` (or ``aclose()``) if it has one.
        """
        late = list(self._late)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        close = getattr(self._inner, "close", None) or getattr(self._inner, "aclose", None)
        if close is not None:
            closing = close()
            if isinstance(closing, Awaitable):
                await closing

    async def __aenter__(self) -> FaultyStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        faults = [f"cut={mode}" for mode in self._cuts]
        if self._slow is not None:
            faults.append(f"slow={self._slow[0]:g}s")
        if self._fail is not None:
            faults.append(f"fail_after={self._fail[0]:g}s")
        shown = " ".join(faults) or "no faults"
        return f"<{type(self).__name__} node={self._node!r} {shown} inner={self._inner!r}>"


class FaultyLeaderLockStorage(FaultyStorage):
    """A :class:`FaultyStorage` of a storage with ``txn_with_leader_lock``.

    ``FaultyStorage(inner)`` builds one when ``inner`` has the method; the arguments are
    :class:`FaultyStorage`'s.

    Raises:
        TypeError: ``inner`` has no ``txn_with_leader_lock``.
    """

    def __init__(
        self,
        inner: LeaderLockStorage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(inner, LeaderLockStorage):
            raise TypeError(
                f"FaultyLeaderLockStorage wraps a storage with txn_with_leader_lock, got {inner!r}"
            )
        super().__init__(inner, node=node, clock=clock, observer=observer, true_clock=true_clock)
        self._lock_inner = inner

    @property
    def inner(self) -> LeaderLockStorage:
        """The wrapped storage."""
        return self._lock_inner

    async def txn_with_leader_lock(self, leader_id: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run the inner leader transaction through the faults (traced as op ``txn``).

        A write for the faults: refused while writes are cut. Not shielded: cancelling
        the caller cancels ``fn`` and rolls the transaction back.

        Raises:
            NotLeaderError: the stored leader is not ``leader_id``.
            StorageError: the inner storage failed, writes are cut, or ``fail_after`` is
                active.
            Exception: whatever ``fn`` raised, unchanged, after rolling back.
        """

        def run() -> Awaitable[T]:
            return self._lock_inner.txn_with_leader_lock(leader_id, fn)

        return await self._call("txn", run, write=True, shield=False)


def _check_mode(mode: str) -> None:
    if mode not in CUT_MODES:
        raise ValueError(f"unknown cut mode {mode!r}; allowed: {', '.join(CUT_MODES)}")


def _check_seconds(name: str, seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"{name} takes seconds as a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} takes finite seconds >= 0, got {seconds!r}")
    return float(seconds)


def _seen(error: BaseException) -> str:
    return "conflict" if isinstance(error, RecordConflictError) else "error"


async def _hang() -> None:
    """Wait until cancelled: a lost request or reply is never answered."""
    await asyncio.get_running_loop().create_future()
