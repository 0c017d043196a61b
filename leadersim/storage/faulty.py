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
- injects every fault kind of scope ``storage`` in :data:`~leadersim.faults.FAULT_KINDS`
  (:data:`~leadersim.storage.faultplan.STORAGE_KINDS`) at run time through
  :meth:`FaultyStorage.start_fault` / :meth:`~FaultyStorage.end_fault`, each traced as a
  ``fault_start`` / ``fault_end`` event of the wrapper's node with the simulator's
  details, so the analysis can name a fault as the cause of a failover. (The older
  :meth:`~FaultyStorage.cut`, :meth:`~FaultyStorage.heal`, :meth:`~FaultyStorage.slow`,
  :meth:`~FaultyStorage.fail_after` and :meth:`~FaultyStorage.recover` are thin wrappers.)

What the faults do to one operation, and how overlapping faults compose, is decided by
the pipeline the simulator shares, :mod:`leadersim.storage.faultplan`; this wrapper
carries each decision out on the running loop. The network latency is the real one; a
``slow`` fault waits half its latency before the operation reaches the inner storage and
half after. A request or reply that is lost is traced at once (``seen`` = ``no_reply``)
and the call hangs until its caller gives up, like a lost packet: the elector's own
deadline is what ends it (the reference has no per-request timeout). Waits use the
injected :class:`~leadersim.clock.Clock`; trace instants (``sent_at`` ...) use a
``true_clock``, by default :func:`time.monotonic`, which is what
:class:`~leadersim.trace.TraceRecorder` stamps ``true_time`` with and what asyncio's
default loops read, so they line up with the rest of a real trace.

A ``get`` or ``update`` goes on without its caller (as a request on the wire and a
statement sent to a database do): when the caller gives up first, the trace records the
true outcome when the reply comes, with ``seen`` = ``timeout``. A leader transaction does
not: cancelling its caller cancels ``fn`` and rolls it back, as without the wrapper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, overload

from leadersim.clock import Clock, RealClock
from leadersim.errors import RecordConflictError
from leadersim.faults import CUT_MODES as _CUT_MODES
from leadersim.faults import FAULT_KINDS, check_params
from leadersim.record import Record
from leadersim.storage.base import LeaderLockStorage, Storage
from leadersim.storage.faultplan import STORAGE_KINDS, OpRecord, StorageFaults, refusal
from leadersim.trace import EventKind, Observer, Scalar

__all__ = ["CUT_MODES", "FaultyLeaderLockStorage", "FaultyStorage"]

T = TypeVar("T")

#: Modes of :meth:`FaultyStorage.cut`: requests lost, replies lost, both, writes refused.
CUT_MODES: Final = _CUT_MODES


@dataclasses.dataclass(slots=True)
class _Active:
    """A fault in force: what to undo when it ends, and its timer if it ends by itself."""

    kind: str
    params: dict[str, Any]
    timer: asyncio.TimerHandle | None = None


@dataclasses.dataclass(slots=True)
class _Reply(Generic[T]):
    """What reached the caller's side: a result or an error."""

    result: T | None = None
    error: BaseException | None = None


class FaultyStorage:
    """A :class:`~leadersim.Storage` that traces and injects faults into another one.

    ``FaultyStorage(inner)`` returns a :class:`FaultyLeaderLockStorage` when ``inner``
    has ``txn_with_leader_lock`` (so the wrapper offers fencing exactly when the inner
    storage does). No fault is active at first: the wrapper then only traces.

    Args:
        inner: The storage to wrap (any :class:`~leadersim.Storage`).
        node: Id of the member using this storage: the ``node`` of its trace events.
        clock: Clock of the injected waits and of fault durations; defaults to
            :class:`~leadersim.clock.RealClock`. Its :meth:`~leadersim.clock.Clock.monotonic`
            is the events' ``local_time``.
        observer: Receives ``storage_op``, ``fault_start`` and ``fault_end`` events
            (optional: without one nothing is traced).
        true_clock: Returns the run's reference time in seconds for ``sent_at``,
            ``arrived_at`` and ``replied_at``; defaults to :func:`time.monotonic`, the
            default true clock of :class:`~leadersim.trace.TraceRecorder`.
        rng: Random source of the ``busy`` and ``conflicts`` draws (seed it for a
            reproducible sequence); a fresh unseeded one by default.

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
        rng: random.Random | None = None,
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
        rng: random.Random | None = None,
    ) -> FaultyStorage: ...

    def __new__(
        cls,
        inner: Storage,
        *,
        node: str = "",
        clock: Clock | None = None,
        observer: Observer | None = None,
        true_clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
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
        rng: random.Random | None = None,
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
        self._rng = rng if rng is not None else random.Random()
        self._plan = StorageFaults()
        self._active: dict[int | str, _Active] = {}
        # Faults started by the older methods (cut, slow, fail_after), by their id.
        self._cuts: dict[str, str] = {}
        self._slow: str | None = None
        self._fail: str | None = None
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
    def faults(self) -> StorageFaults:
        """The composed fault state the pipeline reads (see :mod:`~leadersim.storage.faultplan`)."""
        return self._plan

    @property
    def cut_modes(self) -> frozenset[str]:
        """The cut modes active now (a subset of :data:`CUT_MODES`)."""
        return frozenset(mode for mode in CUT_MODES if self._plan.is_cut(mode))

    @property
    def slow_duration(self) -> float:
        """Seconds of extra latency added to each operation now (0 when not slow)."""
        return self._plan.slow_s

    @property
    def fail_after_duration(self) -> float | None:
        """Seconds after which each operation fails now, or ``None`` when it does not."""
        return self._plan.error_after_s

    # ------------------------------------------------------------------ faults

    def start_fault(
        self,
        index: int | str,
        kind: str,
        params: Mapping[str, Scalar],
        *,
        target: str | None = None,
    ) -> None:
        """Start fault number ``index`` of a storage kind on this member, traced.

        Faults compose with those already active (as in the simulator). A fault with a
        ``duration`` ends by itself after it (on this wrapper's clock); without one it
        lasts until :meth:`end_fault`. ``ambiguous`` happens at once: it arms a
        one-shot for the next committed update, which has no end.

        Args:
            index: The fault's number (its schedule index): the ``fault`` of its
                ``fault_start`` / ``fault_end`` events, and what :meth:`end_fault` takes.
            kind: A kind of scope ``storage`` (one of
                :data:`~leadersim.storage.faultplan.STORAGE_KINDS`), e.g. ``cut``
                (``mode``), ``slow`` (``latency_s``), ``error`` (``after_s``),
                ``ambiguous`` (``delay_s``; ``None`` or absent: the reply is lost),
                ``conflicts`` or ``busy`` (``rate``).
            params: The kind's parameters, checked as in a scenario; ``duration`` (in
                seconds) may be left out, or ``None``, for a fault ended by
                :meth:`end_fault`.
            target: The schedule's target, recorded in the ``fault_start`` event as the
                simulator records it.

        Raises:
            ValueError: ``kind`` is not a storage kind, or fault ``index`` is active.
            ConfigError: a bad or missing parameter (the message names it).
        """
        row = FAULT_KINDS.get(kind)
        if row is None or row.scope != "storage":
            raise ValueError(
                f"{kind!r} is not a storage fault kind; FaultyStorage injects {list(STORAGE_KINDS)}"
            )
        if index in self._active:
            raise ValueError(f"fault {index!r} is already active on {self._label}")
        checked = check_params(kind, params, where=f"fault {index!r}", open_ended=True)
        details: dict[str, Scalar] = {"fault": index, "kind": kind, **checked}
        if row.ends == "duration":
            details.setdefault("duration", None)  # None: ended by its fault_end event
        if target is not None:
            details["target"] = target
        self._trace(EventKind.FAULT_START, details)
        self._plan.start(kind, checked)
        if row.ends != "duration":
            return
        active = self._active[index] = _Active(kind, checked)
        duration = checked.get("duration")
        if duration is not None:
            active.timer = self._clock.call_later(float(duration), self.end_fault, index)

    def end_fault(self, index: int | str) -> None:
        """End fault number ``index`` started by :meth:`start_fault`, traced.

        Ending a fault that is not active (it has ended by itself, or it happens at
        once) does nothing, so a caller may end every fault it started.
        """
        active = self._active.pop(index, None)
        if active is None:
            return
        if active.timer is not None:
            active.timer.cancel()
        self._plan.end(active.kind, active.params)
        self._trace(EventKind.FAULT_END, {"fault": index, "kind": active.kind})

    def _start_own(self, kind: str, **params: Scalar) -> str:
        """Start an open-ended fault for one of the older methods; returns its id."""
        self._faults_started += 1
        fault_id = f"faulty-{self._faults_started}"
        self.start_fault(fault_id, kind, params)
        return fault_id

    def cut(self, mode: str = "request") -> None:
        """Cut this member off from its storage from now on (until :meth:`heal`).

        Args:
            mode: ``request`` (requests are lost: calls hang and never reach the inner
                storage), ``reply`` (the inner storage runs the operation, then the call
                hangs: an ambiguous outcome), ``both``, or ``writes`` (``update`` and
                ``txn_with_leader_lock`` raise :class:`~leadersim.StorageError` without
                reaching the inner storage; reads work). Cutting a mode this method has
                cut again does nothing.

        Raises:
            ValueError: ``mode`` is not one of :data:`CUT_MODES`.
        """
        _check_mode(mode)
        if mode not in self._cuts:
            self._cuts[mode] = self._start_own("cut", mode=mode)

    def heal(self, mode: str = "request") -> None:
        """End the cut ``mode`` started by :meth:`cut` (nothing if it is not active).

        Calls left hanging by the cut stay hung: their requests or replies are lost.

        Raises:
            ValueError: ``mode`` is not one of :data:`CUT_MODES`.
        """
        _check_mode(mode)
        fault = self._cuts.pop(mode, None)
        if fault is not None:
            self.end_fault(fault)

    def slow(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every operation from now on (0 ends it).

        Half is waited before the operation reaches the inner storage, half after. A
        new value replaces the one this method set before (faults started with
        :meth:`start_fault` stay and add up).

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        seconds = _check_seconds("slow", seconds)
        if self._slow is not None:
            self.end_fault(self._slow)
            self._slow = None
        if seconds > 0:
            self._slow = self._start_own("slow", latency_s=seconds)

    def fail_after(self, seconds: float) -> None:
        """Make every operation raise :class:`~leadersim.StorageError` after ``seconds``.

        Until :meth:`recover`, no operation reaches the inner storage. A new value
        replaces the one this method set before.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        seconds = _check_seconds("fail_after", seconds)
        self.recover()
        self._fail = self._start_own("error", after_s=seconds)

    def recover(self) -> None:
        """End :meth:`fail_after` (nothing if it is not active)."""
        if self._fail is not None:
            self.end_fault(self._fail)
            self._fail = None

    # ------------------------------------------------------------------ Storage

    async def get(self) -> Record:
        """Read the record through the faults (see :meth:`Storage.get`).

        Raises:
            StorageError: the inner read failed, or an ``error`` or ``busy`` fault
                refused it.
        """
        inner = self._inner
        return await self._call("get", inner.get, write=False, detached=True)

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """CAS-write ``record`` through the faults (see :meth:`Storage.update`).

        Raises:
            RecordConflictError: the stored version is not ``record.version`` (or a
                ``conflicts`` fault refused it).
            StorageError: the inner write failed, or a fault refused it (writes cut,
                ``error``, ``busy``).
        """
        record = record.clone()  # what is traced is what was sent

        def run() -> Awaitable[None]:
            return self._inner.update(record, is_leader_changed)

        await self._call(
            "update",
            run,
            write=True,
            detached=True,
            committed=(record.leader_id, record.version + 1),
        )

    async def _call(
        self,
        op: str,
        run: Callable[[], Awaitable[T]],
        *,
        write: bool,
        detached: bool,
        committed: tuple[str, int] | None = None,
    ) -> T:
        """Send one operation through the fault pipeline and trace it.

        ``detached``: the operation travels in its own task, so it goes on when the
        caller gives up; else it runs in the caller's task and a cancel stops it.
        """
        record = OpRecord(self._node, op, self._true_clock())
        if not detached:
            try:
                reply = await self._travel(record, run, write, committed)
            except asyncio.CancelledError:
                if record.seen == "pending":  # the caller gave up first
                    self._emit(record, "timeout")
                raise
            if reply is None:
                await _hang()  # lost (already traced): until the caller gives up
            assert reply is not None
            return self._deliver(record, reply)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._travel_detached(record, run, write, committed, future))
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        # Cancelling the caller cancels only this future: the operation sees it is done
        # when its reply comes, and traces seen = timeout.
        return await future

    async def _travel_detached(
        self,
        record: OpRecord,
        run: Callable[[], Awaitable[T]],
        write: bool,
        committed: tuple[str, int] | None,
        future: asyncio.Future[T],
    ) -> None:
        try:
            reply = await self._travel(record, run, write, committed)
        except asyncio.CancelledError:  # the wrapper closed with the operation in flight
            if record.seen == "pending":
                self._emit(record, "timeout" if future.done() else "no_reply")
            future.cancel()
            raise
        except Exception as exc:  # a failure of the wrapper itself: the caller gets it
            if not future.done():
                future.set_exception(exc)
            return
        if reply is None:
            return  # lost (already traced): the caller waits until it gives up
        if future.done():  # the caller gave up before the reply came
            self._emit(record, "timeout")
            return
        try:
            future.set_result(self._deliver(record, reply))
        except Exception as exc:  # the storage's answer is an error: the caller raises it
            future.set_exception(exc)

    async def _travel(
        self,
        record: OpRecord,
        run: Callable[[], Awaitable[T]],
        write: bool,
        committed: tuple[str, int] | None,
    ) -> _Reply[T] | None:
        """Carry one operation to the caller's side; ``None``: it was lost (and traced)."""
        plan = self._plan
        sent = plan.on_send(self._rng)
        if sent == "error":
            after = plan.error_after_s or 0.0
            record.outcome = "error"
            await self._wait(after)
            reply: _Reply[T] = _Reply(error=refusal("error", self._node, record.op, after))
        elif sent == "lost":
            self._emit(record, "no_reply")
            return None
        else:
            await self._wait(plan.leg_delay())
            record.arrived_at = self._true_clock()
            arrival = plan.on_arrival(write, self._rng)
            extra: float | None = 0.0
            if arrival != "execute":
                record.outcome = "conflict" if arrival == "conflict" else "error"
                reply = _Reply(error=refusal(arrival, self._node, record.op))
            else:
                # Interrupted inside the inner storage: a leader txn rolled back.
                record.outcome = "error"
                try:
                    reply = _Reply(result=await run())
                    record.outcome = "ok"
                    if committed is not None:
                        record.leader_id, record.version = committed
                except RecordConflictError as exc:
                    record.outcome = "conflict"
                    reply = _Reply(error=exc)
                except Exception as exc:
                    record.outcome = "error"
                    reply = _Reply(error=exc)
                extra = plan.reply_delay(record.op, record.outcome)
            if extra is None:  # an ambiguous commit whose reply is lost
                self._emit(record, "no_reply")
                return None
            await self._wait(plan.leg_delay() + extra)
        if plan.reply_lost():
            self._emit(record, "no_reply")
            return None
        record.replied_at = self._true_clock()
        return reply

    def _deliver(self, record: OpRecord, reply: _Reply[T]) -> T:
        """Trace what the waiting caller sees, and give it the result or raise."""
        error = reply.error
        if error is not None:
            self._emit(record, "conflict" if isinstance(error, RecordConflictError) else "error")
            raise error
        self._emit(record, "ok")
        return reply.result  # type: ignore[return-value]

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:  # no wait, no yield: as the simulator's zero-latency leg
            await self._clock.sleep(seconds)

    # ------------------------------------------------------------------ trace

    @property
    def _label(self) -> str:
        return f"node {self._node!r}" if self._node else "a FaultyStorage"

    def _emit(self, record: OpRecord, seen: str) -> None:
        """Trace one finished operation: the truth at the inner storage, what was seen.

        ``seen`` follows :mod:`leadersim.storage.faultplan`: ``ok``, ``conflict`` or
        ``error`` when the caller got that answer, ``no_reply`` when the request or the
        reply was lost, ``timeout`` when the caller gave up before the reply came.
        """
        record.seen = seen
        self._trace(EventKind.STORAGE_OP, record.details())

    def _trace(self, kind: EventKind, details: dict[str, Scalar]) -> None:
        if self._observer is not None:
            self._observer(self._node, self._clock.monotonic(), kind, details)

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Stop the operations still in flight, then close the inner storage.

        Fault timers are cancelled (the faults stay as they are: the wrapper is done).
        The inner storage is closed with its ``close()`` (or ``aclose()``) if it has one.
        """
        for active in self._active.values():
            if active.timer is not None:
                active.timer.cancel()
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
        faults = [FAULT_KINDS[active.kind].label(active.params) for active in self._active.values()]
        shown = ", ".join(faults) or "no faults"
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
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(inner, LeaderLockStorage):
            raise TypeError(
                f"FaultyLeaderLockStorage wraps a storage with txn_with_leader_lock, got {inner!r}"
            )
        super().__init__(
            inner, node=node, clock=clock, observer=observer, true_clock=true_clock, rng=rng
        )
        self._lock_inner = inner

    @property
    def inner(self) -> LeaderLockStorage:
        """The wrapped storage."""
        return self._lock_inner

    async def txn_with_leader_lock(self, leader_id: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run the inner leader transaction through the faults (traced as op ``txn``).

        A write for the faults: refused while writes are cut. Not detached: cancelling
        the caller cancels ``fn`` and rolls the transaction back.

        Raises:
            NotLeaderError: the stored leader is not ``leader_id``.
            StorageError: the inner storage failed, or a fault refused it (writes cut,
                ``error``, ``busy``).
            Exception: whatever ``fn`` raised, unchanged, after rolling back.
        """

        def run() -> Awaitable[T]:
            return self._lock_inner.txn_with_leader_lock(leader_id, fn)

        return await self._call("txn", run, write=True, detached=False)


def _check_mode(mode: str) -> None:
    if mode not in CUT_MODES:
        raise ValueError(f"unknown cut mode {mode!r}; allowed: {', '.join(CUT_MODES)}")


def _check_seconds(name: str, seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"{name} takes seconds as a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} takes finite seconds >= 0, got {seconds!r}")
    return float(seconds)


async def _hang() -> None:
    """Wait until cancelled: a lost request or reply is never answered."""
    await asyncio.get_running_loop().create_future()
