"""Judging runs against the catalogue's expected verdicts.

The catalogue itself (its entries, variants and :class:`~leadersim.sim.scenarios.Expect`
statements) is data, read by :mod:`leadersim.sim.scenarios`; this module joins it to the
analysis: :func:`scenario_metrics` computes the metrics an expectation names from a
trace, :func:`check` judges a set of runs, and :func:`run_entry` runs an entry's variants
over its seeds. It lives outside ``leadersim/sim/`` because the simulator never imports
the analysis. The catalogue's own names (:data:`CATALOGUE`, :func:`add_catalogue`, ...)
are re-exported here, so one import serves a notebook.

Example::

    from leadersim import simulate
    from leadersim.catalogue import CATALOGUE, check, scenario_metrics

    entry = CATALOGUE["leader-crash"]
    runs = {v: [simulate(entry.scenario(v), seed=s) for s in (0, 1)] for v in entry.variants}
    metrics = {v: [scenario_metrics(r.events, r.end_time) for r in rs] for v, rs in runs.items()}
    print(check(entry, metrics) or "as expected")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from leadersim.analysis.intervals import acting_intervals, summarize
from leadersim.sim.scenario import Scenario
from leadersim.sim.scenarios import (
    BY_ID,
    CATALOGUE,
    CatalogueEntry,
    Expect,
    add_catalogue,
    load_catalogue,
)
from leadersim.trace import EventKind, TraceEvent

__all__ = [
    "BY_ID",
    "CATALOGUE",
    "CatalogueEntry",
    "Expect",
    "add_catalogue",
    "check",
    "load_catalogue",
    "run_entry",
    "scenario_metrics",
]


def scenario_metrics(events: Sequence[TraceEvent], end_time: float) -> dict[str, float | None]:
    """The summary metrics of a run plus the derived ones the catalogue judges.

    The keys are :data:`leadersim.sim.scenarios.METRICS`. Derived metrics (seconds of
    true time unless said otherwise; ``None`` if undefined):

    - ``takeover_s``: from the first fault to the first callback start on a node other
      than the one acting when it began;
    - ``first_start_after_fault_at``: when the first callback after the first fault
      started (any node);
    - ``old_leader_back_s``: from the first fault until the node acting then starts a
      callback again (infinite if it never does);
    - ``old_leader_stop_s``: from the first fault until the callback that was running when
      it began has stopped (infinite if it runs to the end of the run);
    - ``same_leader_at_end``: 1 if the node acting at the first fault acts at the end;
    - ``last_term_s``: how long the last callback term has lasted at the end of the run;
    - ``renew_failed``: renew rounds that failed for their whole deadline (all nodes);
    - ``conflict_share``: share of renew rounds whose first try lost the CAS.
    """
    summary = summarize(events, end_time)
    metrics: dict[str, float | None] = {
        k: (float(v) if isinstance(v, int | float | bool) else None)
        for k, v in summary.as_dict().items()
        if k != "failover_all_s"
    }
    metrics["failover_max_s"] = max(summary.failover_s) if summary.failover_s else None
    acting = acting_intervals(events, end_time)
    faults = [e for e in events if e.kind is EventKind.FAULT_START]
    first_fault = faults[0].true_time if faults else None
    old: str | None = None
    stop: float | None = None
    if first_fault is not None:
        during = [i for i in acting if i.start <= first_fault <= i.end]
        old = during[0].node if during else None
        if during:
            stop = math.inf if during[0].end_reason == "run_end" else during[0].end - first_fault
    starts = sorted((i.start, i.node) for i in acting)
    takeover = back = first_after = None
    if first_fault is not None:
        after = [(t, n) for t, n in starts if t > first_fault]
        if after:
            first_after = after[0][0]
        others = [t for t, n in after if n != old]
        takeover = others[0] - first_fault if others else None
        again = [t for t, n in after if n == old]
        back = again[0] - first_fault if again else math.inf
    metrics["takeover_s"] = takeover
    metrics["first_start_after_fault_at"] = first_after
    metrics["old_leader_back_s"] = back
    metrics["old_leader_stop_s"] = stop
    final = [i.node for i in acting if i.end >= end_time]
    metrics["same_leader_at_end"] = float(old is not None and old in final)
    metrics["last_term_s"] = (end_time - starts[-1][0]) if starts else None
    rounds = first_conflicts = renew_failed = 0
    for event in events:
        if event.kind is EventKind.RENEW_STARTED:
            rounds += 1
        elif event.kind is EventKind.CAS_CONFLICT and event.details.get("op") == "renew":
            if event.details.get("attempt") == 1:
                first_conflicts += 1
        elif event.kind is EventKind.RENEW_FAILED:
            renew_failed += 1
    metrics["renew_failed"] = float(renew_failed)
    metrics["conflict_share"] = first_conflicts / rounds if rounds else None
    return metrics


def check(
    entry: CatalogueEntry, metrics: Mapping[str, Sequence[Mapping[str, float | None]]]
) -> list[str]:
    """Judge runs against an entry's expected verdict.

    Args:
        entry: The catalogue entry.
        metrics: For each variant run, the :func:`scenario_metrics` of every seed.

    Returns:
        One readable line per expectation that does not hold (empty: all hold).
    """
    failures: list[str] = []
    for expect in entry.expect:
        variants = [expect.variant] if expect.variant else list(metrics)
        for variant in variants:
            if variant not in metrics:
                failures.append(f"{entry.name}: variant {variant!r} was not run")
                continue
            values = [m.get(expect.metric) for m in metrics[variant]]
            if not expect.judge(values):
                shown = [None if v is None else round(v, 3) for v in values]
                failures.append(
                    f"{entry.name}[{variant}]: expected {expect.describe()}; got {shown}"
                )
    return failures


def run_entry(
    entry: CatalogueEntry,
    runner: Callable[[Scenario, int], tuple[Sequence[TraceEvent], float]],
    *,
    seeds: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
) -> dict[str, list[dict[str, float | None]]]:
    """Run every variant of ``entry`` over its seeds; return the metrics per variant.

    Args:
        entry: The catalogue entry.
        runner: Runs one scenario with one seed and returns its trace and end time (s).
        seeds: The seeds (``None``: the entry's own).
        variants: The variants (``None``: all of them).
    """
    results: dict[str, list[dict[str, float | None]]] = {}
    for variant in variants or list(entry.variants):
        scenario = entry.scenario(variant)
        results[variant] = [
            scenario_metrics(*runner(scenario, seed)) for seed in (seeds or entry.seeds)
        ]
    return results
