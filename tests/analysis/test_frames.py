"""The tidy DataFrames: hand-built traces, and agreement with the verdict on simulated runs."""

from __future__ import annotations

import math

import pytest

from leadersim.analysis import frames
from leadersim.analysis.result import Result
from leadersim.experiment import simulate


def test_the_events_frame_lifts_common_details_into_columns(build) -> None:
    build.renew(1.0, "n1", "n1", lease=10.0)
    build.fault(2.0, "n2", "pause", duration=5)
    build.stop(3.0, "n1", reason="cancelled")
    trace = Result(build.trace(), 4.0).trace

    assert list(trace.columns[:4]) == ["true_time", "node", "local_time", "kind"]
    assert trace["kind"].tolist() == ["renew_ok", "fault_start", "callback_stopped"]
    assert trace["leader_id"].tolist()[0] == "n1"
    assert trace["lease_until"].tolist()[0] == pytest.approx(build.local("n1", 1.0) + 10.0)
    assert trace["fault_kind"].tolist()[1] == "pause"
    assert trace["reason"].tolist()[2] == "cancelled"
    assert trace["details"].tolist()[1]["duration"] == 5


def test_faults_run_from_start_to_end_and_an_instant_fault_has_no_length(build) -> None:
    build.fault(1.0, "n1", "pause", index=0, duration=5)
    build.fault_end(6.0, "n1", "pause", index=0)
    build.fault(7.0, "n2", "crash", index=1)
    build.fault(8.0, "n3", "cut", index=2, duration=30, mode="reply")  # outlives the run
    faults = Result(build.trace(), 10.0).faults()

    rows = faults[["node", "kind", "start", "end", "instant", "label"]].values.tolist()
    assert rows == [
        ["n1", "pause", 1.0, 6.0, False, "pause (5s)"],
        ["n2", "crash", 7.0, 7.0, True, "crash"],
        ["n3", "cut", 8.0, 10.0, False, "cut reply (30s)"],
    ]


def test_clock_offsets_show_accumulated_drift_and_its_rate(build) -> None:
    for step in range(0, 1001):
        t = step * 0.1
        build.add(t, "fast", "renew_started", local=500.0 + t * (1 + 500e-6))
        build.add(t, "true", "renew_started", local=7.0 + t)
    clocks = Result(build.trace(), 100.0).clocks(every_s=1.0)

    fast = clocks[clocks["node"] == "fast"]
    assert len(fast) == 101  # one sample per second of true time
    assert fast["offset_s"].iloc[0] == pytest.approx(500.0)
    assert fast["offset_change_s"].iloc[-1] == pytest.approx(0.05)
    assert fast["drift_ppm"].iloc[1:].tolist() == pytest.approx([500.0] * 100)
    assert math.isnan(fast["drift_ppm"].iloc[0])
    true = clocks[clocks["node"] == "true"]
    assert set(true["drift_ppm"].dropna()) == {0.0}
    assert set(true["offset_change_s"]) == {0.0}


def test_a_drifting_simulated_clock_shows_its_configured_rate() -> None:
    result = simulate("clock-drift-fast-follower", seed=0, duration=60, faults=[])
    rates = result.clocks().groupby("node")["drift_ppm"].median()
    assert rates["n2"] == pytest.approx(100_000, rel=1e-6)  # scenario: n2 runs 10 % fast
    assert rates["n1"] == 0
    assert rates["n3"] == 0


@pytest.mark.parametrize(
    ("scenario", "seed", "overrides"),
    [
        ("leader-crash", 0, {}),
        ("leader-graceful-shutdown", 1, {}),
        ("leader-pause-longer-than-lease", 2, {}),
        ("zero-slack-defaults", 3, {"duration": 900}),
        ("callback-crash-loop", 4, {}),
    ],
)
def test_the_frames_add_up_to_the_verdict(scenario: str, seed: int, overrides: dict) -> None:
    result = simulate(scenario, seed=seed, **overrides)
    summary = result.summary()

    failovers = result.failovers()
    assert failovers["failover_s"].dropna().tolist() == pytest.approx(summary["failover_all_s"])
    assert len(failovers) == summary["leader_changes"]
    assert result.gaps()["duration"].sum() == pytest.approx(summary["no_leader_s"])
    windows = result.windows()
    acting = windows[windows["kind"] == "acting"]
    assert acting["duration"].sum() == pytest.approx(summary["overlap_s"])
    belief = windows[windows["kind"] == "belief"]
    assert belief["duration"].sum() == pytest.approx(summary["belief_overlap_s"])
    assert len(result.flaps()) == summary["flaps"]
    writes = result.writes()["class"]
    assert (writes == "harmful").sum() == summary["stale_accepted"]
    assert (writes == "fenced").sum() == summary["stale_rejected"]


def test_an_ambiguous_renewal_is_flagged_in_the_storage_ops() -> None:
    result = simulate("ambiguous-renew", seed=0)
    ops = result.storage_ops()

    [ambiguous] = ops[ops["ambiguous"]].to_dict("records")
    assert ambiguous["op"] == "update"
    assert (ambiguous["outcome"], ambiguous["seen"]) == ("ok", "no_reply")
    assert ambiguous["sent_at"] >= 60.0  # the fault applies to the next update after t=60
    assert math.isnan(ambiguous["latency_s"])
    answered = ops[ops["answered"]]
    assert (answered["latency_s"] > 0).all()
    assert (answered["replied_at"] >= answered["arrived_at"]).all()


def test_the_committed_leader_follows_the_record_through_a_take_over() -> None:
    result = simulate("leader-pause-longer-than-lease", seed=0)
    committed = result.committed_leader()
    starts = {i.node: i.start for i in result.acting()}

    assert committed["leader_id"].tolist() == ["n1", next(n for n in starts if n != "n1")]
    new_leader_commit = committed["start"].iloc[1]
    # the new leader's callback starts once the reply of its winning write is back
    assert 0 < starts[committed["leader_id"].iloc[1]] - new_leader_commit < 0.2


def test_the_paused_leaders_lease_runs_out_during_its_pause() -> None:
    result = simulate("leader-pause-longer-than-lease", seed=0)
    marks = frames.lease_expiries(result.events, result.end_time)
    [takeover] = [i.start for i in result.acting() if i.node != "n1"]

    n1_marks = [t for node, t in marks if node == "n1"]
    assert len(n1_marks) == 1
    # its last renewal before the pause at t=60 counted 10 s of lease
    assert 60.0 < n1_marks[0] <= 70.0
    assert n1_marks[0] <= takeover
