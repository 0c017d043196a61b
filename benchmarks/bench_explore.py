"""The split-brain search: how fast it tries schedules, finds and shrinks, against the theory.

Run: ``python benchmarks/bench_explore.py [--quick]``. Prints, measured in one run:

1. schedules tried per wall second by ``explore`` on 1 worker (this process) and on a
   pool of 2 worker processes, over a budget that never fails (so every run is tried);
2. the time to find and shrink the 10/2/8 pause case (pauses up to 30 s), the threshold
   it reports and the theory's prediction beside it;
3. a budget inside the theory's safe region on a config with 5 s of slack, over 1,000
   schedules (``--quick``: 100): the number of failures found (expected: none).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import time
import warnings

from leadersim import SafetyWarning, explore
from leadersim.analysis import theory

SAFE_CONFIG = {"lease_duration": 15, "renew_interval": 2, "renew_deadline": 8}
SAFE_BUDGET = {
    "pause": {"max_duration": 4, "max_count": 2},
    "cut": {"max_duration": 30},
    "slow": {"max_latency_s": 0.5, "max_duration": 20},
    "clock_drift": {"max_ppm": 200},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs: rough numbers")
    args = parser.parse_args()
    warnings.simplefilter("ignore", SafetyWarning)
    logging.disable(logging.WARNING)  # the elector's renew-failure warnings, by the hundred
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    runs = 100 if args.quick else 1000
    base = {"nodes": 3, "duration": 60, "config": SAFE_CONFIG}

    # 1. Throughput: a budget that never breaks, so that every schedule is run.
    rates = {}
    for workers in (1, 2):
        started = time.perf_counter()
        if workers == 1:
            answer = explore(base, SAFE_BUDGET, runs=runs, executor="serial", progress=False)
        else:
            with concurrent.futures.ProcessPoolExecutor(workers) as pool:
                answer = explore(base, SAFE_BUDGET, runs=runs, executor=pool, progress=False)
        elapsed = time.perf_counter() - started
        rates[workers] = answer.runs / elapsed
        print(
            f"{workers} worker(s): {answer.runs} schedules in {elapsed:.2f} s = "
            f"{rates[workers]:.1f} schedules/s (60 simulated s each, 3 nodes)"
        )
        # 3. The same runs are the safe-region check.
        if workers == 1:
            safe = answer
    print(f"speed-up on 2 workers: {rates[2] / rates[1]:.2f}x")

    # 2. Find and shrink the 10/2/8 pause case.
    started = time.perf_counter()
    found = explore(
        {"nodes": 3, "duration": 60},
        {"pause": {"max_duration": 30, "max_count": 3}},
        runs=200,
        seed=0,
        executor="serial",
        progress=False,
    )
    elapsed = time.perf_counter() - started
    threshold = found.threshold or {}
    print(
        f"10/2/8 pause: found after {found.runs} schedule(s), shrunk in {found.shrink_runs} "
        f"runs, {elapsed:.2f} s in all; threshold {threshold.get('value', float('nan')):.3f} s, "
        f"theory {found.theory['predicted']} s ({found.theory['formula']})"
    )

    margin = theory.margin(15, 2, 8, delta_resp=0.5, stop_latency=0.1, pause=4, rho=200e-6)
    print(
        f"safe region (15/2/8, theory margin {margin:.3f} s > 0): {safe.runs} schedules, "
        f"{'a failure found' if safe.found else 'no failure'}"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
