"""The built-in leader workload, shared by the simulator and the real lab's members.

:func:`leader_workload` builds the leader callback that a scenario's ``callback`` mapping
(:class:`~leadersim.sim.scenario.CallbackSpec`) describes: while it leads, the member
checks ``is_leader()``, prepares for ``prepare_s`` seconds, then makes one guarded write,
``writes_per_s`` times a second. Cancelled, the work notices only after ``stop_latency``
seconds and keeps writing meanwhile *without* asking whether it still leads: the slow stop
that makes a deposed leader's writes stale. The simulator passes its node clock and its
:class:`~leadersim.sim.storage.ProtectedResource`; a lab member passes the real clock and a
write into a table of the real database. Stdlib and leadersim's clock only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from leadersim.clock import Clock

__all__ = ["leader_workload"]


def leader_workload(
    *,
    node: str,
    clock: Clock,
    is_leader: Callable[[], bool],
    write: Callable[[int], Awaitable[object]],
    stop_latency: float,
    writes_per_s: float,
    prepare_s: float,
    raise_after_s: float | None = None,
) -> Callable[[], Awaitable[None]]:
    """The leader callback of the built-in workload.

    Args:
        node: The member's id (named in the error of a raising callback).
        clock: Where the workload's waits are measured.
        is_leader: Asked before each write while the work runs normally.
        write: Makes guarded write number ``seq`` (1, 2, ... over every run of the
            returned callback).
        stop_latency: Seconds the work goes on after its cancel, writing unchecked.
        writes_per_s: Writes per second (0: an idle leader that only waits).
        prepare_s: Seconds between the ``is_leader()`` check and the write.
        raise_after_s: If set, the callback raises ``RuntimeError`` this many seconds
            after each start (a failing leader task).

    Returns:
        ``async def lead() -> None`` for :class:`~leadersim.Config`'s ``leader_callback``.
    """
    period = 1.0 / writes_per_s if writes_per_s > 0 else 0.0
    counter = [0]

    async def write_once(check: bool) -> None:
        started = clock.monotonic()
        if not check or is_leader():
            await clock.sleep(prepare_s)
            counter[0] += 1
            await write(counter[0])
        await clock.sleep(max(0.0, period - (clock.monotonic() - started)))

    async def lead() -> None:
        try:
            if raise_after_s is not None:
                await clock.sleep(raise_after_s)
                raise RuntimeError(f"simulated failure of {node}'s leader callback")
            if period == 0.0:
                await asyncio.Event().wait()
            while True:
                await write_once(check=True)
        except asyncio.CancelledError:
            # The work notices the cancel only after stop_latency; until then it keeps
            # going, without asking the elector whether it still leads.
            if stop_latency > 0:
                try:
                    async with clock.timeout(stop_latency):
                        while period > 0.0:
                            await write_once(check=False)
                        await asyncio.Event().wait()
                except TimeoutError:
                    pass
            raise

    return lead
