"""The SimPy-clocked asyncio loop: stock asyncio on simulated time, per-node pause and crash.

Every test runs a coroutine on a fresh :class:`SimLoop` and reads simulated time only;
none of them waits for real time (an hour of simulated sleep ends at once).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import pytest
import simpy

from leadersim.sim.loop import NodeTag, SimLoop, SimulationDeadlock, current_node

T = TypeVar("T")


def run(loop: SimLoop, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return loop.run_until_complete(main())


# ---------------------------------------------------------------------------- time


def test_loop_time_is_simpy_now_and_an_hour_of_sleep_is_simulated(loop: SimLoop) -> None:
    seen: list[tuple[float, float]] = []

    async def main() -> None:
        seen.append((loop.time(), loop.env.now))
        await asyncio.sleep(3600)
        seen.append((loop.time(), loop.env.now))
        await asyncio.sleep(0.25)
        seen.append((asyncio.get_running_loop().time(), loop.env.now))

    run(loop, main)
    assert seen == [(0, 0), (3600, 3600), (3600.25, 3600.25)]


def test_loop_runs_on_a_given_environment_starting_at_its_time() -> None:
    env = simpy.Environment(initial_time=100)
    loop = SimLoop(env)
    try:

        async def main() -> float:
            await asyncio.sleep(5)
            return loop.time()

        assert loop.run_until_complete(main()) == 105
        assert env.now == 105
    finally:
        loop.close()


def test_simpy_processes_and_asyncio_tasks_interleave_in_time_order(loop: SimLoop) -> None:
    env = loop.env
    log: list[tuple[float, str]] = []

    def simpy_process() -> Generator[simpy.Event, Any, None]:
        for _ in range(3):
            yield env.timeout(1.5)
            log.append((env.now, "simpy"))

    async def asyncio_task() -> None:
        for _ in range(4):
            await asyncio.sleep(1)
            log.append((loop.time(), "asyncio"))

    env.process(simpy_process())
    run(loop, asyncio_task)
    assert log == [
        (1, "asyncio"),
        (1.5, "simpy"),
        (2, "asyncio"),
        (3, "simpy"),
        (3, "asyncio"),
        (4, "asyncio"),
    ]


def test_a_simpy_event_resolves_an_asyncio_future_at_its_simulated_time(loop: SimLoop) -> None:
    async def main() -> tuple[str, float]:
        future: asyncio.Future[str] = loop.create_future()
        event = loop.env.timeout(7.5)
        event.callbacks.append(lambda _event: future.set_result("reply"))
        value = await future
        return value, loop.time()

    assert run(loop, main) == ("reply", 7.5)


# ---------------------------------------------------------------------------- stock asyncio


def test_stock_asyncio_primitives_run_unchanged_on_simulated_time(loop: SimLoop) -> None:
    log: list[tuple[str, float]] = []

    def note(what: str) -> None:
        log.append((what, loop.time()))

    async def produce(queue: asyncio.Queue[int]) -> None:
        for item in range(3):
            await asyncio.sleep(2)
            await queue.put(item)

    async def worker(delay: float, result: str) -> str:
        await asyncio.sleep(delay)
        return result

    async def main() -> None:
        # timeout
        try:
            async with asyncio.timeout(5):
                await asyncio.sleep(60)
        except TimeoutError:
            note("timeout")
        # wait_for, both outcomes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), timeout=1)
        note("wait_for timed out")
        assert await asyncio.wait_for(worker(1, "in time"), timeout=2) == "in time"
        note("wait_for done")
        # gather keeps argument order, ends with the slowest
        assert await asyncio.gather(worker(3, "a"), worker(1, "b")) == ["a", "b"]
        note("gather")
        # TaskGroup + Queue
        queue: asyncio.Queue[int] = asyncio.Queue()
        got: list[tuple[int, float]] = []
        async with asyncio.TaskGroup() as group:
            group.create_task(produce(queue))
            for _ in range(3):
                got.append((await queue.get(), loop.time()))
        assert got == [(0, 12), (1, 14), (2, 16)]
        note("taskgroup")
        # Event set by another task
        event = asyncio.Event()
        loop.call_later(4, event.set)
        await event.wait()
        note("event")

    run(loop, main)
    assert log == [
        ("timeout", 5),
        ("wait_for timed out", 6),
        ("wait_for done", 7),
        ("gather", 10),
        ("taskgroup", 16),
        ("event", 20),
    ]


def test_cancellation_runs_the_cancelled_tasks_cleanup_at_the_cancel_instant(
    loop: SimLoop,
) -> None:
    log: list[tuple[str, float]] = []

    async def victim() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            log.append(("cancelled", loop.time()))
            await asyncio.sleep(0.5)  # cleanup that takes simulated time
            log.append(("cleaned up", loop.time()))
            raise

    async def main() -> None:
        task = asyncio.create_task(victim())
        await asyncio.sleep(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        log.append(("awaited", loop.time()))

    run(loop, main)
    assert log == [("cancelled", 3), ("cleaned up", 3.5), ("awaited", 3.5)]


def test_a_failing_task_group_cancels_its_siblings_in_simulated_time(loop: SimLoop) -> None:
    stopped_at: list[float] = []

    async def sibling() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            stopped_at.append(loop.time())

    async def failing() -> None:
        await asyncio.sleep(2)
        raise ValueError("boom")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(sibling())
            group.create_task(failing())

    with pytest.raises(ExceptionGroup) as raised:
        run(loop, main)
    assert raised.group_contains(ValueError, match="boom")
    assert stopped_at == [2]


def test_deadlock_raises_naming_the_simulated_time(loop: SimLoop) -> None:
    async def main() -> None:
        await asyncio.sleep(12.5)
        await asyncio.Event().wait()  # nothing will ever set it

    with pytest.raises(SimulationDeadlock, match=r"t=12\.5"):
        run(loop, main)


def test_run_in_executor_and_to_thread_are_refused(loop: SimLoop) -> None:
    async def executor() -> None:
        await loop.run_in_executor(None, print, "thread")

    async def to_thread() -> None:
        await asyncio.to_thread(print, "thread")

    with pytest.raises(RuntimeError, match="not available in simulation mode"):
        run(loop, executor)
    with pytest.raises(RuntimeError, match="not available in simulation mode"):
        run(loop, to_thread)


# ---------------------------------------------------------------------------- nodes: tagging


def test_spawned_tasks_and_their_children_carry_the_node_tag(loop: SimLoop) -> None:
    seen: list[tuple[str, NodeTag | None]] = []

    async def child() -> None:
        await asyncio.sleep(1)
        seen.append(("child", current_node()))

    async def node_main() -> None:
        seen.append(("main", current_node()))
        await asyncio.create_task(child())

    tag = NodeTag("n1")

    async def main() -> None:
        seen.append(("environment", current_node()))
        await loop.spawn(tag, node_main())

    run(loop, main)
    assert seen == [("environment", None), ("main", tag), ("child", tag)]


# ---------------------------------------------------------------------------- nodes: pause


def ticker(loop: SimLoop, log: list[tuple[float, str]], name: str, period: float) -> Any:
    async def tick() -> None:
        while True:
            await asyncio.sleep(period)
            log.append((loop.time(), name))

    return tick()


def test_paused_node_runs_nothing_during_the_pause_and_others_carry_on(loop: SimLoop) -> None:
    log: list[tuple[float, str]] = []
    n1, n2 = NodeTag("n1"), NodeTag("n2")

    async def main() -> None:
        loop.spawn(n1, ticker(loop, log, "n1", 1))
        loop.spawn(n2, ticker(loop, log, "n2", 1))
        await asyncio.sleep(2.5)
        loop.pause(n1)
        await asyncio.sleep(5)  # n1 paused during (2.5, 7.5)
        loop.resume(n1)
        await asyncio.sleep(2.8)

    run(loop, main)
    n1_times = [t for t, name in log if name == "n1"]
    n2_times = [t for t, name in log if name == "n2"]
    assert n2_times == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    # The tick due at 3 was held and runs at the resume; the next sleep starts from there.
    assert n1_times == [1, 2, 7.5, 8.5, 9.5]


def staggered_wakeups(log: list[str], unit: float) -> Coroutine[Any, Any, None]:
    """Three tasks and a timer, created in one order and due in another."""

    async def wake_at(delay: float, name: str) -> None:
        await asyncio.sleep(delay * unit)
        log.append(name)

    async def node_main() -> None:
        # Due: b at 3, timer at 3.5, a at 4, c at 5 (units).
        tasks = [
            asyncio.create_task(wake_at(4, "a")),
            asyncio.create_task(wake_at(3, "b")),
            asyncio.create_task(wake_at(5, "c")),
        ]
        asyncio.get_running_loop().call_later(3.5 * unit, log.append, "timer")
        await asyncio.wait(tasks)
        await asyncio.sleep(1000 * unit)

    return node_main()


def test_resumed_node_runs_what_it_held_in_the_order_a_real_loop_does_after_a_stall(
    loop: SimLoop,
) -> None:
    # Simulated: the node is paused during (1, 10); everything falls due inside.
    tag = NodeTag("n1")
    simulated: list[str] = []
    resumed_at: list[float] = []

    async def main() -> None:
        loop.spawn(tag, staggered_wakeups(simulated, unit=1.0))
        loop.call_later(20, simulated.append, "late")
        await asyncio.sleep(1)
        loop.pause(tag)
        await asyncio.sleep(9)
        assert simulated == []  # all of it was held
        loop.resume(tag)
        for _ in range(10):  # a few loop iterations, no simulated time
            await asyncio.sleep(0)
        resumed_at.append(loop.time())
        assert len(simulated) == 4
        await asyncio.sleep(15)

    run(loop, main)

    # Real: the same code on a stock loop whose thread stalls (a SIGSTOP or GC pause)
    # while all of it falls due. Expired timers run in due order; the tasks they wake
    # take their steps after, in the same order.
    real: list[str] = []

    async def real_main() -> None:
        task = asyncio.create_task(staggered_wakeups(real, unit=0.01))
        await asyncio.sleep(0.005)
        time.sleep(0.2)  # noqa: ASYNC251 - the stall itself: the loop's thread does nothing
        await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(real_main())
    assert real == ["timer", "b", "a", "c"]
    assert simulated == [*real, "late"]
    assert resumed_at == [10]


def test_a_reply_that_arrives_during_a_pause_is_seen_only_at_the_resume(loop: SimLoop) -> None:
    tag = NodeTag("n1")
    got: list[tuple[str, float]] = []

    async def node_main() -> None:
        future: asyncio.Future[str] = loop.create_future()
        # The environment (SimPy) answers at t=4, while the node is paused.
        loop.env.timeout(4).callbacks.append(lambda _event: future.set_result("reply"))
        got.append((await future, loop.time()))

    async def main() -> None:
        loop.spawn(tag, node_main())
        await asyncio.sleep(2)
        loop.pause(tag)
        await asyncio.sleep(6)
        loop.resume(tag)
        await asyncio.sleep(1)

    run(loop, main)
    assert got == [("reply", 8)]


def test_a_paused_node_timeout_fires_only_after_the_resume(loop: SimLoop) -> None:
    tag = NodeTag("n1")
    fired: list[float] = []

    async def node_main() -> None:
        try:
            async with asyncio.timeout(3):
                await asyncio.sleep(100)
        except TimeoutError:
            fired.append(loop.time())

    async def main() -> None:
        loop.spawn(tag, node_main())
        await asyncio.sleep(1)
        loop.pause(tag)
        await asyncio.sleep(10)
        loop.resume(tag)
        await asyncio.sleep(1)

    run(loop, main)
    assert fired == [11]


# ---------------------------------------------------------------------------- nodes: crash


def test_crashed_node_never_runs_again_nor_its_cleanup_and_others_carry_on(
    loop: SimLoop,
) -> None:
    log: list[tuple[float, str]] = []
    n1, n2 = NodeTag("n1"), NodeTag("n2")

    async def node_work(name: str) -> None:
        try:
            while True:
                await asyncio.sleep(1)
                log.append((loop.time(), name))
        except asyncio.CancelledError:
            log.append((loop.time(), f"{name} cancelled"))
            raise
        finally:
            log.append((loop.time(), f"{name} finally"))

    async def main() -> None:
        loop.spawn(n1, node_work("n1"))
        loop.spawn(n2, node_work("n2"))
        await asyncio.sleep(2.5)
        loop.crash(n1)
        await asyncio.sleep(5)

    run(loop, main)
    assert [t for t, name in log if name.startswith("n1")] == [1, 2]
    assert [t for t, name in log if name == "n2"] == [1, 2, 3, 4, 5, 6, 7]


def test_crashed_node_cleanup_does_not_run_at_garbage_collection_during_the_run(
    loop: SimLoop,
) -> None:
    cleanups: list[float] = []

    async def node_work() -> None:
        try:
            await asyncio.sleep(1)
            await asyncio.sleep(1000)
        finally:
            cleanups.append(loop.time())

    async def main() -> None:
        tag = NodeTag("n1")
        loop.spawn(tag, node_work())
        await asyncio.sleep(0.5)
        loop.crash(tag)
        # Drop every reference the caller holds (as a restart that replaces the tag
        # does), let the held wake-up at t=1 be dropped, then collect garbage.
        del tag
        await asyncio.sleep(2)
        gc.collect()
        await asyncio.sleep(1)

    run(loop, main)
    assert cleanups == []


def test_crashing_a_paused_node_drops_what_it_held(loop: SimLoop) -> None:
    log: list[float] = []
    tag = NodeTag("n1")

    async def node_main() -> None:
        await asyncio.sleep(2)
        log.append(loop.time())

    async def main() -> None:
        loop.spawn(tag, node_main())
        await asyncio.sleep(1)
        loop.pause(tag)
        await asyncio.sleep(2)
        loop.crash(tag)
        loop.resume(tag)  # a late resume (e.g. the pause's end) must not revive it
        await asyncio.sleep(5)

    run(loop, main)
    assert log == []


def test_a_restarted_node_is_a_new_incarnation_independent_of_the_crashed_one(
    loop: SimLoop,
) -> None:
    log: list[tuple[float, str]] = []

    async def main() -> None:
        first = NodeTag("n1", incarnation=0)
        loop.spawn(first, ticker(loop, log, "n1#0", 1))
        await asyncio.sleep(2.5)
        loop.crash(first)
        await asyncio.sleep(2)
        second = NodeTag("n1", incarnation=1)
        loop.spawn(second, ticker(loop, log, "n1#1", 1))
        await asyncio.sleep(2)

    run(loop, main)
    assert log == [(1, "n1#0"), (2, "n1#0"), (5.5, "n1#1"), (6.5, "n1#1")]


# ---------------------------------------------------------------------------- failures


class Boom(Exception):
    """The error a test plants inside a simulated callback."""


def _boom(at: str) -> None:
    raise Boom(at)


def _plant_call_soon(loop: SimLoop) -> None:
    loop.call_later(5, lambda: loop.call_soon(_boom, "call_soon"))


def _plant_timer(loop: SimLoop) -> None:
    loop.call_later(5, _boom, "timer")


def _plant_node_timer(loop: SimLoop) -> None:
    async def node() -> None:
        asyncio.get_running_loop().call_later(5, _boom, "node timer")
        await asyncio.sleep(1000)

    loop.spawn(NodeTag("n1"), node())


def _plant_done_callback(loop: SimLoop) -> None:
    future: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(lambda _f: _boom("done callback"))
    loop.call_later(5, future.set_result, None)


def _plant_simpy_resolved_future_callback(loop: SimLoop) -> None:
    future: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(lambda _f: _boom("simpy-resolved future"))
    loop.env.timeout(5).callbacks.append(lambda _event: future.set_result(None))


def _plant_unretrieved_task(loop: SimLoop) -> None:
    async def fails() -> None:
        await asyncio.sleep(5)
        _boom("task")

    loop.create_task(fails())  # nobody awaits it


def _plant_unretrieved_node_task(loop: SimLoop) -> None:
    async def fails() -> None:
        await asyncio.sleep(5)
        _boom("node task")

    loop.spawn(NodeTag("n1"), fails())


def _plant_future_dropped_with_exception(loop: SimLoop) -> None:
    def drop() -> None:
        future: asyncio.Future[None] = loop.create_future()
        future.set_exception(Boom("future"))
        del future  # its last reference: asyncio reports it as never retrieved

    loop.call_later(5, drop)


PLANTS = {
    "call_soon": _plant_call_soon,
    "timer": _plant_timer,
    "node timer": _plant_node_timer,
    "done callback": _plant_done_callback,
    "simpy-resolved future": _plant_simpy_resolved_future_callback,
    "task": _plant_unretrieved_task,
    "node task": _plant_unretrieved_node_task,
    "future": _plant_future_dropped_with_exception,
}


@pytest.mark.parametrize("where", sorted(PLANTS))
def test_an_exception_inside_any_simulated_callback_fails_the_run_with_that_error(
    loop: SimLoop, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    PLANTS[where](loop)

    with pytest.raises(Boom) as raised:
        loop.run_until_complete(asyncio.sleep(100))
    assert raised.value.args == (where,)
    notes = raised.value.__notes__
    assert len(notes) == 1
    assert "\n" not in notes[0]
    assert notes[0].startswith("leadersim: raised inside the simulated loop at t=5.000000 s")
    # Never only logged by asyncio's exception handler.
    assert not [r for r in caplog.records if r.name == "asyncio"]


@pytest.mark.parametrize("where", ["call_soon", "timer", "node timer", "done callback"])
def test_a_failing_callback_stops_the_run_at_its_instant(loop: SimLoop, where: str) -> None:
    later: list[float] = []
    PLANTS[where](loop)
    loop.call_later(6, lambda: later.append(loop.time()))

    with pytest.raises(Boom):
        loop.run_until_complete(asyncio.sleep(100))
    assert loop.time() == 5
    assert later == []


def test_the_first_failure_is_raised_and_the_loop_can_run_again(loop: SimLoop) -> None:
    loop.call_later(5, _boom, "first")
    loop.call_later(5, _boom, "second")
    with pytest.raises(Boom, match="first"):
        loop.run_until_complete(asyncio.sleep(100))
    # The recorded failure is spent: the next run starts clean and runs to its end.
    loop.run_until_complete(asyncio.sleep(1))
    assert loop.time() == 6


def test_a_task_exception_retrieved_before_the_run_ends_does_not_fail_it(loop: SimLoop) -> None:
    async def fails() -> None:
        await asyncio.sleep(1)
        raise Boom("handled")

    async def main() -> str:
        task = asyncio.create_task(fails())
        await asyncio.sleep(10)  # the task has failed long ago; it is awaited late
        try:
            await task
        except Boom as exc:
            return str(exc)
        return "not raised"

    assert loop.run_until_complete(main()) == "handled"


def test_a_failed_task_of_a_node_that_crashed_before_it_was_awaited_is_quiet(
    loop: SimLoop, caplog: pytest.LogCaptureFixture
) -> None:
    tag = NodeTag("n1")

    async def fails() -> None:
        await asyncio.sleep(1)
        raise Boom("dropped with the crash")

    async def node() -> None:
        child = asyncio.create_task(fails())
        await asyncio.sleep(2)  # the crash at t=1.5 drops this node before it awaits
        await child

    async def main() -> None:
        loop.spawn(tag, node())
        await asyncio.sleep(1.5)
        loop.crash(tag)
        await asyncio.sleep(10)

    loop.run_until_complete(main())
    assert loop.time() == 11.5
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_the_main_coroutines_own_error_still_propagates(loop: SimLoop) -> None:
    async def main() -> None:
        await asyncio.sleep(1)
        raise Boom("main")

    with pytest.raises(Boom, match="main") as raised:
        loop.run_until_complete(main())
    assert not getattr(raised.value, "__notes__", [])
