"""The clock the elector reads time through.

The elector never calls ``time``, ``datetime.now`` or ``asyncio.sleep`` directly: it is
given a :class:`Clock`. The real default, :class:`RealClock`, reads the running loop's
monotonic time and UTC wall time. The simulator gives each node a clock of its own whose
drift scales sleeps and timeouts, and whose wall reading can be stepped.

Durations are only ever measured on :meth:`Clock.monotonic`; :meth:`Clock.wall` is only
written into the record (``renew_time``) and compared for change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock"]


@runtime_checkable
class Clock(Protocol):
    """What the elector needs of time. All durations are float seconds."""

    def monotonic(self) -> float:
        """A monotonic reading in seconds (only differences are meaningful)."""
        ...

    def wall(self) -> datetime:
        """The wall time, timezone-aware."""
        ...

    async def sleep(self, duration: float) -> None:
        """Sleep ``duration`` seconds as measured by this clock."""
        ...

    def timeout(self, duration: float) -> AbstractAsyncContextManager[object]:
        """A context manager raising ``TimeoutError`` after ``duration`` of this clock."""
        ...

    def call_later(
        self, duration: float, callback: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` on the running loop after ``duration`` of this clock."""
        ...


class RealClock:
    """The real clock: the event loop's monotonic time and ``datetime.now(timezone.utc)``.

    Outside a running loop :meth:`monotonic` falls back to :func:`time.monotonic`, which is
    what asyncio's default loops use, so queries made from plain code still agree.
    """

    __slots__ = ()

    def monotonic(self) -> float:
        """The running loop's ``time()`` (or :func:`time.monotonic` outside a loop)."""
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def wall(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, duration: float) -> None:
        """``asyncio.sleep(duration)``."""
        await asyncio.sleep(duration)

    def timeout(self, duration: float) -> AbstractAsyncContextManager[object]:
        """``asyncio.timeout(duration)``."""
        return asyncio.timeout(duration)

    def call_later(
        self, duration: float, callback: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        """``loop.call_later(duration, callback, *args)`` on the running loop."""
        return asyncio.get_running_loop().call_later(duration, callback, *args)

    def __repr__(self) -> str:
        return "RealClock()"
