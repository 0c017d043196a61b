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
import random
import statistics
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
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
