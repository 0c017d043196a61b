"""Sweeps in parallel and the analysis of a long run: how fast, measured side by side.

Run: ``python benchmarks/bench_analysis.py [--quick]``. Prints, measured in one run:

1. one sweep of ``--runs`` simulated runs (default 200: a 5 x 4 lease x stop-latency grid
   of ``zero-slack-defaults`` shortened to 600 s, x 10 seeds) three ways: serially in
   this process, on a 2-worker process pool (its start-up included), and, if
   ``dask.distributed`` is installed, on a 2-worker ``LocalCluster`` through
   ``client.get_executor()`` (cluster start-up reported apart). The speed-up of each over
   the serial run (target >= 1.7x for the process pool on 2 cores), and whether each
   DataFrame equals the serial one;
2. the analysis of a 5-node simulated day (a 20-s storage cut of the leader every 10
   minutes and a 15-s pause of it every hour), best of ``--repeats`` on a fresh
   ``Result`` each: the verdict, the leadership views (intervals, windows, gaps, terms,
   failovers, writes, faults, committed leader, clocks) and the timeline rendered to PNG
   (target: under 2 s together); then the two bulk frames with a row per storage
   operation and per event, reported apart. The simulation is timed too, outside the
   target.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from leadersim import SafetyWarning
from leadersim.analysis.result import Result
from leadersim.experiment import simulate
from leadersim.sweep import sweep

SCENARIO = "zero-slack-defaults"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def sweep_parameters(runs: int) -> tuple[dict[str, object], int]:
    leases = [10, 11, 12, 13, 14]
    stops = [0.1, 0.5, 1.0, 2.0]
    seeds = max(1, -(-runs // (len(leases) * len(stops))))
    parameters: dict[str, object] = {
        "duration": 600.0,
        "config.lease_duration": leases,
        "callback.stop_latency": stops,
    }
    return parameters, seeds


def bench_sweeps(runs: int) -> None:
    parameters, seeds = sweep_parameters(runs)
    total = 20 * seeds
    print(
        f"1. sweep of {total} runs ({SCENARIO}, 600 s each; "
        f"5 leases x 4 stop latencies x {seeds} seeds)"
    )

    started = time.perf_counter()
    serial = sweep(SCENARIO, parameters, seeds, executor="serial", progress=False)
    serial_s = time.perf_counter() - started
    print(f"  serial                 {serial_s:7.2f} s  ({total / serial_s:5.1f} runs/s)")

    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        pooled = sweep(SCENARIO, parameters, seeds, executor=pool, progress=False)
    pool_s = time.perf_counter() - started
    same = serial.equals(pooled)
    print(
        f"  process pool, 2 workers {pool_s:6.2f} s  speed-up {serial_s / pool_s:.2f}x "
        f"(target >= 1.7x); identical to serial: {same}"
    )

    try:
        import distributed
    except ImportError:
        print("  dask.distributed: not installed (pip install 'leadersim[dask]'), skipped")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's start-up chatter
        started = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            startup_s = time.perf_counter() - started
            started = time.perf_counter()
            dasked = sweep(
                SCENARIO, parameters, seeds, executor=client.get_executor(), progress=False
            )
            dask_s = time.perf_counter() - started
    print(
        f"  dask LocalCluster, 2 workers {dask_s:5.2f} s  speed-up {serial_s / dask_s:.2f}x "
        f"(+{startup_s:.2f} s cluster start-up); identical to serial: {serial.equals(dasked)}"
    )


def day_scenario(duration: float) -> dict[str, object]:
    faults: list[dict[str, object]] = []
    for at in range(300, int(duration), 600):
        faults.append({"at": float(at), "kind": "cut", "target": "leader", "duration": 20})
    for at in range(1800, int(duration), 3600):
        faults.append({"at": float(at), "kind": "pause", "target": "leader", "duration": 15})
    faults.sort(key=lambda f: f["at"])  # type: ignore[arg-type, return-value]
    return {"name": "five-node-day", "nodes": 5, "faults": faults, "duration": duration}


def bench_analysis(duration: float, repeats: int) -> None:
    print(f"2. analysis of a 5-node simulated run of {duration:g} s")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)
        run = simulate(day_scenario(duration), seed=1)
    print(
        f"  simulation (not in the target): {time.perf_counter() - started:.2f} s, "
        f"{len(run.events):,} trace events"
    )

    # best of --repeats, each on a fresh Result (nothing cached between repeats)
    best: dict[str, float] = {}
    result = None
    for _ in range(repeats):
        result = Result(run.events, run.end_time, name=run.name, seed=run.seed)
        for label, seconds in analyse(result):
            best[label] = min(best.get(label, float("inf")), seconds)
    assert result is not None
    core = sum(best[label] for label in CORE)
    bulk = sum(best[label] for label in BULK)
    for label in (*CORE, *BULK):
        print(f"  {label:<24} {best[label]:6.3f} s")
    print(f"  verdict + views + timeline: {core:.3f} s (target < 2 s)")
    print(
        f"  bulk per-row frames (storage_ops, trace): {bulk:.3f} s; everything: {core + bulk:.3f} s"
    )
    print(f"  verdict: {result.verdict.line()}")


#: The verdict, the frames that answer questions about leadership, and the timeline.
CORE = (
    "summary",
    "intervals",
    "windows",
    "gaps",
    "terms",
    "failovers",
    "writes",
    "faults",
    "committed_leader",
    "clocks",
    "timeline + PNG",
)
#: The frames with a row per storage operation and per event.
BULK = ("storage_ops", "trace (events frame)")


def analyse(result: Result) -> list[tuple[str, float]]:
    """Time each part of the analysis of ``result``, in the order a user would ask."""
    timings: list[tuple[str, float]] = []

    def render() -> None:
        ax = result.plot_timeline()
        buffer = io.BytesIO()
        ax.figure.savefig(buffer, format="png", dpi=100)
        plt.close(ax.figure)

    steps = [(label, getattr(result, label)) for label in CORE[:-1]]
    steps += [("timeline + PNG", render), ("storage_ops", result.storage_ops)]
    steps.append(("trace (events frame)", lambda: result.trace))
    for label, step in steps:
        began = time.perf_counter()
        step()
        timings.append((label, time.perf_counter() - began))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--runs", type=int, default=200, help="runs in the sweep")
    parser.add_argument("--day", type=float, default=86400.0, help="simulated seconds")
    parser.add_argument("--repeats", type=int, default=3, help="analysis repeats (best of)")
    args = parser.parse_args()
    runs, day = (20, 3600.0) if args.quick else (args.runs, args.day)
    repeats = 1 if args.quick else args.repeats
    pd.set_option("display.width", 120)
    print(f"bench_analysis: {load()}, {os.cpu_count()} CPUs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)  # zero-slack configs, on purpose
        bench_sweeps(runs)
    bench_analysis(day, repeats)
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
