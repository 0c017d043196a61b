"""A simulated cluster run end to end: determinism, pause and crash semantics, clocks.

Runs go through ``simulate()`` (and so through :class:`~leadersim.sim.world.World`) and
are judged from their traces, as a user would judge them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import statistics
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from leadersim import EventKind, Result, TraceEvent, simulate
from leadersim.sim.loop import current_node

LEASE = 10.0
INTERVAL = 2.0
DEADLINE = 8.0
# Events the environment records about a node: they can happen while the node itself
# runs nothing (a reply reaching a frozen process, a write it sent arriving).
ENVIRONMENT_KINDS = {
    EventKind.STORAGE_OP,
    EventKind.GUARDED_WRITE,
    EventKind.FAULT_START,
    EventKind.FAULT_END,
}


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    # The reference defaults (10/2/8) leave no slack; simulate() says so every run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def events(result: Result, *kinds: EventKind, node: str | None = None) -> list[TraceEvent]:
    return [e for e in result.events if (not kinds or e.kind in kinds) and (node in (None, e.node))]


def fault_starts(result: Result, kind: str) -> list[TraceEvent]:
    return [e for e in events(result, EventKind.FAULT_START) if e.details["kind"] == kind]


def sent_at(event: TraceEvent) -> float:
    value = event.details["sent_at"]
    assert isinstance(value, float | int)
    return float(value)


def last_committed_renewal(result: Result, node: str, before: float) -> float:
    """When ``node``'s last successful update reached the server before ``before``."""
    commits = [
        e.details["arrived_at"]
        for e in events(result, EventKind.STORAGE_OP, node=node)
        if e.details["op"] == "update"
        and e.details["outcome"] == "ok"
        and isinstance(e.details["arrived_at"], float)
        and e.details["arrived_at"] < before
    ]
    assert commits, f"{node} never renewed before t={before}"
    return float(max(commits))


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("leader-pause-longer-than-lease", {}),
        ("ambiguous-renew", {}),
        ("zero-slack-defaults", {"duration": 600}),  # heavy-tailed latency, cuts
        ("hot-row-many-members", {"duration": 120, "nodes": 10}),  # CAS races, backoff
    ],
)
def test_same_seed_gives_a_byte_identical_trace(name: str, overrides: dict[str, Any]) -> None:
    first = simulate(name, seed=7, **overrides).to_jsonl()
    second = simulate(name, seed=7, **overrides).to_jsonl()
    assert first == second
    assert first.count("\n") > 500


@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_same_seed_gives_the_same_trace_in_a_fresh_process_with_another_hash_seed(
    hash_seed: str,
) -> None:
    script = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("ignore")
        from leadersim import simulate
        sys.stdout.write(simulate("leader-partitioned-from-storage", seed=3).to_jsonl())
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    here = simulate("leader-partitioned-from-storage", seed=3).to_jsonl()
    assert child.stdout == here


def backoff_delays(result: Result, node: str) -> list[float]:
    """Waits between consecutive failed attempts of one renew round of ``node``."""
    errors = events(result, EventKind.STORAGE_ERROR, node=node)
    return [
        b.true_time - a.true_time
        for a, b in itertools.pairwise(errors)
        if int(b.details["attempt"] or 0) == int(a.details["attempt"] or 0) + 1
    ]


def test_different_seeds_give_different_jitter_and_different_traces() -> None:
    # n2's storage fails at once for 40 s, so its renew rounds retry with backoff.
    scenario = {
        "name": "jitter",
        "faults": [{"at": 30, "kind": "error", "target": "n2", "after_s": 0, "duration": 40}],
        "duration": 90,
    }
    runs = {seed: simulate(scenario, seed=seed) for seed in (0, 1, 2)}
    delays = {seed: backoff_delays(result, "n2") for seed, result in runs.items()}
    for seed, waits in delays.items():
        # 4 rounds of D = 8 s in the 40 s, each retrying 1-4 times (waits of 1-4 s).
        assert len(waits) >= 6, (seed, waits)
        # Each retry waits at least the base (I/2) and at most the cap (D/2).
        assert all(INTERVAL / 2 - 1e-9 <= w <= DEADLINE / 2 + 1e-9 for w in waits), waits
    assert delays[0] != delays[1] != delays[2] != delays[0]
    traces = {result.to_jsonl() for result in runs.values()}
    assert len(traces) == 3


def test_simulate_inside_a_running_event_loop_gives_the_same_result() -> None:
    # As in a Jupyter cell: a loop already runs in this thread.
    async def in_notebook() -> str:
        return simulate("leader-crash", seed=5).to_jsonl()

    assert asyncio.run(in_notebook()) == simulate("leader-crash", seed=5).to_jsonl()


# ---------------------------------------------------------------------------- clocks


def test_trace_carries_true_time_and_each_nodes_own_local_time() -> None:
    result = simulate({"clocks": {"n2": {"drift_ppm": 100_000}}, "duration": 60}, seed=0)
    for node, rate in (("n1", 1.0), ("n3", 1.0), ("n2", 1.1)):
        rounds = events(result, EventKind.RENEW_STARTED, node=node)
        first, last = rounds[0], rounds[-1]
        assert last.true_time - first.true_time > 40
        local = last.local_time - first.local_time
        assert local == pytest.approx((last.true_time - first.true_time) * rate)
    # Local readings are per node, from arbitrary origins: never comparable across nodes.
    local_at_start = {e.node: e.local_time - e.true_time for e in result.events[:30]}
    assert len(set(local_at_start.values())) > 1


def test_fast_clock_renews_more_often_in_true_time() -> None:
    result = simulate(
        {"clocks": {"n2": {"drift_ppm": 100_000}}, "callback": {"writes_per_s": 0}}, seed=0
    )
    gaps = {
        n: statistics.median(
            b.true_time - a.true_time
            for a, b in itertools.pairwise(events(result, EventKind.RENEW_STARTED, node=n))
        )
        for n in ("n2", "n3")
    }
    # Interval sleeps of 2 local s last 2/1.1 true s on n2. (The median gap between
    # rounds, not the round count: the few rounds that lose a CAS also wait a retry
    # backoff of 1-4 s, which would blur the count.)
    assert gaps["n3"] / gaps["n2"] == pytest.approx(1.1, rel=0.03)


# ---------------------------------------------------------------------------- pause


PAUSE_AT = 60.0
PAUSE = 20.0


def paused_leader_run(seed: int, fencing: bool) -> tuple[Result, str]:
    result = simulate("leader-pause-longer-than-lease", seed=seed, fencing=fencing)
    (pause,) = fault_starts(result, "pause")
    assert pause.true_time == PAUSE_AT
    return result, pause.node


@pytest.mark.parametrize("seed", range(5))
def test_paused_node_runs_nothing_during_the_pause(seed: int) -> None:
    result, paused = paused_leader_run(seed, fencing=False)
    during = [e for e in events(result, node=paused) if PAUSE_AT < e.true_time < PAUSE_AT + PAUSE]
    # Nothing of the node's own: no renewal, no callback step, no trace of its elector.
    assert [e for e in during if e.kind not in ENVIRONMENT_KINDS] == []
    # What the environment saw of it during P was sent before P (replies, arrivals).
    traffic = [e for e in during if e.kind in (EventKind.STORAGE_OP, EventKind.GUARDED_WRITE)]
    assert all(sent_at(e) < PAUSE_AT for e in traffic)
    # ... and it did not send anything during P.
    sent = [
        e
        for e in events(result, EventKind.STORAGE_OP, EventKind.GUARDED_WRITE, node=paused)
        if PAUSE_AT <= sent_at(e) < PAUSE_AT + PAUSE
    ]
    assert sent == []


@pytest.mark.parametrize("seed", range(5))
def test_leader_paused_longer_than_its_lease_is_replaced_and_wakes_into_split_brain(
    seed: int,
) -> None:
    result, paused = paused_leader_run(seed, fencing=False)
    resume = PAUSE_AT + PAUSE
    # Another node leads during the pause, once the paused leader's lease has run out.
    takeovers = [
        e
        for e in events(result, EventKind.CALLBACK_STARTED)
        if e.node != paused and PAUSE_AT < e.true_time < resume
    ]
    assert takeovers, "nobody took over during a pause twice the lease"
    committed = last_committed_renewal(result, paused, before=PAUSE_AT)
    assert takeovers[0].true_time >= committed + LEASE

    # The paused node still acts on waking: its callback was never stopped during P ...
    stops = events(result, EventKind.CALLBACK_STOPPED, node=paused)
    assert stops
    assert stops[0].true_time > resume
    # ... its pending stale write goes out at once, before its elector's next read shows
    # it the lost leadership ...
    stale = [
        e
        for e in events(result, EventKind.GUARDED_WRITE, node=paused)
        if sent_at(e) >= resume and e.details["stale"]
    ]
    assert stale, "the paused leader's pending write did not go out after the pause"
    lost = [e for e in events(result, EventKind.LOST_LEADER, node=paused) if e.true_time > resume]
    assert lost, "the woken leader never learned that it lost leadership"
    assert sent_at(stale[0]) < lost[0].true_time
    assert stale[0].details["accepted"] is True  # no fencing: harm
    assert stale[0].details["leader_id"] == takeovers[0].node
    # ... then it stops.
    assert lost[0].true_time <= stops[0].true_time
    assert stops[0].details["reason"] == "cancelled"
    # Two nodes acted at once (split brain), though it never *believed* it led after waking.
    summary = result.summary()
    assert summary["overlap_s"] > 0
    assert summary["stale_accepted"] >= 1


@pytest.mark.parametrize("seed", range(3))
def test_fencing_rejects_the_woken_leaders_stale_write(seed: int) -> None:
    result, paused = paused_leader_run(seed, fencing=True)
    stale = [
        e
        for e in events(result, EventKind.GUARDED_WRITE, node=paused)
        if sent_at(e) >= PAUSE_AT + PAUSE and e.details["stale"]
    ]
    assert stale
    assert all(e.details["accepted"] is False for e in stale)
    assert result.summary()["stale_accepted"] == 0


# ---------------------------------------------------------------------------- crash


CRASH_AT = 60.0
RESTART_AT = 90.0


@pytest.mark.parametrize("seed", range(5))
def test_crashed_leader_writes_nothing_after_the_crash_and_followers_wait_out_its_lease(
    seed: int,
) -> None:
    result = simulate("leader-crash", seed=seed)
    (crash,) = fault_starts(result, "crash")
    crashed = crash.node
    assert crash.true_time == CRASH_AT

    # Nothing leaves the crashed node until its restart: no storage op, no guarded write.
    sent = [
        e
        for e in events(result, EventKind.STORAGE_OP, EventKind.GUARDED_WRITE, node=crashed)
        if CRASH_AT <= sent_at(e) < RESTART_AT
    ]
    assert sent == []
    # No cleanup of the crashed incarnation ran: no release, no callback cancel, nothing
    # of its own after the crash instant (the environment notes the callback's end).
    own = [
        e
        for e in events(result, node=crashed)
        if CRASH_AT <= e.true_time < RESTART_AT and e.kind not in ENVIRONMENT_KINDS
    ]
    assert [(e.kind, e.details.get("reason")) for e in own] == [
        (EventKind.CALLBACK_STOPPED, "crashed")
    ]
    assert [e for e in events(result, EventKind.RELEASE, node=crashed)] == []

    # The followers keep its entry until the lease they measured runs out.
    committed = last_committed_renewal(result, crashed, before=CRASH_AT)
    expired = [
        e
        for e in events(result, EventKind.MEMBER_EXPIRED)
        if e.details["member"] == crashed and e.true_time > CRASH_AT
    ]
    assert expired
    assert expired[0].details["was_leader"] is True
    assert expired[0].true_time >= committed + LEASE
    takeover = next(
        e
        for e in events(result, EventKind.CALLBACK_STARTED)
        if e.node != crashed and e.true_time > CRASH_AT
    )
    assert committed + LEASE <= takeover.true_time <= CRASH_AT + LEASE + INTERVAL + 0.5


@pytest.mark.parametrize("seed", range(5))
def test_restarted_node_rejoins_with_the_same_id_as_a_new_incarnation(seed: int) -> None:
    result = simulate("leader-crash", seed=seed)
    (crash,) = fault_starts(result, "crash")
    node = crash.node
    (restart,) = fault_starts(result, "restart")
    assert (restart.node, restart.true_time) == (node, RESTART_AT)

    started = events(result, EventKind.ELECTION_STARTED, node=node)
    assert [(e.true_time, e.details["incarnation"]) for e in started] == [
        (started[0].true_time, 0),
        (RESTART_AT, 1),
    ]
    # It rejoins as a follower of the node that took over, and is a member again.
    new_leader = next(
        e.node for e in events(result, EventKind.CALLBACK_STARTED) if e.true_time > CRASH_AT
    )
    renewals = [
        e for e in events(result, EventKind.RENEW_OK, node=node) if e.true_time > RESTART_AT
    ]
    assert renewals
    assert all(e.details["leader_id"] == new_leader for e in renewals)
    assert renewals[-1].details["members"] == 3
    assert [e for e in events(result, EventKind.CALLBACK_STARTED, node=node)][1:] == []


def test_crashed_callback_cleanup_never_runs_even_after_a_restart_and_garbage_collection() -> None:
    cleanups: list[tuple[str, int, float]] = []

    async def lead() -> None:
        tag = current_node()
        assert tag is not None
        loop = asyncio.get_running_loop()
        try:
            for step in range(10_000):
                await asyncio.sleep(0.5)
                if step % 4 == 0:
                    gc.collect()  # would close an unreferenced, crashed coroutine
        finally:
            cleanups.append((tag.node, tag.incarnation, loop.time()))

    result = simulate(
        {
            "callback": lead,
            "faults": [
                {"at": 20, "kind": "crash", "target": "leader"},
                {"at": 23, "kind": "restart", "target": "fault:0"},
                {"at": 60, "kind": "cancel", "target": "leader"},
            ],
            "duration": 80,
        },
        seed=0,
    )
    (crash,) = fault_starts(result, "crash")
    (cancel,) = fault_starts(result, "cancel")
    # The crashed incarnation's `finally` never ran during the run (neither at the crash
    # nor when a collection found it after the restart); a graceful cancel's did, at once.
    # When the run is over the loop abandons whatever is left, quietly, at its end time.
    during_run = [(node, inc) for node, inc, t in cleanups if t < result.end_time]
    assert (crash.node, 0) not in during_run
    cancelled = [t for node, _, t in cleanups if node == cancel.node and t < result.end_time]
    assert len(cancelled) == 1
    assert 60.0 <= cancelled[0] <= 61.0


def test_paused_then_crashed_node_never_runs_what_it_held() -> None:
    result = simulate(
        {
            "faults": [
                {"at": 30, "kind": "pause", "target": "leader", "duration": 10},
                {"at": 35, "kind": "crash", "target": "fault:0"},
            ],
            "duration": 60,
        },
        seed=1,
    )
    (pause,) = fault_starts(result, "pause")
    after_pause = [
        e
        for e in events(result, node=pause.node)
        if e.true_time > 30 and e.kind not in ENVIRONMENT_KINDS
    ]
    assert [(e.kind, e.details.get("reason")) for e in after_pause] == [
        (EventKind.CALLBACK_STOPPED, "crashed")
    ]
    sent = [
        e
        for e in events(result, EventKind.STORAGE_OP, EventKind.GUARDED_WRITE, node=pause.node)
        if sent_at(e) >= 30
    ]
    assert sent == []


ABANDONED_CLEANUP_SCRIPT = """
import asyncio, gc, warnings
warnings.simplefilter("ignore")
from leadersim import simulate

async def lead():
    queue = asyncio.Queue()

    async def producer():
        while True:
            await asyncio.sleep(1.0)
            await queue.put(1)

    async with asyncio.TaskGroup() as group:
        group.create_task(producer())
        while True:
            async with asyncio.timeout(5):
                await queue.get()

result = simulate("leader-crash", seed=1, callback=lead, duration=120)
gc.collect()
print(result.summary()["failovers"])
"""


def test_a_run_ends_quietly_when_crashed_and_live_nodes_hold_plain_asyncio_work() -> None:
    # A crashed node's TaskGroup, Queue and timeout are abandoned at the end of the run;
    # closing them must not print "Exception ignored" tracebacks (or add trace events).
    done = subprocess.run(
        [sys.executable, "-c", ABANDONED_CLEANUP_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert done.stderr == ""


# ---------------------------------------------------------------------------- fault schedule


@pytest.mark.parametrize("seed", range(5))
def test_faults_at_the_same_instant_apply_in_schedule_order(seed: int) -> None:
    # Seven faults at t=30 all name fault 0's node: each must find fault 0 applied (timers
    # due at one instant leave asyncio's heap in no guaranteed order).
    first = {"at": 30, "kind": "slow", "target": "leader", "latency_s": 0.01, "duration": 5}
    same = {**first, "target": "fault:0"}
    result = simulate({"duration": 40, "faults": [first] + [same] * 7}, seed=seed)
    starts = events(result, EventKind.FAULT_START)
    assert [e.details["fault"] for e in starts] == list(range(8))
    assert {e.node for e in starts} == {starts[0].node}


def incarnations(result: Result, node: str) -> list[tuple[float, Any]]:
    return [
        (e.true_time, e.details["incarnation"])
        for e in events(result, EventKind.ELECTION_STARTED, node=node)
    ]


def test_restart_after_cancel_starts_the_member_again() -> None:
    result = simulate(
        {
            "duration": 80,
            "faults": [
                {"at": 30, "kind": "cancel", "target": "n2"},
                {"at": 40, "kind": "restart", "target": "n2"},
            ],
        },
        seed=1,
    )
    assert [i for _t, i in incarnations(result, "n2")] == [0, 1]
    assert incarnations(result, "n2")[1][0] == 40
    stopped = events(result, EventKind.ELECTION_STOPPED, node="n2")
    assert stopped
    assert 30 <= stopped[0].true_time < 40
    # The new incarnation takes part again: it renews its member entry.
    assert [e for e in events(result, EventKind.RENEW_OK, node="n2") if e.true_time > 40]


def test_restart_while_a_cancelled_leader_is_still_stopping_starts_it_once_stopped() -> None:
    # The leader's work takes 3 s to stop after the cancel; the restart comes during that.
    result = simulate(
        {
            "duration": 80,
            "callback": {"stop_latency": 3.0},
            "faults": [
                {"at": 30, "kind": "cancel", "target": "leader"},
                {"at": 30.5, "kind": "restart", "target": "fault:0"},
            ],
        },
        seed=2,
    )
    (cancel,) = fault_starts(result, "cancel")
    node = cancel.node
    old_stop = next(
        e for e in events(result, EventKind.CALLBACK_STOPPED, node=node) if e.true_time > 30
    )
    assert old_stop.true_time >= 33  # the 3 s of stop latency ran
    (_first, (restarted_at, incarnation)) = incarnations(result, node)
    assert incarnation == 1
    assert restarted_at >= old_stop.true_time


def test_restart_of_a_live_member_does_nothing() -> None:
    result = simulate(
        {"duration": 60, "faults": [{"at": 30, "kind": "restart", "target": "n1"}]}, seed=0
    )
    assert [i for _t, i in incarnations(result, "n1")] == [0]


# ---------------------------------------------------------------------------- failures


def test_an_exception_while_applying_a_fault_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from leadersim.sim.world import World

    original = World._start_fault

    def broken(self: World, index: int, node: str, fault: Any) -> None:
        if fault.kind == "slow":
            raise KeyError(f"planted failure applying {fault.kind} to {node}")
        original(self, index, node, fault)

    monkeypatch.setattr(World, "_start_fault", broken)
    spec = {
        "duration": 60,
        "faults": [{"at": 20, "kind": "slow", "target": "n2", "latency_s": 1, "duration": 5}],
    }
    with pytest.raises(KeyError, match="planted failure applying slow to n2") as raised:
        simulate(spec)
    assert any("t=20.000000 s" in note for note in raised.value.__notes__)
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_a_leader_callbacks_forgotten_failing_task_fails_the_run() -> None:
    class Forgotten(Exception):
        pass

    async def fails() -> None:
        await asyncio.sleep(1)
        raise Forgotten("a background task of the leader's work failed")

    async def lead() -> None:
        asyncio.get_running_loop().create_task(fails())  # never awaited
        await asyncio.Event().wait()

    with pytest.raises(Forgotten) as raised:
        simulate({"duration": 60, "callback": lead})
    assert any("Task exception was never retrieved" in n for n in raised.value.__notes__)
