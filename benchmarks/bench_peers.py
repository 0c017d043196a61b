"""leadersim's simulated loop against other virtual-time asyncio loops, on one workload.

Run: ``python benchmarks/bench_peers.py [--duration S] [--repeats N]``. The peers are the
``[bench]`` extra (``pip install -e ".[bench]"``); a peer that is not installed, or needs a
newer Python, is skipped with the reason printed.

The workload: 5 real :class:`~leadersim.Elector` members for ``--duration`` simulated
seconds (default one hour) over a small in-memory compare-and-swap storage whose every
operation waits ``asyncio.sleep(LATENCY_S)``: the same coroutines on every loop, so the
loops differ only in how they schedule and advance time. Each loop runs the workload
``--repeats`` times, interleaved (loop A, loop B, ..., then again), and the table gives
each loop's CPU seconds (``time.process_time``, min and median) and its median CPU as a
ratio to leadersim's ``SimLoop`` measured in the same run (below 1: the peer is cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from leadersim import Config, Elector, Record
from leadersim.errors import RecordConflictError, SafetyWarning

#: One-way storage latency of the workload, seconds (each operation sleeps it once).
LATENCY_S = 0.005
NODES = 5


class MemoryCAS:
    """The smallest compare-and-swap storage: one record in memory, a sleep per call."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.record = Record()
        self.ops = 0

    async def get(self) -> Record:
        """The stored record (a copy), after one latency."""
        await asyncio.sleep(self.latency)
        self.ops += 1
        return self.record.clone()

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """Store ``record`` if its version is still the stored one, after one latency."""
        await asyncio.sleep(self.latency)
        self.ops += 1
        if record.version != self.record.version:
            raise RecordConflictError(f"version is no longer {record.version}")
        self.record = Record(record.leader_id, list(record.members), record.version + 1)


async def _lead_forever() -> None:
    await asyncio.Event().wait()


async def workload(duration: float) -> int:
    """Run the 5-member election for ``duration`` loop seconds; return storage ops done."""
    storage = MemoryCAS(LATENCY_S)
    warnings.simplefilter("ignore", SafetyWarning)  # the reference's default timings
    electors = [
        Elector(Config(f"n{i}", storage=storage, leader_callback=_lead_forever), seed=i)
        for i in range(1, NODES + 1)
    ]
    tasks = [asyncio.create_task(e.run_election()) for e in electors]
    await asyncio.sleep(duration)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return storage.ops


Runner = Callable[[Callable[[], Coroutine[Any, Any, int]]], int]


def _run_on(loop: asyncio.AbstractEventLoop, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run the workload to completion on ``loop``, then close it."""
    try:
        return int(loop.run_until_complete(main()))
    finally:
        loop.close()


def run_simloop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """leadersim's ``SimLoop`` (SimPy-clocked)."""
    from leadersim.sim.loop import SimLoop

    return _run_on(SimLoop(), main)


def _looptime(noop_cycles: int) -> Runner:
    def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
        import looptime

        return _run_on(looptime.new_event_loop(noop_cycles=noop_cycles), main)

    return run


def run_detangle(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """detangle in asyncio's own order (no schedule exploration: time is all it fakes)."""
    import detangle

    config = detangle.SimConfig(reorder=False, max_steps=10**9, fail_on_unobserved=False)
    return int(detangle.run(main, config=config))


def run_seedloop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """seedloop's ``DeterministicLoop`` (asyncio's FIFO order, virtual time)."""
    from seedloop._loop import DeterministicLoop

    return _run_on(DeterministicLoop(), main)


class _FirstReady:
    """A scheduling policy that always runs the oldest ready callback (asyncio's order).

    One object for both peers: simloop asks ``choose`` and reads ``diverged_at``; simloom
    calls the class with its loop, asks ``pick`` and reads ``descriptor``.
    """

    diverged_at = None
    descriptor = "first-ready"

    def __init__(self, loop: object = None) -> None:
        pass

    def choose(self, ready: object) -> int:
        return 0

    pick = choose


def run_simloop_peer(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """simloop's ``SimLoop`` with a first-ready policy (no seeded reordering)."""
    import simloop

    loop = simloop.SimLoop(seed=0)
    loop._policy = _FirstReady()
    return _run_on(loop, main)


def run_simloom(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """simloom's ``run`` with a first-ready scheduler (no schedule exploration)."""
    import simloom

    result = simloom.run(main, seed=0, scheduler=_FirstReady, world=False)
    return int(result.value)


#: (label, importable module, minimum Python, runner). The first is the reference.
PEERS: list[tuple[str, str, tuple[int, int], Runner]] = [
    ("leadersim SimLoop", "simpy", (3, 11), run_simloop),
    ("looptime (noop_cycles=0, tuned)", "looptime", (3, 9), _looptime(0)),
    ("looptime (default, noop_cycles=42)", "looptime", (3, 9), _looptime(42)),
    ("detangle", "detangle", (3, 11), run_detangle),
    ("seedloop", "seedloop", (3, 12), run_seedloop),
    ("simloop (FIFO policy)", "simloop", (3, 12), run_simloop_peer),
    ("simloom (FIFO scheduler)", "simloom", (3, 12), run_simloom),
]


def available(peers: list[tuple[str, str, tuple[int, int], Runner]]) -> list[tuple[str, Runner]]:
    """The peers that can run here; print why each other one is skipped."""
    usable = []
    for label, module, minimum, runner in peers:
        if sys.version_info < minimum:
            print(f"skip {label}: needs Python >= {minimum[0]}.{minimum[1]}")
        elif importlib.util.find_spec(module) is None:
            print(f"skip {label}: {module} is not installed (pip install -e '.[bench]')")
        else:
            usable.append((label, runner))
    return usable


def measure(duration: float, repeats: int) -> dict[str, list[float]]:
    """CPU seconds of each usable loop on the workload, ``repeats`` interleaved rounds."""
    loops = available(PEERS)
    cpu: dict[str, list[float]] = {label: [] for label, _ in loops}
    ops: dict[str, int] = {}
    for _ in range(repeats):
        for label, runner in loops:
            start = time.process_time()
            ops[label] = runner(lambda: workload(duration))
            cpu[label].append(time.process_time() - start)
    for label, count in ops.items():
        # Every loop must have done the same work, or the comparison means nothing.
        if count < 0.9 * ops[loops[0][0]]:
            raise SystemExit(f"{label} did only {count} storage ops: the workload did not run")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="simulated seconds")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    cpu = measure(args.duration, args.repeats)
    reference = statistics.median(next(iter(cpu.values())))
    print(
        f"{NODES} electors x {args.duration:g} s simulated, {LATENCY_S * 1000:g} ms latency, "
        f"{args.repeats} interleaved rounds (CPU seconds)"
    )
    print(f"  {'loop':<36} {'min':>8} {'median':>8} {'ratio':>7}")
    for label, times in cpu.items():
        median = statistics.median(times)
        print(f"  {label:<36} {min(times):8.3f} {median:8.3f} {median / reference:7.2f}")
    print("  ratio = the loop's median CPU / leadersim SimLoop's (below 1: cheaper)")


if __name__ == "__main__":
    main()
