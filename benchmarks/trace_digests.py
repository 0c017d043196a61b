"""A digest of every catalogue variant's trace: has a change kept the traces byte-identical?

Run: ``python benchmarks/trace_digests.py OUT.txt [--seeds 1,2] [--workers N]``. For each
catalogue entry, each of its variants and each seed (default 1 and 2), plus three larger
runs (5 nodes for 10 simulated minutes, 30 nodes for 2 minutes, and 5 nodes with late
timers), it writes one line: the run, its number of events and the first 16 hex digits of
the SHA-256 of its trace as JSON lines (:meth:`~leadersim.trace.TraceEvent.to_dict`, one
per line). Run it before and after a change and ``diff`` the two files: a speed change
must leave every line as it was; a change of behaviour shows which runs it moves.

The digests hold for one platform: a lognormal latency goes through ``math.exp`` and
``math.log``, whose last bit may differ between C libraries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: The larger runs, as scenario mappings (the catalogue's runs are short).
EXTRA: list[tuple[str, dict[str, Any], int]] = [
    ("5 nodes, 600 s", {"nodes": 5, "duration": 600}, 1),
    ("30 nodes, 120 s", {"nodes": 30, "duration": 120}, 3),
    (
        "5 nodes, 600 s, late timers",
        {
            "nodes": 5,
            "duration": 600,
            "timers": {"lateness": {"dist": "lognormal", "median_s": 0.001, "sigma": 0.5}},
        },
        1,
    ),
]


def digest(job: tuple[str, str | None, str | None, int]) -> str:
    """One line: ``NAME[VARIANT]#SEED EVENTS DIGEST`` (a mapping run is named by its label)."""
    from leadersim.sim.scenario import Scenario
    from leadersim.sim.scenarios import CATALOGUE
    from leadersim.sim.world import World

    warnings.simplefilter("ignore")  # the catalogue's zero-slack configs warn, by design
    name, variant, spec, seed = job
    if spec is not None:
        scenario = Scenario.from_mapping(json.loads(spec))
        label = name
    else:
        scenario = CATALOGUE[name].scenario(variant)
        label = f"{name}[{variant}]"
    run = World(scenario, seed=seed).run()
    hashed = hashlib.sha256()
    for event in run.events:
        hashed.update(json.dumps(event.to_dict()).encode())
        hashed.update(b"\n")
    return f"{label}#{seed} {len(run.events)} {hashed.hexdigest()[:16]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="file to write the digests to")
    parser.add_argument("--seeds", default="1,2", help="comma-separated seeds (1,2)")
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds or args.workers < 1:
        parser.error("--seeds must name at least one seed and --workers be at least 1")

    from leadersim.sim.scenarios import CATALOGUE

    jobs: list[tuple[str, str | None, str | None, int]] = [
        (name, variant, None, seed)
        for name, entry in CATALOGUE.items()
        for variant in entry.variants
        for seed in seeds
    ]
    jobs += [(label, None, json.dumps(spec), seed) for label, spec, seed in EXTRA]
    with ProcessPoolExecutor(args.workers) as pool:
        lines = list(pool.map(digest, jobs))
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    print(f"{len(lines)} runs digested into {args.out}")


if __name__ == "__main__":
    main()
