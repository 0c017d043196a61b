"""Simulator speed: how much simulated time a wall second buys, and what it costs.

Run: ``python benchmarks/bench_sim.py [--quick]``. Prints, measured in one run:

1. a 5-node simulated hour with the catalogue's baseline (lognormal 5 ms storage latency,
   one guarded write per second), in wall seconds and simulated node-seconds per wall
   second (target: the hour in under 1 s);
2. renewals per wall second in the simulator (zero latency, idle leader) against a
   baseline of bare SimPy timeouts per second;
3. the simulator's overhead per renewal against the elector's own compute for one
   renewal — get + decide + encode + SQL, the same functions called directly with no
   event loop (target: within 3x).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import simpy

from leadersim.record import Member, RenewTracker, plan_renewal
from leadersim.sim.clock import SIM_EPOCH
from leadersim.sim.scenario import Scenario
from leadersim.sim.storage import StorageServer
from leadersim.sim.world import World
from leadersim.trace import EventKind


def best_of(repeats: int, fn):  # type: ignore[no-untyped-def]
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def simulated_hour(nodes: int, duration: float):  # type: ignore[no-untyped-def]
    scenario = Scenario.from_mapping({"nodes": nodes, "duration": duration})
    return World(scenario, seed=1).run()


def bare_simpy_timeouts(count: int) -> None:
    env = simpy.Environment()

    def ticker(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for _ in range(count):
            yield env.timeout(0.001)

    env.process(ticker(env))
    env.run()


def zero_latency_renewals(nodes: int, duration: float) -> int:
    scenario = Scenario.from_mapping(
        {
            "nodes": nodes,
            "duration": duration,
            "storage": {"latency": {"dist": "constant", "value_s": 0.0}},
            "callback": {"writes_per_s": 0},
        }
    )
    run = World(scenario, seed=1).run()
    return sum(1 for e in run.events if e.kind is EventKind.RENEW_OK)


def direct_renewals(nodes: int, rounds: int) -> None:
    """The elector's own work per renewal, with no loop, no futures, no SimPy."""
    server = StorageServer(simpy.Environment())
    members = [Member(f"n{i}", f"n{i}", f"n{i}:10240", 10.0) for i in range(1, nodes + 1)]
    trackers = [RenewTracker() for _ in members]
    now = 0.0
    for k in range(rounds):
        i = k % nodes
        me, tracker = members[i], trackers[i]
        now += 2.0 / nodes
        read = server.execute_get()
        tracker.observe(read, now)
        plan = plan_renewal(
            read,
            me,
            SIM_EPOCH,
            lambda m, t=tracker, n=now: t.is_expired(m, n),  # type: ignore[misc]
            may_campaign=True,
        )
        plan.record.members[:] = [
            m.renewed(SIM_EPOCH.replace(microsecond=k % 1_000_000)) if m.id == me.id else m
            for m in plan.record.members
        ]
        server.execute_update(plan.record)
        tracker.observe(plan.record, now)


def worker(what: str, nodes: int, duration: float) -> dict[str, float]:
    """One measurement in this process, with whichever ``leadersim`` is importable.

    Uses only ``simulate`` and the trace kinds, which every compared tree has.
    """
    import warnings

    from leadersim.experiment import simulate

    warnings.simplefilter("ignore")  # the reference's default timings leave no slack
    spec = {"nodes": nodes, "duration": duration}
    # A short run first: what the first run imports lazily is not the simulator's cost.
    simulate({"nodes": nodes, "duration": 10.0}, seed=1)
    if what == "memory":
        gc.collect()
        tracemalloc.start()
        result = simulate(spec, seed=1)
        events = len(result.events)
        gc.collect()
        with_result = tracemalloc.get_traced_memory()[0]
        del result  # what the Result held (its trace), not the memos the run left behind
        gc.collect()
        held = with_result - tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return {"bytes_per_event": held / events, "events": events}
    start = time.process_time()
    result = simulate(spec, seed=1)
    cpu = time.process_time() - start
    renewals = sum(1 for e in result.events if e.kind is EventKind.RENEW_OK)
    return {"cpu": cpu, "per_renewal_us": cpu / renewals * 1e6, "renewals": renewals}


def _run_worker(tree: Path, what: str, nodes: int, duration: float) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [sys.executable, __file__, "--worker", what, str(nodes), str(duration)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def against(ref: str, repeats: int, quick: bool) -> None:
    """Measure this tree and ``ref``'s side by side (see the module docstring)."""
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="leadersim-ref-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(here), "archive", ref, "leadersim"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"ref": Path(tmp), "this": here}
        hour = 300.0 if quick else 3600.0
        big = 30.0 if quick else 300.0
        cases = [
            ("hour", "cpu", 5, hour),
            ("N=5", "per_renewal_us", 5, big),
            ("N=100", "per_renewal_us", 100, big),
            ("memory", "bytes_per_event", 5, big),
        ]
        values: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            for name, key, nodes, duration in cases:
                what = "memory" if name == "memory" else "cpu"
                for tree, path in trees.items():
                    values.setdefault((name, tree), []).append(
                        _run_worker(path, what, nodes, duration)[key]
                    )
    print(f"this tree against {ref}, {repeats} alternating rounds (median [min-max]):")

    def row(name: str, unit: str) -> None:
        ref_v, this_v = values[(name, "ref")], values[(name, "this")]
        ratios = [r / t for r, t in zip(ref_v, this_v, strict=True)]
        print(
            f"  {name:<7} ref {statistics.median(ref_v):10.3f} {unit}, this "
            f"{statistics.median(this_v):10.3f} {unit}; ref/this "
            f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        )

    row("hour", "s CPU")
    row("N=5", "us/renewal")
    row("N=100", "us/renewal")
    row("memory", "B/event")
    for tree in ("ref", "this"):
        growth = [
            big_v / small_v
            for big_v, small_v in zip(values[("N=100", tree)], values[("N=5", tree)], strict=True)
        ]
        print(
            f"  per-renewal cost N=100 / N=5 ({tree}): {statistics.median(growth):.2f}x "
            "(goal for this: <= 2x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--against", metavar="REF", help="compare with this git commit")
    parser.add_argument("--repeats", type=int, default=3, help="rounds for --against")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        what, nodes, duration = args.worker
        print(json.dumps(worker(what, int(nodes), float(duration))))
        return
    if args.against:
        against(args.against, args.repeats, args.quick)
        return
    duration = 300.0 if args.quick else 3600.0
    repeats = 1 if args.quick else 3
    random.seed(0)

    best, median, run = best_of(repeats, lambda: simulated_hour(5, duration))
    node_seconds = 5 * duration
    print(f"5 nodes x {duration:g} s simulated (baseline latency, 1 write/s):")
    print(f"  wall best {best:.3f} s, median {median:.3f} s, {len(run.events)} trace events")
    print(f"  simulated node-seconds per wall second: {node_seconds / best:,.0f}")

    count = 20_000 if args.quick else 200_000
    t_simpy, _, _ = best_of(repeats, lambda: bare_simpy_timeouts(count))
    simpy_rate = count / t_simpy
    t_sim, _, renewals = best_of(repeats, lambda: zero_latency_renewals(5, duration))
    sim_rate = renewals / t_sim
    print("renewals in the simulator (zero latency, idle leader):")
    print(
        f"  {sim_rate:,.0f} renewals/s vs {simpy_rate:,.0f} bare SimPy timeouts/s "
        f"(one renewal costs {simpy_rate / sim_rate:.1f} bare timeouts)"
    )

    rounds = renewals
    t_direct, _, _ = best_of(repeats, lambda: direct_renewals(5, rounds))
    per_direct = t_direct / rounds
    per_sim = t_sim / renewals
    print("overhead per renewal:")
    print(
        f"  simulator {per_sim * 1e6:.1f} us vs the elector's own compute "
        f"{per_direct * 1e6:.1f} us (get + decide + encode + SQL, no loop)"
    )
    print(f"  ratio: {per_sim / per_direct:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
