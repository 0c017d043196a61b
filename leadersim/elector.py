"""The elector: one asyncio loop that renews a lease in a shared record.

A faithful port of the reference elector (tiflow ``pkg/election``), written once as plain
asyncio code. It reads time only through an injected :class:`~leadersim.clock.Clock`,
draws retry jitter from an injected :class:`random.Random`, and reports every state change
to an optional :class:`~leadersim.trace.Observer`; so the same class runs against a real
database on the real clock, or inside the simulator on SimPy's clock.

The rules (expiry, pruning, campaigning, release) live in :mod:`leadersim.record`; this
module only sequences them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from leadersim.clock import Clock, RealClock
from leadersim.config import Config, LeaderCallback
from leadersim.errors import (
    ConfigError,
    CorruptRecordError,
    RecordConflictError,
    RenewFailedError,
    ResignTimeoutError,
    StorageError,
)
from leadersim.record import (
    Member,
    Record,
    RenewTracker,
    member_ids,
    plan_release,
    plan_renewal,
    record_warnings,
)
from leadersim.storage.base import Storage
from leadersim.trace import EventKind, Observer, Scalar

__all__ = ["RELEASE_TIMEOUT", "RESIGN_TIMEOUT", "Elector", "backoff_limits_ms", "retry_delay_ms"]

_logger = logging.getLogger("leadersim.elector")

#: Seconds a resign request may wait for the main loop (reference ``ResignLeader``).
RESIGN_TIMEOUT: Final = 5.0
#: Seconds a best-effort release may take (reference ``defaultReleaseTimeout``).
RELEASE_TIMEOUT: Final = 5.0

_RETRYABLE = (StorageError, RecordConflictError)
#: Milliseconds the reference's retry package falls back to when a base or cap is not
#: positive (its defaults).
_DEFAULT_BASE_MS: Final = 10
_DEFAULT_CAP_MS: Final = 100
#: Seconds a leader-change waiter wakes after the observed leader's local lease end, so
#: that the lease is strictly over (expiry is ``now - seen > lease``) when it looks.
_EXPIRY_MARGIN: Final = 1e-6


@dataclasses.dataclass(slots=True)
class _ResignRequest:
    duration: float
    reply: asyncio.Future[None]


def _whole_ms(seconds: float) -> int:
    """``seconds`` as whole milliseconds, truncated toward zero as a Go duration is.

    Goes through integer nanoseconds first (a Go ``time.Duration``), so that e.g. 0.29 s
    is 290 ms and not 289 from a float product just below it.
    """
    nanoseconds = round(seconds * 1e9)
    whole = abs(nanoseconds) // 1_000_000
    return whole if nanoseconds >= 0 else -whole


def backoff_limits_ms(
    renew_interval: float, renew_deadline: float, time_left: float | None
) -> tuple[int, int]:
    """The base and cap of a retried operation's backoff, as the reference sets them.

    Computed once, when the operation starts: base ``I/2`` and cap ``D/2`` in whole
    milliseconds (integer division, as the reference), the cap further limited to half
    the time left until the operation's own deadline. A value that is not positive falls
    back to the reference retry package's default (10 ms base, 100 ms cap).

    Args:
        renew_interval: Seconds between renew rounds (``I``).
        renew_deadline: Seconds a renew may retry (``D``).
        time_left: Seconds left until the operation's deadline, or None if it has none.

    Returns:
        ``(base_ms, cap_ms)``, whole milliseconds, both positive.
    """
    base = _whole_ms(renew_interval) // 2
    cap = _whole_ms(renew_deadline) // 2
    if time_left is not None:
        # Go's integer division truncates toward zero; int() of the quotient does too.
        cap = min(cap, int(_whole_ms(time_left) / 2))
    return (
        base if base > 0 else _DEFAULT_BASE_MS,
        cap if cap > 0 else _DEFAULT_CAP_MS,
    )


def retry_delay_ms(attempt: int, base_ms: int, cap_ms: int, rng: random.Random) -> int:
    """Milliseconds to wait before retry number ``attempt`` ("decorrelated jitter").

    The reference retry package's formula: ``temp = max(1, min(cap, base * 2**attempt) /
    2)`` truncated to whole ms, ``sleep = 3 * (temp + rand[0, temp))``, delay ``=
    min(cap, base + rand[0, sleep))``, where ``rand[0, n)`` is a uniform whole number in
    ``0 .. n-1``. Every delay is therefore at least ``base`` (unless ``cap < base``) and
    at most ``cap``; at I = 0.25 s, D = 1.5 s the first retry waits 125-750 ms.

    Args:
        attempt: The retry's number: 1 after the first failed attempt, 2 after the
            second, and so on.
        base_ms: Base in whole milliseconds (see :func:`backoff_limits_ms`).
        cap_ms: Cap in whole milliseconds.
        rng: Source of the two uniform draws (seedable).

    Returns:
        The delay in whole milliseconds.
    """
    # 2**attempt overflows a float past 1023; by then the cap has long been reached.
    grown = base_ms * 2.0**attempt if attempt < 1024 else math.inf
    temp = max(1, int(min(cap_ms, grown) / 2))
    sleep = 3 * (temp + rng.randrange(temp))
    return int(min(cap_ms, base_ms + rng.randrange(sleep)))


class _RenewGaveUp(Exception):
    """Internal: a retried operation ran out of deadline (carries the last storage error)."""

    def __init__(self, last_error: BaseException | None) -> None:
        super().__init__(last_error)
        self.last_error = last_error


class Elector:
    """A member of a lease-based election.

    Args:
        config: The member's config; a copy is validated (``adjust_and_validate``) and
            used, so later changes to ``config`` have no effect.
        clock: Where time is read; defaults to :class:`~leadersim.clock.RealClock`.
        observer: Receives a trace event for every state change (optional).
        rng: Source of retry jitter; defaults to ``random.Random(seed)``.
        seed: Seed for the default ``rng`` (ignored when ``rng`` is given).
        logger: Where the reference's log messages go (default ``leadersim.elector``).

    Raises:
        ConfigError: the config is invalid, or its ``storage`` / ``leader_callback`` is
            not what an elector can run (see :meth:`Config.check_components`).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        seed: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        config = config.copy()
        config.adjust_and_validate()
        config.check_components()
        assert config.storage is not None
        assert config.leader_callback is not None
        self._config = config
        self._storage: Storage = config.storage
        self._callback: LeaderCallback = config.leader_callback
        self._clock: Clock = clock if clock is not None else RealClock()
        self._observer = observer
        self._rng = rng if rng is not None else random.Random(seed)
        self._log = logger if logger is not None else _logger
        self._me = Member(config.id, config.name, config.address, config.lease_duration)
        self._observed = Record()
        self._tracker = RenewTracker(config.max_member_lease or math.inf)
        self._believed_leader = False
        # With stop_before_release: set from the start of a release until a renew reads
        # the record again (or the release succeeds), while is_leader() answers false.
        self._giving_up = False
        self._corrupt_error: str | None = None  # the corruption last logged, if any
        self._record_warnings: frozenset[str] = frozenset()
        self._resign_until = -math.inf
        self._resign_requests: collections.deque[_ResignRequest] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._callback_task: asyncio.Task[None] | None = None
        self._running = False

    # ------------------------------------------------------------------ queries

    @property
    def id(self) -> str:
        """This member's id."""
        return self._config.id

    @property
    def config(self) -> Config:
        """The validated copy of the config this elector runs with."""
        return self._config

    def is_leader(self) -> bool:
        """Whether the cached record names this member leader and its lease is unexpired.

        Reads only the cached record and this member's own clock, never the storage.
        With ``stop_before_release``, false from the moment a release of the slot starts.
        """
        if self._giving_up or self._observed.leader_id != self._config.id:
            return False
        me = self._observed.find_member(self._config.id)
        return me is not None and not self._tracker.is_expired(me, self._clock.monotonic())

    def get_leader(self) -> Member | None:
        """The leader of the cached record, or ``None`` if there is none or it expired.

        With ``stop_before_release``, never this member once it has started releasing.
        """
        leader_id = self._observed.leader_id
        if self._giving_up and leader_id == self._config.id:
            return None
        leader = self._observed.find_member(leader_id)
        if leader is None or self._tracker.is_expired(leader, self._clock.monotonic()):
            return None
        return leader

    def get_members(self) -> list[Member]:
        """All members of the cached record, in record order, unfiltered."""
        return list(self._observed.members)

    def leader_callback_running(self) -> bool:
        """Whether this member's leader callback is running (it *acts* as leader)."""
        return self._callback_task is not None and not self._callback_task.done()

    async def wait_leader(self) -> Member:
        """Wait until the cached record shows an unexpired leader, and return it.

        Returns at once if there is one already; to await a *change* of leader use
        :meth:`wait_leader_change` or :meth:`watch_leader`.
        """
        while (leader := self.get_leader()) is None:
            await self._wait_for_change(None)
        return leader

    async def wait_leader_change(self, previous: Member | None) -> Member | None:
        """Wait until the observed leader is no longer ``previous``; return the new one.

        The observed leader is what :meth:`get_leader` answers: it changes when a read or
        write of this member shows another leader id (or none), and when the leader's
        lease runs out on this member's clock (then the result is ``None``). Leaders are
        compared by id, so the leader's renewals are not changes. Returns at once if the
        leader already differs from ``previous``. Time is read only through the elector's
        clock: the lease end is awaited with a timer, never by polling.

        Args:
            previous: The leader last seen (as returned by :meth:`get_leader`, this
                method or :meth:`watch_leader`), or ``None`` for "no leader".

        Returns:
            The new leader, or ``None`` if there is none now.

        Raises:
            TypeError: ``previous`` is neither a :class:`~leadersim.Member` nor ``None``.
        """
        if previous is not None and not isinstance(previous, Member):
            raise TypeError(
                f"previous must be a Member or None, got {type(previous).__name__} {previous!r}"
            )
        previous_id = None if previous is None else previous.id
        while True:
            leader = self.get_leader()
            if (None if leader is None else leader.id) != previous_id:
                return leader
            await self._wait_for_change(leader)

    async def watch_leader(self) -> AsyncIterator[Member | None]:
        """Yield the observed leader now, then again each time it changes.

        leadersim's counterpart of client-go's ``OnNewLeader`` and etcd's ``Observe``::

            async for leader in elector.watch_leader():
                print("leader is now", None if leader is None else leader.id)

        An async iterator rather than a callback: the consumer runs in its own task at
        its own pace, cancelling it (or breaking out of the loop) stops the watch, and an
        exception in the consumer is the consumer's, never lost inside the elector. A
        slow consumer is not queued for: after each step it gets the leader as it is
        then, so it may skip intermediate changes, but it never sees the same leader
        twice in a row and always ends up at the current one. ``None`` means no leader
        (none in the record, or its lease ran out on this member's clock). Changes are
        those of :meth:`wait_leader_change`; the watch holds nothing while suspended
        between items, and never ends by itself (it also works while ``run_election``
        is not running: it then sees only the lease of the last observed leader end).
        """
        leader = self.get_leader()
        while True:
            yield leader
            leader = await self.wait_leader_change(leader)

    async def _wait_for_change(self, leader: Member | None) -> None:
        """Wait for the next observation, a belief change, or ``leader``'s lease end."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        timer: asyncio.TimerHandle | None = None
        expires = None if leader is None else self._tracker.expires_at(leader)
        if expires is not None:
            delay = max(expires - self._clock.monotonic(), 0.0) + _EXPIRY_MARGIN
            timer = self._clock.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.discard(waiter)

    def _notify(self) -> None:
        """Wake every leader waiter: what ``get_leader`` answers may have changed."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _resolve(waiter)

    # ------------------------------------------------------------------ main loop

    async def run_election(self) -> None:
        """Take part in the election until this task is cancelled.

        On cancellation the member releases (removes itself, clears the slot if it is its
        own; best effort within 5 s), stops its leader callback and re-raises
        ``CancelledError``.

        Raises:
            RenewFailedError: a renew round failed for its whole deadline while
                ``exit_on_renew_fail`` is set (chaining the last storage error); the
                member has then released its lease, best effort, as on cancellation.
            RuntimeError: ``run_election`` is already running for this elector.
        """
        if self._running:
            raise RuntimeError(f"run_election is already running for member {self.id!r}")
        self._running = True
        self._emit(EventKind.ELECTION_STARTED)
        try:
            while True:
                await self._renew_round()
                await self._wait_next_round()
        except asyncio.CancelledError:
            await self._shutdown("cancelled")
            raise
        finally:
            self._running = False

    async def _renew_round(self) -> None:
        self._emit(EventKind.RENEW_STARTED)
        try:
            await self._renew()
        except _RenewGaveUp as gave_up:
            self._log.warning(
                "failed to renew lease after renew deadline: id=%s error=%r",
                self.id,
                gave_up.last_error,
            )
            self._emit(EventKind.RENEW_FAILED, error=_describe(gave_up.last_error))
            self._note_belief()
            await self._cancel_callback("renew_failed")
            if self._config.exit_on_renew_fail:
                # As on cancellation (the reference cancels its own context here): release
                # best effort, then stop.
                await self._shutdown("renew_failed")
                raise RenewFailedError(
                    f"member {self.id!r} failed to renew its lease within the renew "
                    f"deadline of {self._config.renew_deadline:g} s"
                ) from gave_up.last_error
            return
        if self.is_leader():
            self._ensure_callback()
        else:
            await self._cancel_callback("not_leader")

    async def _renew(self) -> None:
        """One renew round: retry read-modify-write until it succeeds or D runs out."""
        await self._retry("renew", self._config.renew_deadline, self._try_acquire_or_renew)

    async def _retry(
        self, op: str, deadline: float, attempt_once: Callable[[], Awaitable[None]]
    ) -> None:
        """Retry ``attempt_once`` with the reference's backoff until it succeeds.

        Retry ``n`` waits :func:`retry_delay_ms` ``(n, base, cap)``, with base and cap
        from :func:`backoff_limits_ms` at entry. Gives up after ``deadline`` seconds,
        raising :class:`_RenewGaveUp` with the last storage error.
        """
        started = self._clock.monotonic()
        last_error: BaseException | None = None
        attempt = 0
        try:
            async with self._clock.timeout(deadline):
                # Once, at entry, as the reference: the cap is limited by the time left
                # now, not re-limited as the deadline nears (the timeout ends the wait).
                base_ms, cap_ms = backoff_limits_ms(
                    self._config.renew_interval,
                    self._config.renew_deadline,
                    deadline - (self._clock.monotonic() - started),
                )
                while True:
                    attempt += 1
                    try:
                        await attempt_once()
                        return
                    except _RETRYABLE as exc:
                        last_error = exc
                        self._note_retryable(op, exc, attempt)
                    delay_ms = retry_delay_ms(attempt, base_ms, cap_ms, self._rng)
                    await self._clock.sleep(delay_ms / 1000)
        except TimeoutError:
            raise _RenewGaveUp(last_error) from None

    async def _read(self, *, renewing: bool) -> Record:
        """Read the record, refresh the cached one, and report what is wrong with it."""
        read = await self._storage.get()
        if renewing:
            # A renew's fresh read is the truth again: a failed release stops hiding belief.
            self._giving_up = False
        if self._corrupt_error is not None:
            self._corrupt_error = None
            self._log.info("election record is readable again: id=%s", self.id)
        self._observe(read)
        problems = frozenset(record_warnings(read))
        for problem in sorted(problems - self._record_warnings):
            self._log.warning("suspicious election record: id=%s problem=%s", self.id, problem)
            self._emit(EventKind.RECORD_WARNING, problem=problem)
        self._record_warnings = problems
        return read

    async def _try_acquire_or_renew(self) -> None:
        read = await self._read(renewing=True)
        now = self._clock.monotonic()
        clear_orphan = self._config.clear_orphan_leader and self._tracker.orphan_expired(
            read, now, self._config.lease_duration
        )
        if clear_orphan:
            self._log.info(
                "leader_id names no member for a whole lease, clearing the slot: "
                "id=%s leader_id=%s",
                self.id,
                read.leader_id,
            )
        plan = plan_renewal(
            read,
            self._me,
            self._clock.wall(),
            self._tracker.expiry_test(now),
            may_campaign=now >= self._resign_until,
            clear_orphan=clear_orphan,
        )
        for member in plan.expired:
            if member.id == read.leader_id:
                self._log.info("leader lease expired: id=%s leader_id=%s", self.id, member.id)
            else:
                self._log.info("member lease expired: id=%s member_id=%s", self.id, member.id)
            self._emit(
                EventKind.MEMBER_EXPIRED,
                member=member.id,
                was_leader=member.id == read.leader_id,
            )
        if plan.campaigned:
            self._log.info("try to elect self as leader: id=%s", self.id)
        await self._storage.update(plan.record, plan.leader_changed)
        self._observe(plan.record)
        me = plan.record.find_member(self.id)
        lease_until = None if me is None else self._tracker.expires_at(me)
        self._emit(
            EventKind.RENEW_OK,
            leader_id=plan.record.leader_id,
            version=read.version,
            members=len(plan.record.members),
            leader_changed=plan.leader_changed,
            lease_until=lease_until,
        )

    async def _wait_next_round(self) -> None:
        """Wait for the renew interval or a resign request (handled, then renew at once)."""
        if not self._resign_requests:
            # A future resolved by a timer or by resign_leader: no exception on the common
            # path (this runs once per renew interval on every member).
            wakeup = asyncio.get_running_loop().create_future()
            timer = self._clock.call_later(self._config.renew_interval, _resolve, wakeup)
            self._wakeup = wakeup
            try:
                await wakeup
            finally:
                timer.cancel()
                self._wakeup = None
        while self._resign_requests:
            request = self._resign_requests.popleft()
            if not request.reply.done():  # the caller may have given up
                await self._handle_resign(request)

    # ------------------------------------------------------------------ observation

    def _observe(self, record: Record) -> None:
        """Refresh the cached record and the renewal observations from a read or write."""
        self._tracker.observe(record, self._clock.monotonic())
        self._observed = record.clone()
        self._note_belief()
        self._notify()

    def _note_belief(self) -> None:
        believed = self.is_leader()
        if believed != self._believed_leader:
            self._believed_leader = believed
            kind = EventKind.BECAME_LEADER if believed else EventKind.LOST_LEADER
            self._emit(kind, leader_id=self._observed.leader_id)

    def _note_retryable(self, op: str, exc: BaseException, attempt: int) -> None:
        if isinstance(exc, RecordConflictError):
            self._emit(EventKind.CAS_CONFLICT, op=op, attempt=attempt)
        elif isinstance(exc, CorruptRecordError):
            # Retried like any storage error (nothing is written, the row stays as it is),
            # so members keep running and recover once someone repairs the row; said
            # loudly once per distinct corruption, not once per retry.
            text = str(exc)
            if text != self._corrupt_error:
                self._corrupt_error = text
                self._log.error(
                    "election record is corrupt; not writing it, retrying until it is "
                    "repaired: id=%s op=%s error=%s",
                    self.id,
                    op,
                    text,
                )
            else:
                self._log.debug("election record still corrupt: id=%s op=%s", self.id, op)
            self._emit(
                EventKind.STORAGE_ERROR,
                op=op,
                attempt=attempt,
                error=_describe(exc),
                corrupt=True,
            )
        else:
            self._log.warning("storage error during %s: id=%s error=%r", op, self.id, exc)
            self._emit(EventKind.STORAGE_ERROR, op=op, attempt=attempt, error=_describe(exc))

    # ------------------------------------------------------------------ leader callback

    def _ensure_callback(self) -> None:
        if self.leader_callback_running():
            return
        self._callback_task = asyncio.get_running_loop().create_task(
            self._run_callback(), name=f"leadersim-leader-callback-{self.id}"
        )

    async def _run_callback(self) -> None:
        self._log.info("leader callback is called: id=%s", self.id)
        self._emit(EventKind.CALLBACK_STARTED)
        try:
            await self._callback()
        except asyncio.CancelledError:
            self._emit(EventKind.CALLBACK_STOPPED, reason="cancelled", error=None)
            raise
        except Exception as exc:  # the callback's failure is reported, not propagated
            self._emit(EventKind.CALLBACK_STOPPED, reason="raised", error=_describe(exc))
            self._log.warning(
                "leader callback is unexpectedly exited: id=%s error=%r", self.id, exc
            )
        else:
            self._emit(EventKind.CALLBACK_STOPPED, reason="returned", error=None)
            self._log.warning("leader callback is unexpectedly exited: id=%s", self.id)
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            return  # it was being stopped anyway
        if self.is_leader():
            # As the reference does: release the slot from here, without waking the main
            # loop; the next renew round of any member (this one too) may take it.
            backoff = self._config.callback_failure_backoff
            if backoff > 0:
                self._resign_until = self._clock.monotonic() + backoff
            self._log.info("try to resign leadership: id=%s", self.id)
            try:
                await self._release(remove_self=False)
            except StorageError as exc:
                self._log.warning("failed to resign leadership: id=%s error=%r", self.id, exc)

    async def _cancel_callback(self, reason: str) -> None:
        """Cancel the leader callback and wait (without limit) until it has stopped."""
        task = self._callback_task
        if task is None:
            return
        if not task.done():
            self._emit(EventKind.CALLBACK_CANCELLED, reason=reason)
            task.cancel()
            await asyncio.wait([task])
        self._callback_task = None

    # ------------------------------------------------------------------ resign / release

    async def resign_leader(self, duration: float) -> None:
        """Give up leadership and do not campaign for ``duration`` seconds.

        The request is handed to the main loop (which must take and answer it within
        5 s). If this member leads, the slot is cleared in storage before the reply, then
        the resign window opens and the callback is cancelled. A follower just opens its
        window.

        Raises:
            ConfigError: ``duration`` is negative or not a number.
            ResignTimeoutError: the main loop did not answer within 5 s.
            StorageError: clearing the slot failed.
        """
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise ConfigError(f"resign duration must be seconds, got {duration!r}")
        if not duration >= 0:
            raise ConfigError(f"resign duration must not be negative, got {duration!r}")
        request = _ResignRequest(float(duration), asyncio.get_running_loop().create_future())
        self._resign_requests.append(request)
        if self._wakeup is not None:
            _resolve(self._wakeup)
        try:
            async with self._clock.timeout(RESIGN_TIMEOUT):
                await request.reply
        except TimeoutError:
            if request in self._resign_requests:
                self._resign_requests.remove(request)
            raise ResignTimeoutError(
                f"member {self.id!r}: the elector did not handle the resign request "
                f"within {RESIGN_TIMEOUT:g} s (is run_election running?)"
            ) from None

    async def _handle_resign(self, request: _ResignRequest) -> None:
        was_leader = self.is_leader()
        self._emit(EventKind.RESIGN, duration=request.duration, was_leader=was_leader)
        if was_leader:
            self._log.info("try to resign leader: id=%s", self.id)
            if self._config.stop_before_release:
                await self._cancel_callback("resign")
            try:
                await self._release(remove_self=False)
            except StorageError as exc:
                self._log.warning("failed to resign leader: id=%s error=%r", self.id, exc)
                if not request.reply.done():
                    request.reply.set_exception(exc)
                return
            self._log.info("leader resigned: id=%s", self.id)
        else:
            self._log.info("member is not leader, ignore resign request: id=%s", self.id)
        if not request.reply.done():
            request.reply.set_result(None)
        self._resign_until = self._clock.monotonic() + request.duration
        await self._cancel_callback("resign")

    async def _release(self, remove_self: bool) -> None:
        """Clear the slot if ours (and remove self if asked), retrying for up to 5 s."""

        async def release_once() -> None:
            read = await self._read(renewing=False)
            plan = plan_release(read, self.id, remove_self)
            await self._storage.update(plan.record, plan.leader_changed)
            self._observe(plan.record)
            self._emit(
                EventKind.RELEASE,
                ok=True,
                leader_changed=plan.leader_changed,
                removed_self=remove_self,
            )

        if self._config.stop_before_release and not self._giving_up:
            # The member is giving the slot up: from now on it must not claim it, even if
            # the release's reply is lost and the retries run for the whole timeout.
            self._giving_up = True
            self._note_belief()
            self._notify()
        try:
            await self._retry("release", RELEASE_TIMEOUT, release_once)
        except _RenewGaveUp as gave_up:
            self._emit(EventKind.RELEASE, ok=False, error=_describe(gave_up.last_error))
            raise StorageError(
                f"member {self.id!r} could not release its lease within "
                f"{RELEASE_TIMEOUT:g} s: {gave_up.last_error!r}"
            ) from gave_up.last_error

    async def _shutdown(self, reason: str) -> None:
        if self._config.stop_before_release:
            await self._cancel_callback("shutdown")
        try:
            await self._release(remove_self=True)
        except StorageError as exc:
            self._log.warning("failed to release member lease: id=%s error=%r", self.id, exc)
        await self._cancel_callback("shutdown")
        self._emit(EventKind.ELECTION_STOPPED, reason=reason)

    # ------------------------------------------------------------------ trace

    def _emit(self, kind: EventKind, **details: Scalar) -> None:
        if self._observer is not None:
            self._observer(self._config.id, self._clock.monotonic(), kind, details)

    def __repr__(self) -> str:
        role = "leader" if self.is_leader() else "follower"
        return f"<Elector id={self.id!r} {role} members={member_ids(self._observed.members)}>"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _describe(exc: BaseException | None) -> str | None:
    return None if exc is None else f"{type(exc).__name__}: {exc}"
