"""Per-node simulated clocks: drift scales sleeps and timeouts, steps move only the wall."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from leadersim import Clock
from leadersim.sim.clock import SIM_EPOCH, NodeClock
from leadersim.sim.loop import SimLoop

T = TypeVar("T")


def run(loop: SimLoop, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return loop.run_until_complete(main())


def clock_of(loop: SimLoop, **kwargs: Any) -> NodeClock:
    return NodeClock(lambda: loop.env.now, **kwargs)


def test_node_clock_is_an_elector_clock() -> None:
    assert isinstance(NodeClock(lambda: 0.0), Clock)


def test_clock_without_drift_counts_true_seconds_from_its_own_origin(loop: SimLoop) -> None:
    clock = clock_of(loop, origin=1000.0, wall_offset=2.5)

    async def main() -> tuple[float, float, object]:
        before = clock.monotonic()
        await clock.sleep(30)
        return before, clock.monotonic(), clock.wall()

    before, after, wall = run(loop, main)
    assert (before, after) == (1000.0, 1030.0)
    assert loop.time() == 30
    assert wall == SIM_EPOCH + timedelta(seconds=32.5)


def test_fast_clock_sleeps_one_local_second_in_less_than_a_true_second(loop: SimLoop) -> None:
    clock = clock_of(loop, drift_ppm=100_000)  # 10 % fast

    async def main() -> tuple[float, float]:
        before = clock.monotonic()
        await clock.sleep(1)
        return loop.time(), clock.monotonic() - before

    true_elapsed, local_elapsed = run(loop, main)
    assert true_elapsed == pytest.approx(1 / 1.1)
    assert local_elapsed == pytest.approx(1.0)  # the node itself saw a full second


def test_slow_clock_sleeps_one_local_second_in_more_than_a_true_second(loop: SimLoop) -> None:
    clock = clock_of(loop, drift_ppm=-100_000)  # 10 % slow

    async def main() -> float:
        await clock.sleep(1)
        return loop.time()

    assert run(loop, main) == pytest.approx(1 / 0.9)


def test_drift_scales_timeouts_in_true_time(loop: SimLoop) -> None:
    fast = clock_of(loop, drift_ppm=100_000)
    slow = clock_of(loop, drift_ppm=-100_000)
    fired: dict[str, float] = {}

    async def wait_out(name: str, clock: NodeClock) -> None:
        try:
            async with clock.timeout(11):
                await asyncio.sleep(100)
        except TimeoutError:
            fired[name] = loop.time()

    async def main() -> None:
        await asyncio.gather(wait_out("fast", fast), wait_out("slow", slow))

    run(loop, main)
    assert fired["fast"] == pytest.approx(10.0)
    assert fired["slow"] == pytest.approx(11 / 0.9)
    # A node's local timeout ends when its own clock has advanced by the full duration.
    assert fast.monotonic() - fast.local_at(0) == pytest.approx(11 / 0.9 * 1.1)


def test_monotonic_reading_is_continuous_when_the_drift_changes(loop: SimLoop) -> None:
    clock = clock_of(loop, origin=500.0, drift_ppm=100_000)
    readings: list[float] = []

    async def main() -> None:
        await asyncio.sleep(10)
        readings.append(clock.monotonic())
        clock.set_drift(-50_000)
        readings.append(clock.monotonic())
        await asyncio.sleep(10)
        readings.append(clock.monotonic())
        clock.set_drift(0)
        await clock.sleep(5)
        readings.append(clock.monotonic())

    run(loop, main)
    assert readings == pytest.approx([511.0, 511.0, 520.5, 525.5])
    assert clock.drift_ppm == 0
    assert loop.time() == pytest.approx(25.0)


def test_wall_reading_is_continuous_when_the_drift_changes(loop: SimLoop) -> None:
    clock = clock_of(loop, drift_ppm=100_000)
    walls: list[object] = []

    async def main() -> None:
        await asyncio.sleep(100)
        walls.append(clock.wall())
        clock.set_drift(0)
        walls.append(clock.wall())
        await asyncio.sleep(10)
        walls.append(clock.wall())

    run(loop, main)
    # 100 true seconds at +10 % put the wall 110 s past the epoch; a rate change must not
    # step it back to true time (only clock_step steps a wall clock).
    assert walls == [
        SIM_EPOCH + timedelta(seconds=110),
        SIM_EPOCH + timedelta(seconds=110),
        SIM_EPOCH + timedelta(seconds=120),
    ]


def test_wall_step_moves_the_wall_reading_but_not_the_monotonic_one(loop: SimLoop) -> None:
    clock = clock_of(loop, origin=1000.0)
    seen: list[tuple[float, object]] = []

    async def main() -> None:
        await asyncio.sleep(60)
        seen.append((clock.monotonic(), clock.wall()))
        clock.step_wall(3600)
        seen.append((clock.monotonic(), clock.wall()))
        await asyncio.sleep(1)
        clock.step_wall(-7200)
        seen.append((clock.monotonic(), clock.wall()))

    run(loop, main)
    assert seen == [
        (1060.0, SIM_EPOCH + timedelta(seconds=60)),
        (1060.0, SIM_EPOCH + timedelta(seconds=3660)),
        (1061.0, SIM_EPOCH + timedelta(seconds=61 - 3600)),
    ]


def test_a_wall_step_does_not_change_how_long_a_sleep_lasts(loop: SimLoop) -> None:
    clock = clock_of(loop)

    async def main() -> float:
        sleeper = asyncio.create_task(clock.sleep(10))
        await asyncio.sleep(2)
        clock.step_wall(-3600)
        await sleeper
        return loop.time()

    assert run(loop, main) == 10
