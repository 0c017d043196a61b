"""Overlapping faults of one kind on one node compose; the first to end cancels nothing.

Each test runs a small scenario in the simulator and reads the trace: a node's own events
(what its elector did), the local times its clock stamped, or its storage operations.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from leadersim import EventKind, Scenario, TraceEvent
from leadersim.faults import FAULT_KINDS
from leadersim.sim.world import World
from leadersim.storage.faultplan import STORAGE_KINDS, StorageFaults

#: Events a node's elector emits itself (not the environment's events about it).
OWN = {
    EventKind.RENEW_STARTED,
    EventKind.RENEW_OK,
    EventKind.RENEW_FAILED,
    EventKind.STORAGE_ERROR,
    EventKind.CAS_CONFLICT,
}


def run(faults: list[dict[str, Any]], **spec: Any) -> list[TraceEvent]:
    scenario = Scenario.from_mapping({"nodes": 3, "duration": 60, "faults": faults, **spec})
    return list(World(scenario, seed=1).run().events)


def own_times(events: list[TraceEvent], node: str) -> list[float]:
    return [e.true_time for e in events if e.node == node and e.kind in OWN]


def test_two_overlapping_pauses_keep_the_node_paused_until_the_later_ends() -> None:
    events = run(
        [
            {"at": 20, "kind": "pause", "target": "n1", "duration": 10},
            {"at": 25, "kind": "pause", "target": "n1", "duration": 10},
        ]
    )
    times = own_times(events, "n1")
    # Nothing of n1 runs from 20 to 35 (before this fix it ran again at 30, when the
    # first pause ended).
    assert not [t for t in times if 20 < t < 35]
    assert [t for t in times if 35 <= t < 38], "n1 runs again once the later pause ends"
    assert [t for t in times if 15 < t <= 20], "n1 was running before the pauses"


def test_a_pause_that_ends_does_not_resume_a_later_incarnation_paused_again() -> None:
    events = run(
        [
            {"at": 20, "kind": "pause", "target": "n1", "duration": 10},
            {"at": 22, "kind": "crash", "target": "n1"},
            {"at": 24, "kind": "restart", "target": "n1"},
            {"at": 26, "kind": "pause", "target": "n1", "duration": 10},
        ]
    )
    times = own_times(events, "n1")
    assert [t for t in times if 24 <= t < 26], "the restarted n1 runs (it was never paused)"
    # The first pause's end (30) belongs to the crashed incarnation: n1 stays paused to 36.
    assert not [t for t in times if 26 < t < 36]
    assert [t for t in times if 36 <= t < 39]


def local_rate(events: list[TraceEvent], node: str, start: float, end: float) -> float:
    """Local seconds per true second of ``node``'s clock between two true times."""
    inside = [e for e in events if e.node == node and start < e.true_time < end]
    first, last = inside[0], inside[-1]
    assert last.true_time - first.true_time > (end - start) / 2, "too few events to measure"
    return (last.local_time - first.local_time) / (last.true_time - first.true_time)


def test_two_drifts_add_up_and_ending_one_leaves_the_other() -> None:
    events = run(
        [
            {"at": 10, "kind": "clock_drift", "target": "n2", "ppm": 2000, "duration": 30},
            {"at": 20, "kind": "clock_drift", "target": "n2", "ppm": 1000, "duration": 10},
        ],
        clocks={"n2": {"drift_ppm": 500}},
    )
    rates = [local_rate(events, "n2", a, b) for a, b in [(1, 10), (10, 20), (20, 30), (30, 40)]]
    # The scenario's own 500 ppm, plus the active faults' ppm (before this fix the shorter
    # drift's end reset the clock to 0 ppm at 30, dropping the longer one and the base).
    assert rates == pytest.approx([1.0005, 1.0025, 1.0035, 1.0025], abs=1e-7)
    assert local_rate(events, "n2", 40, 60) == pytest.approx(1.0005, abs=1e-7)


def test_of_several_error_faults_the_smallest_after_s_applies() -> None:
    events = run(
        [
            {"at": 10, "kind": "error", "target": "n1", "after_s": 3, "duration": 30},
            {"at": 20, "kind": "error", "target": "n1", "after_s": 0.5, "duration": 10},
        ]
    )
    failed = [
        e.details
        for e in events
        if e.node == "n1" and e.kind is EventKind.STORAGE_OP and e.details["outcome"] == "error"
    ]

    def waits(start: float, end: float) -> set[float]:
        return {
            round(float(d["replied_at"]) - float(d["sent_at"]), 9)  # type: ignore[arg-type]
            for d in failed
            if start <= float(d["sent_at"]) < end  # type: ignore[arg-type]
        }

    assert waits(10, 20) == {3.0}
    assert waits(20, 30) == {0.5}  # the smaller one, while both are active
    assert waits(30, 40) == {3.0}  # ending it leaves the other
    assert waits(40, 60) == set()


def test_storage_faults_compose_kind_by_kind() -> None:
    state = StorageFaults()
    state.start("cut", {"mode": "reply"})
    state.start("cut", {"mode": "reply"})
    state.end("cut", {"mode": "reply"})
    assert state.reply_lost()  # one reply cut is still active
    state.end("cut", {"mode": "reply"})
    assert not state.reply_lost()

    state.start("conflicts", {"rate": 0.2})
    state.start("conflicts", {"rate": 0.5})
    assert state.conflict_rate == pytest.approx(1 - 0.8 * 0.5)
    state.end("conflicts", {"rate": 0.2})
    assert state.conflict_rate == 0.5

    state.start("ambiguous", {"delay_s": 2.0})
    state.start("ambiguous", {})
    assert state.reply_delay("get", "ok") == 0.0  # only committed updates use them
    assert state.reply_delay("update", "conflict") == 0.0
    assert [state.reply_delay("update", "ok") for _ in range(3)] == [2.0, None, 0.0]


def test_no_fault_that_acts_by_chance_means_no_random_draw() -> None:
    # Determinism: a run without these faults must not consume the storage's random stream.
    rng = random.Random(5)
    expected = random.Random(5).random()
    faults = StorageFaults()
    assert faults.on_send(rng) == "go"
    assert faults.on_arrival(True, rng) == "execute"
    assert rng.random() == expected


def test_every_storage_kind_of_the_table_has_an_executor_and_no_other() -> None:
    assert set(STORAGE_KINDS) == {
        name for name, row in FAULT_KINDS.items() if row.scope == "storage"
    }
    for kind in STORAGE_KINDS:
        StorageFaults().start(kind, {"mode": "request", "latency_s": 1, "after_s": 1, "rate": 1})
    with pytest.raises(ValueError, match="'pause' is not a storage fault kind"):
        StorageFaults().start("pause", {"duration": 1})


def test_the_world_has_one_step_per_kind_that_is_not_a_storage_fault() -> None:
    # What a new kind needs in the simulator: a start step (and an end step if it lasts)
    # unless it is a storage kind, which the shared pipeline executes.
    world = World(Scenario.from_mapping({"nodes": 1, "duration": 1}))
    try:
        others = {name for name, row in FAULT_KINDS.items() if row.scope != "storage"}
        assert set(world._starts) == others
        lasting = {name for name in others if FAULT_KINDS[name].ends == "duration"}
        assert set(world._ends) == lasting
    finally:
        world.loop.close()
        world.server.db.close()
