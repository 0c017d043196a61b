"""An asyncio event loop whose clock is SimPy's, with per-node pause and crash.

The loop's :meth:`SimLoop.time` is ``env.now``. When the loop has nothing ready to run it
does not block: it advances SimPy, to the next SimPy event or the earliest asyncio timer,
whichever comes first, and it reports a deadlock (naming the simulated time) when there
is neither. SimPy owns the environment (storage server, network, faults) and resolves
asyncio futures when a simulated operation completes; asyncio code — the elector, a user's
leader callback — stays stock asyncio and never knows it is simulated.

Every callback the loop runs carries the :mod:`contextvars` context it was scheduled in.
A node's tasks run in a context holding that node's :class:`NodeTag`, which their child
tasks and timers inherit. A paused node's callbacks are held back (and later run in their
original order); a crashed node's callbacks are dropped, so no ``finally`` clause or
cleanup write of the crashed incarnation runs during the run. (When the loop closes, the
coroutines still pending are closed quietly: any cleanup they have runs then, after the
simulated run and its trace are over.)

An exception that escapes a simulated callback is never just logged: the loop records
the first one (a ``call_soon`` callback or timer that raised, a fault that failed to
apply, a task or future whose exception nobody retrieved), stops, and
:meth:`SimLoop.run_until_complete` raises it, with a note saying when and where it was
raised. Two cases are legitimately never retrieved and stay quiet: a storage reply that
reaches a crashed node (the simulated server marks it retrieved), and a failed task of
a node that crashed before anything awaited it (its awaiter was dropped by the crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
from asyncio import base_events, events, format_helpers
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import simpy

from leadersim.errors import LeadersimError

__all__ = ["NodeTag", "SimLoop", "SimulationDeadlock", "current_node"]

T = TypeVar("T")

_NODE: contextvars.ContextVar[NodeTag | None] = contextvars.ContextVar(
    "leadersim_sim_node", default=None
)
# How much of a handle's or task's repr a failure note keeps (it must stay one line).
_NOTE_REPR_CHARS = 300


class SimulationDeadlock(LeadersimError, RuntimeError):
    """Nothing can ever happen again: no ready callback, no timer, no SimPy event."""


class NodeTag:
    """Identity and run state of one incarnation of a simulated node.

    Args:
        node: The node id.
        incarnation: Counts restarts of the node (0 for the first start).
    """

    __slots__ = ("crashed", "held", "incarnation", "node", "paused", "pauses", "tasks")

    def __init__(self, node: str, incarnation: int = 0) -> None:
        self.node = node
        self.incarnation = incarnation
        self.paused = False
        # Pauses in force: overlapping pauses compose, the node runs when the last ends.
        self.pauses = 0
        self.crashed = False
        self.held: list[events.Handle] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def __repr__(self) -> str:
        state = "crashed" if self.crashed else "paused" if self.paused else "running"
        return f"<NodeTag {self.node}#{self.incarnation} {state}>"


def current_node() -> NodeTag | None:
    """The node tag of the running code, or ``None`` for environment code."""
    return _NODE.get()


def _held_back(handle: events.Handle) -> bool:
    """Whether ``handle``'s node stops it from running now.

    A paused node's handle is held back (to run on resume); a crashed node's is dropped.
    """
    tag = handle._context.get(_NODE)  # type: ignore[attr-defined]
    if tag is None or not (tag.paused or tag.crashed):
        return False
    if not tag.crashed:
        tag.held.append(handle)
    return True


def _set_fields(
    handle: events.Handle,
    callback: Callable[..., object],
    args: tuple[Any, ...],
    loop: SimLoop,
    context: contextvars.Context | None,
) -> None:
    """Set ``Handle.__init__``'s fields outside debug mode (no source traceback to take)."""
    fields: Any = handle  # asyncio's private slots, which its stubs do not all declare
    fields._context = contextvars.copy_context() if context is None else context
    fields._loop = loop
    fields._callback = callback
    fields._args = args
    fields._cancelled = False
    fields._repr = None
    fields._source_traceback = None


class _GatedHandle(events.Handle):
    """A handle that runs only while its node is neither paused nor crashed."""

    __slots__ = ()

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: SimLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        if loop._debug:  # type: ignore[attr-defined]
            super().__init__(callback, args, loop, context)  # keeps the source traceback
        else:  # one call fewer per handle than Handle.__init__ (which asks get_debug())
            _set_fields(self, callback, args, loop, context)

    def _run(self) -> None:
        if not _held_back(self):
            super()._run()


class _GatedTimerHandle(events.TimerHandle):
    """A timer handle gated like :class:`_GatedHandle`."""

    __slots__ = ()
    _loop: SimLoop  # Handle's slot, set by _set_fields or Handle.__init__

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: SimLoop,
        context: contextvars.Context | None = None,
    ) -> None:
        if loop._debug:  # type: ignore[attr-defined]
            super().__init__(when, callback, args, loop, context)
            return
        _set_fields(self, callback, args, loop, context)  # see _GatedHandle
        self._when = when
        self._scheduled = False

    def cancel(self) -> None:
        if self._cancelled:
            return
        loop = self._loop
        if loop._debug:  # type: ignore[attr-defined]
            super().cancel()  # keeps a representation, as asyncio does in debug mode
            return
        # TimerHandle.cancel with the loop's _timer_handle_cancelled inline.
        if self._scheduled:
            loop._timer_cancelled_count += 1  # type: ignore[has-type]
        self._cancelled = True
        self._callback = None
        self._args = None  # type: ignore[assignment]

    def _run(self) -> None:
        if not _held_back(self):
            super()._run()


class _SimPySelector:
    """Stands where a selector would: instead of waiting for I/O, it advances SimPy."""

    def __init__(self, loop: SimLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        self._loop._advance(timeout)
        return []

    def close(self) -> None:
        pass


# asyncio's own thresholds for purging cancelled timers (kept: the purge reorders the heap).
_MIN_SCHEDULED = base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
_MIN_CANCELLED_SHARE = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION  # type: ignore[attr-defined]
_MAX_SELECT = base_events.MAXIMUM_SELECT_TIMEOUT  # type: ignore[attr-defined]


class SimLoop(asyncio.BaseEventLoop):
    """An asyncio event loop driven by a SimPy environment.

    Args:
        env: The SimPy environment whose ``now`` is this loop's time (seconds).

    No threads or executors exist in simulation mode: :meth:`run_in_executor` raises.
    """

    def __init__(self, env: simpy.Environment | None = None) -> None:
        super().__init__()
        self.env = env if env is not None else simpy.Environment()
        self._selector = _SimPySelector(self)
        self._clock_resolution = 1e-9
        # The loop's own bookkeeping callbacks run in an empty context: no node gates them.
        # One per loop: a context can be entered by one thread at a time, and loops may run
        # side by side in threads (a sweep on a thread pool).
        self._own_context = contextvars.Context()
        # Crashed incarnations, kept (with their tasks) as long as the loop: a caller that
        # drops its tag (a restart replaces it) must not let the garbage collector close
        # the dropped coroutines during the run, which would run their `finally` clauses.
        self._crashed: list[NodeTag] = []
        # The first exception a callback let escape (raised by run_until_complete), and
        # the failed tasks whose exception may still be retrieved before the run ends.
        self._failure: BaseException | None = None
        self._failed_tasks: list[tuple[asyncio.Task[Any], NodeTag | None, float]] = []
        self._closing = False
        # The timers, a heap of (when, handle) in place of asyncio's heap of handles: the
        # tuples compare by ``when`` in C, and give every comparison the handles' own
        # comparison gives (a tie is "not less" both ways), so the heap keeps asyncio's
        # exact order.
        self._timers: list[tuple[float, events.TimerHandle]] = []

    # -- the loop's iteration -------------------------------------------------------

    def _advance(self, timeout: float | None) -> None:
        """Where asyncio would wait for I/O up to ``timeout`` s: advance SimPy instead.

        To the next SimPy event or the end of ``timeout`` (the earliest asyncio timer),
        whichever comes first.

        Raises:
            SimulationDeadlock: there is neither.
        """
        if timeout == 0:
            return
        env = self.env
        next_simpy = env.peek()
        target = float("inf") if timeout is None else env._now + timeout
        if next_simpy <= target:
            if next_simpy == float("inf"):
                raise SimulationDeadlock(
                    f"simulation deadlocked at t={env._now:.6f} s: no ready callback, "
                    "no timer and no SimPy event (is every node paused forever?)"
                )
            env.step()  # may resolve asyncio futures; return to run their callbacks
        else:
            # Jump to the earliest asyncio timer. No SimPy event lies before it, so moving
            # SimPy's clock forward skips nothing (cheaper than a dummy timeout event).
            env._now = target

    def _callback_raised(self, handle: events.Handle, exc: BaseException) -> None:
        """Report ``exc`` from ``handle``'s callback with the context ``Handle._run`` gives."""
        callback, args = handle._callback, handle._args  # type: ignore[attr-defined]
        source = format_helpers._format_callback_source(callback, args)
        context: dict[str, Any] = {
            "message": f"Exception in callback {source}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:  # type: ignore[attr-defined]
            context["source_traceback"] = handle._source_traceback  # type: ignore[attr-defined]
        self.call_exception_handler(context)

    def _run_once(self) -> None:
        """Run loop iterations as ``BaseEventLoop._run_once`` does, until the loop stops.

        The same steps in the same order (purge cancelled timers, advance the clock when
        nothing is ready, move the due timers to the ready queue, run what was ready),
        without the selector, the I/O events and the per-iteration call; a handle of a
        paused or crashed node is held back or dropped here, as its ``_run`` would.
        """
        ready = self._ready  # type: ignore[attr-defined]
        popleft = ready.popleft
        append = ready.append
        env = self.env
        resolution = self._clock_resolution
        while True:
            timers = self._timers
            count = len(timers)
            if (
                count > _MIN_SCHEDULED
                and self._timer_cancelled_count / count > _MIN_CANCELLED_SHARE  # type: ignore[has-type]
            ):
                kept = []
                for entry in timers:
                    if entry[1]._cancelled:
                        entry[1]._scheduled = False  # type: ignore[attr-defined]
                    else:
                        kept.append(entry)
                heapq.heapify(kept)
                self._timers = timers = kept
                self._timer_cancelled_count = 0
            else:
                while timers and timers[0][1]._cancelled:
                    self._timer_cancelled_count -= 1
                    heapq.heappop(timers)[1]._scheduled = False  # type: ignore[attr-defined]
            if not ready and not self._stopping:
                if timers:
                    timeout = min(max(0, timers[0][0] - env._now), _MAX_SELECT)
                    if timeout:
                        # _advance(timeout), inline: a SimPy event first if one is due by
                        # the earliest timer, else jump to that timer.
                        queue = env._queue
                        target = env._now + timeout
                        if queue and queue[0][0] <= target:
                            env.step()
                        else:
                            env._now = target
                else:
                    self._advance(None)
            end_time = env._now + resolution
            while timers and not timers[0][0] >= end_time:
                handle = heapq.heappop(timers)[1]
                handle._scheduled = False  # type: ignore[attr-defined]
                append(handle)
            for _ in range(len(ready)):
                handle = popleft()
                if handle._cancelled:
                    continue
                cls = type(handle)
                if (cls is not _GatedHandle and cls is not _GatedTimerHandle) or self._debug:  # type: ignore[attr-defined]
                    self._current_handle = handle
                    handle._run()
                    self._current_handle = None
                    continue
                # _held_back, inline (a callback of a paused node is kept, a crashed one's dropped).
                tag = handle._context.get(_NODE)
                if tag is not None and (tag.paused or tag.crashed):
                    if not tag.crashed:
                        tag.held.append(handle)
                    continue
                # Handle._run, inline (one call fewer per callback).
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_raised(handle, exc)
            if self._stopping:
                return

    # -- time ---------------------------------------------------------------------

    def time(self) -> float:
        """Simulated time in seconds (SimPy's ``env.now``)."""
        return self.env._now  # SimPy's `now` property costs a call per read

    # -- scheduling: every handle is gated by its node's state -------------------

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> events.Handle:
        """Schedule ``callback`` (held while its node is paused, dropped once crashed)."""
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = _GatedHandle(callback, args, self, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> events.TimerHandle:
        """Schedule ``callback`` at simulated time ``when`` (gated like :meth:`call_soon`)."""
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        timer = _GatedTimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, timer))
        timer._scheduled = True
        return timer

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> events.TimerHandle:
        """Schedule ``callback`` ``delay`` simulated seconds from now (see :meth:`call_at`)."""
        if delay is None:
            raise TypeError("delay must not be None")
        return self.call_at(self.env._now + delay, callback, *args, context=context)

    def call_soon_threadsafe(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> events.Handle:
        """Same as :meth:`call_soon`: a simulated world has a single thread."""
        return self.call_soon(callback, *args, context=context)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        """Create a task; a node's tasks are registered with (and kept alive by) its tag."""
        task = super().create_task(coro, name=name, context=context)
        tag = context.get(_NODE) if context is not None else _NODE.get()
        if tag is not None:
            # Kept referenced until the run ends: a crashed node's coroutines must not be
            # closed (running their cleanup) when the garbage collector finds them.
            if len(tag.tasks) >= 64:
                tag.tasks = [t for t in tag.tasks if not t.done()]
            tag.tasks.append(task)
        task.add_done_callback(functools.partial(self._task_done, tag), context=self._own_context)
        return task

    # -- failures: an exception inside the simulation ends the run -----------------

    def _task_done(self, tag: NodeTag | None, task: asyncio.Task[Any]) -> None:
        # Whether anyone retrieves the exception is known only when the run ends; keep
        # the task (a reference also stops the garbage collector from deciding earlier,
        # at a moment that would depend on reference cycles).
        if not task.cancelled() and task._log_traceback:
            self._failed_tasks.append((task, tag, self.time()))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Record the first error of the run and stop the loop; never just log it.

        Args:
            context: asyncio's error context (``message``, and ``exception``, ``handle``,
                ``task`` or ``future`` when known).

        While :meth:`close` abandons the pending coroutines, errors are not news about
        the run and are dropped; once the loop is closed, asyncio's default handling
        applies.
        """
        if self._closing:
            return
        if self.is_closed():
            super().call_exception_handler(context)
            return
        self._fail(_failure_of(context, self.time()))

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        self.stop()

    def _collect_unretrieved(self) -> None:
        """Fail the run for each task whose exception nobody retrieved during it."""
        failed, self._failed_tasks = self._failed_tasks, []
        for task, tag, failed_at in failed:
            if not task._log_traceback:
                continue  # awaited or inspected: someone handled it
            task._log_traceback = False
            if tag is not None and tag.crashed:
                continue  # whatever awaited it was dropped by the crash
            error = task.exception()
            assert error is not None
            self._fail(
                _noted(
                    error,
                    failed_at,
                    f"Task exception was never retrieved: {_short(repr(task))}",
                )
            )

    def run_until_complete(self, future: Any) -> Any:
        """Run until ``future`` is done; raise the first error the run's callbacks raised.

        Args:
            future: A coroutine or future, as for :meth:`asyncio.loop.run_until_complete`.

        Returns:
            The future's result.

        Raises:
            BaseException: The first exception raised inside a callback of the run
                (including a task whose exception was never retrieved by the end), as
                is, with a note naming the simulated time and the callback. It takes
                precedence over the future's own outcome, which it may have caused.
        """
        if self._closing:
            return super().run_until_complete(future)
        outcome: BaseException | None = None
        result: Any = None
        try:
            result = super().run_until_complete(future)
        except BaseException as exc:  # re-raised below unless superseded
            outcome = exc
        self._collect_unretrieved()
        failure, self._failure = self._failure, None
        if failure is not None:
            self._stopping = False
            # Raised outside the except clause: its own cause and context stay as they were.
            raise failure
        if outcome is not None:
            raise outcome
        return result

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> Any:  # type: ignore[override]
        """Refuse: simulated code must not use threads (their time is not SimPy's)."""
        raise RuntimeError(
            "run_in_executor is not available in simulation mode: simulated storage "
            "runs inline, and threads would escape the simulated clock"
        )

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    # -- nodes ----------------------------------------------------------------------

    def spawn(
        self, tag: NodeTag, coro: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Start ``coro`` as a task of node ``tag`` (its child tasks inherit the tag)."""
        context = contextvars.copy_context()
        context.run(_NODE.set, tag)
        return self.create_task(coro, name=name, context=context)

    def pause(self, tag: NodeTag) -> None:
        """Stop running ``tag``'s task steps and timer callbacks until :meth:`resume`.

        Pauses are counted: a node paused twice runs again at the second resume (two
        overlapping pause faults keep it paused until the later one ends).
        """
        tag.pauses += 1
        tag.paused = True

    def resume(self, tag: NodeTag) -> None:
        """End one :meth:`pause`; at the last one, run what ``tag`` held back, in order.

        Resuming a node that is not paused does nothing.
        """
        if tag.pauses > 1:
            tag.pauses -= 1
            return
        tag.pauses = 0
        tag.paused = False
        held, tag.held = tag.held, []
        for handle in held:
            if not handle.cancelled():
                self._ready.append(handle)  # type: ignore[attr-defined]

    def crash(self, tag: NodeTag) -> None:
        """Drop ``tag``'s work for good: nothing of this incarnation runs again.

        Its tasks stay referenced by the tag until the run ends, so that Python does not
        close their coroutines (running ``finally`` clauses) at the crash instant.
        """
        tag.crashed = True
        tag.paused = False
        tag.pauses = 0
        tag.held.clear()
        self._crashed.append(tag)
        for task in tag.tasks:
            task._log_destroy_pending = False  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the loop; the run's pending tasks are abandoned quietly.

        Their coroutines are closed here, while the loop can still take the callbacks
        their cleanup schedules, rather than later by the garbage collector with no loop
        to run on (which prints "Exception ignored" tracebacks). The run is over: no
        cleanup of a node runs as a step of the simulation.
        """
        if not self.is_closed() and not self.is_running():
            self._closing = True
            self._stopping = False
            try:
                self.run_until_complete(_abandon_pending())
            finally:
                self._closing = False
        for task in asyncio.all_tasks(self):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        for task, _tag, _at in self._failed_tasks:
            task._log_traceback = False
        self._failed_tasks.clear()
        super().close()
        self._timers.clear()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _NOTE_REPR_CHARS else text[: _NOTE_REPR_CHARS - 3] + "..."


def _noted(error: BaseException, now: float, where: str) -> BaseException:
    error.add_note(f"leadersim: raised inside the simulated loop at t={now:.6f} s: {where}")
    return error


def _failure_of(context: Mapping[str, Any], now: float) -> BaseException:
    """The exception an asyncio error context reports (a RuntimeError if it has none)."""
    message = str(context.get("message") or "unhandled error in the simulated loop")
    culprit = context.get("handle") or context.get("task") or context.get("future")
    where = message if culprit is None else f"{message}: {_short(repr(culprit))}"
    error = context.get("exception")
    if not isinstance(error, BaseException):
        error = RuntimeError(where)
    return _noted(error, now, where)


async def _abandon_pending() -> None:
    me = asyncio.current_task()
    for task in list(asyncio.all_tasks()):
        if task is me or task.done():
            continue
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        coro = task.get_coro()
        # An abandoned coroutine's cleanup may fail (or even refuse to close): that is
        # not news about the run, which has ended.
        with contextlib.suppress(BaseException):
            coro.close()
