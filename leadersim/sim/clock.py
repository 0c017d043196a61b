"""Per-node simulated clocks: offset, drift and steps on top of SimPy's true time.

A :class:`NodeClock` is what a simulated elector is given as its
:class:`~leadersim.clock.Clock`. Its monotonic reading runs at ``1 + ppm * 1e-6`` times
true time (positive ppm: the clock runs fast) from an arbitrary per-node origin, so no two
nodes' readings are comparable — as on real machines. Sleeps and timeouts of ``d`` local
seconds last ``d / rate`` true seconds. The wall reading adds a settable offset and can be
stepped (an NTP jump) without touching the monotonic reading.

A drift change applies from the instant it is made; a sleep already under way keeps the
true length it was given when it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

__all__ = ["SIM_EPOCH", "NodeClock"]

#: The wall time at simulated time 0 (an arbitrary, fixed instant: runs are reproducible).
SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class NodeClock:
    """A node's clock in the simulator.

    Args:
        true_time: Returns the simulator's time in seconds (``env.now``).
        origin: The monotonic reading at true time 0 (per node, arbitrary).
        drift_ppm: Rate error in parts per million (positive: runs fast).
        wall_offset: Seconds the wall clock is ahead of true wall time.
    """

    __slots__ = ("_base_local", "_base_true", "_late", "_rate", "_true_time", "wall_offset")

    def __init__(
        self,
        true_time: Callable[[], float],
        *,
        origin: float = 0.0,
        drift_ppm: float = 0.0,
        wall_offset: float = 0.0,
        lateness: Callable[[], float] | None = None,
    ) -> None:
        self._true_time = true_time
        self._late = lateness
        self._base_true = 0.0
        self._base_local = origin
        self._rate = 1.0 + drift_ppm * 1e-6
        self.wall_offset = wall_offset

    @property
    def drift_ppm(self) -> float:
        """The current rate error in parts per million."""
        return (self._rate - 1.0) * 1e6

    @property
    def rate(self) -> float:
        """Local seconds per true second."""
        return self._rate

    def set_drift(self, ppm: float) -> None:
        """Change the rate error from now on (the reading stays continuous)."""
        now = self._true_time()
        self._base_local = self.monotonic()
        # Keep the wall reading continuous too: what the old rate gained or lost so far
        # becomes part of the wall offset (only step_wall steps a wall clock).
        self.wall_offset += (now - self._base_true) * (self._rate - 1.0)
        self._base_true = now
        self._rate = 1.0 + ppm * 1e-6

    def step_wall(self, seconds: float) -> None:
        """Jump the wall clock by ``seconds`` (the monotonic reading is untouched)."""
        self.wall_offset += seconds

    def local_at(self, true_time: float) -> float:
        """The monotonic reading at a given true time (under the current rate)."""
        return self._base_local + (true_time - self._base_true) * self._rate

    def monotonic(self) -> float:
        """Local monotonic seconds."""
        return self._base_local + (self._true_time() - self._base_true) * self._rate

    def wall(self) -> datetime:
        """Local wall time: the epoch, plus elapsed local time, plus the offset."""
        now = self._true_time()
        elapsed = self._base_true + (now - self._base_true) * self._rate
        return SIM_EPOCH + timedelta(seconds=elapsed + self.wall_offset)

    def _delay(self, duration: float) -> float:
        """True seconds until a timer of ``duration`` local seconds fires (late, if set)."""
        if self._late is None:
            return duration / self._rate
        return duration / self._rate + self._late()

    async def sleep(self, duration: float) -> None:
        """Sleep ``duration`` local seconds."""
        await asyncio.sleep(self._delay(duration))

    def timeout(self, duration: float) -> AbstractAsyncContextManager[object]:
        """``asyncio.timeout`` of ``duration`` local seconds."""
        return asyncio.timeout(self._delay(duration))

    def call_later(
        self, duration: float, callback: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``duration`` local seconds."""
        return asyncio.get_running_loop().call_later(self._delay(duration), callback, *args)

    def __repr__(self) -> str:
        return f"<NodeClock drift={self.drift_ppm:g}ppm wall_offset={self.wall_offset:g}s>"
