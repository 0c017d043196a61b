"""Safety and liveness over random fault schedules inside the protocol's assumptions.

Seeded loops (deterministic, no hypothesis database): each seed draws a schedule with
``leadersim.sim.faults.random_schedule`` — storage cuts of any mode and of any length up
to 40 s, pauses of at most 1 s, slow storage of at most 0.5 s per operation, crashes each
followed by a restart of the same node — and runs three members with 15/2/8 (slack
S = 5 s) and a callback stop latency C = 0.1 s for 140 simulated seconds.

"Inside the assumptions" is kept by construction: a schedule is redrawn (from the same
seeded stream) until, even if every pause and every slow spell hit one node at the worst
moment, the round-trip trouble plus pauses plus C stays well inside S, and a renew round
(two operations) still fits in D. Then the spec promises (scenarios.md §1):

- safety: no two nodes ever act as leader at the same true time (``overlap_s == 0``);
- liveness: once every fault has healed, exactly one node acts within
  L + 2·I (+ a small margin) and keeps acting.

A failing seed prints the one line that replays it. ``LEADERSIM_FULL=1`` runs 2000 seeds.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from leadersim import Result, simulate
from leadersim.sim.faults import Fault, random_schedule

LEASE, INTERVAL, DEADLINE = 15.0, 2.0, 8.0
STOP_LATENCY = 0.1
SLACK = LEASE - INTERVAL - DEADLINE
NODES = ("n1", "n2", "n3")
DURATION = 140.0
#: Margin on top of L + 2·I for the follower's own round trips after the expiry (a few
#: storage round trips of ~10 ms, and the callback start).
MARGIN = 1.0
#: Worst-case budgets of one schedule, summed over all its faults as if they hit one node.
MAX_TOTAL_PAUSE_S = 2.0
MAX_TOTAL_SLOW_S = 1.5
SCHEDULES = 2000 if os.environ.get("LEADERSIM_FULL") == "1" else 240


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def within_budget(faults: list[Fault]) -> bool:
    """Whether the schedule stays inside the assumptions even in its worst case."""
    pauses = sum(f.duration or 0.0 for f in faults if f.kind == "pause")
    slow = sum(float(f.get("latency_s", 0.0)) for f in faults if f.kind == "slow")
    # A round is two operations, each slowed by every overlapping slow spell.
    round_fits = 2 * slow + pauses + 1.0 < DEADLINE
    # Reply delay (half of each slow) + pauses + C must stay far below the slack.
    stop_fits = slow / 2 + pauses + STOP_LATENCY <= SLACK - 2.0
    return pauses <= MAX_TOTAL_PAUSE_S and slow <= MAX_TOTAL_SLOW_S and round_fits and stop_fits


def schedule_for(seed: int) -> list[Fault]:
    rng = random.Random(f"leadersim-property:{seed}")
    while True:
        faults = random_schedule(
            rng,
            NODES,
            start=5.0,
            end=60.0,
            count=rng.randint(1, 8),
            max_pause_s=1.0,
            max_cut_s=40.0,
            max_slow_s=0.5,
        )
        if within_budget(faults):
            return faults


def scenario_for(seed: int) -> dict[str, Any]:
    """The run of ``seed`` as a plain scenario mapping (what the replay line holds)."""
    return {
        "name": f"property-{seed}",
        "nodes": list(NODES),
        "config": {
            "lease_duration": LEASE,
            "renew_interval": INTERVAL,
            "renew_deadline": DEADLINE,
        },
        "callback": {"stop_latency": STOP_LATENCY},
        "faults": [f.to_dict() for f in schedule_for(seed)],
        "duration": DURATION,
    }


def replay_line(seed: int) -> str:
    return (
        'python -c "from leadersim import simulate; '
        f'r = simulate({scenario_for(seed)!r}, seed={seed}); print(r); print(r.windows())"'
    )


def healed_at(faults: list[Fault]) -> float:
    """When the last fault of the schedule is over (a restart heals its crash)."""
    return max(f.at + (f.duration or 0.0) for f in faults)


#: What violations() answers for a run whose only break after the heal is the hot row.
HOT_ROW = "hot row"
#: At most this share of schedules may see it (measured: 1 of 2000, seed 1150).
MAX_HOT_ROW_SHARE = 0.005


def lost_to_the_hot_row(result: Result, term: Any) -> bool:
    """Whether an acting term ended because its leader's renew round lost every CAS.

    Every member writes the one record each round; members in phase keep beating the
    leader's retry, and since the reference's backoff (waits from I/2 up to D/2) a round
    can run out of its deadline on conflicts alone, with no fault active. The leader
    stops acting at that renew_failed and takes its slot back at its next round.
    """
    trace = result.trace
    failed = trace[
        (trace["node"] == term.node)
        & (trace["kind"] == "renew_failed")
        & (trace["true_time"] - result.start_time).between(term.end - 0.5, term.end)
    ]
    return any("RecordConflictError" in str(d.get("error")) for d in failed["details"])


def violations(seed: int) -> list[str]:
    """What the run of ``seed`` breaks of the two properties (empty: nothing)."""
    spec = scenario_for(seed)
    result: Result = simulate(spec, seed=seed)
    problems: list[str] = []
    summary = result.summary()
    if summary["overlap_s"] != 0:
        windows = [(w.start, w.end, w.nodes, w.faults) for w in result.split_brain()]
        problems.append(f"two nodes acted at once: {windows}")

    heal = healed_at(schedule_for(seed))
    settled_by = heal + LEASE + 2 * INTERVAL + MARGIN
    assert settled_by < DURATION - 10, "the run is too short to see the leader stay"
    acting = result.acting()
    final = [i for i in acting if i.end >= result.end_time]
    late = [i for i in acting if i.end > settled_by and i not in final]
    if len(final) == 1 and (final[0].start > settled_by or late):
        # The reference's hot-row weak point, not a fault of the schedule: every term that
        # ended after the heal lost its slot to CAS conflicts, and the slot came back.
        broken = [i for i in acting if i not in final and i.end > heal]
        if (
            broken
            and all(lost_to_the_hot_row(result, i) for i in broken)
            and final[0].start - broken[-1].end <= INTERVAL + DEADLINE + MARGIN
        ):
            return [HOT_ROW]
    if len(final) != 1:
        problems.append(f"{len(final)} nodes act at the end of the run: {final}")
    elif final[0].start > settled_by or late:
        problems.append(
            f"no single leader acting from {settled_by:.1f} s (healed at {heal:.1f} s): "
            f"final term {final[0]}, other terms after that {late}"
        )
    return problems


# 2000 schedules in the full tier: minutes on a loaded machine, past the default timeout.
@pytest.mark.timeout(900)
def test_random_schedules_inside_the_assumptions_keep_safety_and_liveness() -> None:
    failures: dict[int, list[str]] = {}
    hot_row: list[int] = []
    for seed in range(SCHEDULES):
        problems = violations(seed)
        if problems == [HOT_ROW]:
            hot_row.append(seed)
        elif problems:
            failures[seed] = problems
    for seed, problems in failures.items():
        print(f"seed {seed}: " + "; ".join(problems))
        print(f"  replay: {replay_line(seed)}")
    assert not failures, (
        f"{len(failures)} of {SCHEDULES} schedules broke a property: seeds {list(failures)}"
    )
    # Regression bound (set after the backoff port's 2000-schedule run): an organic
    # leadership blip from CAS contention stays rare.
    assert len(hot_row) <= MAX_HOT_ROW_SHARE * SCHEDULES, f"hot-row blips in seeds {hot_row}"


def test_schedules_exercise_failovers_and_every_fault_kind() -> None:
    # The property above is only worth something if the schedules do hit the leader.
    kinds: set[str] = set()
    changed = 0
    for seed in range(40):
        spec = scenario_for(seed)
        kinds.update(f["kind"] for f in spec["faults"])
        changed += simulate(spec, seed=seed).summary()["leader_changes"] > 0  # type: ignore[operator]
    assert kinds == {"cut", "pause", "crash", "restart", "slow"}
    assert changed >= 10


def test_schedules_stay_inside_their_budget_and_heal_every_crash() -> None:
    for seed in range(SCHEDULES):
        faults = schedule_for(seed)
        assert within_budget(faults)
        for node in NODES:
            mine = [f for f in faults if f.target == node and f.kind in ("crash", "restart")]
            if mine:
                assert mine[-1].kind == "restart", (seed, mine)


def test_replay_line_reproduces_the_run_exactly() -> None:
    seed = 17
    line = replay_line(seed)
    mapping = line.split("simulate(", 1)[1].rsplit(f", seed={seed})", 1)[0]
    replayed = simulate(eval(mapping), seed=seed)  # the literal the line prints
    assert replayed.to_jsonl() == simulate(scenario_for(seed), seed=seed).to_jsonl()
