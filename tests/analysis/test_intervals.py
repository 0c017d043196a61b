"""The checker on hand-built traces whose answers are known by construction."""

from __future__ import annotations

import pytest

from leadersim.analysis.intervals import (
    acting_intervals,
    belief_intervals,
    overlap_windows,
    summarize,
)
from leadersim.analysis.result import Result


def test_terms_that_touch_at_one_instant_neither_overlap_nor_leave_a_gap(build) -> None:
    build.start(0.0, "n1")
    build.stop(10.0, "n1")
    build.start(10.0, "n2")
    result = Result(build.trace(), 20.0)

    summary = result.summary()
    assert summary["overlap_s"] == 0
    assert summary["no_leader_s"] == 0
    assert summary["safe"] is True
    assert summary["leader_changes"] == 1
    assert result.split_brain() == []
    assert result.gaps().empty


def test_an_overlap_is_measured_exactly_between_its_edges(build) -> None:
    build.start(0.0, "n1")
    build.start(10.0, "n2")
    build.start(10.125, "n3")
    build.stop(10.25, "n3")
    build.stop(10.5, "n1")
    result = Result(build.trace(), 20.0)

    [window] = result.split_brain()
    assert (window.start, window.end) == (10.0, 10.5)
    assert window.nodes == ("n1", "n2", "n3")
    assert result.summary()["overlap_s"] == 0.5
    assert result.summary()["safe"] is False
    # three at once is still one window, counted once
    assert len(overlap_windows(result.acting(), min_nodes=3)) == 1
    assert overlap_windows(result.acting(), min_nodes=3)[0].duration == 0.125


def test_zero_length_terms_and_leases_never_make_a_window(build) -> None:
    build.start(0.0, "n1")
    build.renew(0.0, "n1", "n1", lease=10.0)
    # a callback that stops the instant it starts, while n1 acts
    build.start(5.0, "n2")
    build.stop(5.0, "n2", reason="raised")
    # a renewal as leader whose lease is already over: zero-length belief
    build.renew(6.0, "n3", "n3", lease=0.0)
    result = Result(build.trace(), 8.0)

    acting = acting_intervals(result.events, 8.0)
    assert [(i.node, i.duration) for i in acting] == [("n1", 8.0), ("n2", 0.0)]
    belief = belief_intervals(result.events, 8.0)
    assert ("n3", 0.0) in [(i.node, i.duration) for i in belief]
    assert result.split_brain() == []
    assert result.split_brain(belief=True) == []
    assert result.summary()["overlap_s"] == 0
    assert result.windows().empty


def test_a_node_that_never_leads_has_no_interval_but_is_a_node_of_the_run(build) -> None:
    for t in (0.0, 2.0, 4.0):
        build.renew(t, "n1", "n1")
        build.renew(t + 0.5, "n3", "n1")  # n3 renews only its member entry
    build.start(0.0, "n1")
    result = Result(build.trace(), 6.0)

    assert "n3" in result.nodes
    intervals = result.intervals()
    assert set(intervals["node"]) == {"n1"}
    assert set(result.terms()["node"]) == {"n1"}
    assert result.summary()["flaps"] == 0


def test_a_crash_mid_term_ends_acting_and_belief_at_the_crash(build) -> None:
    build.start(0.0, "n1")
    for t in (0.0, 2.0, 4.0):
        build.renew(t, "n1", "n1", lease=10.0)
    # what the simulator records when it kills a node whose callback runs
    build.fault(5.0, "n1", "crash")
    build.stop(5.0, "n1", reason="crashed")
    build.renew(15.5, "n2", "n2")
    build.start(15.5, "n2")
    result = Result(build.trace(), 20.0)

    intervals = result.intervals().set_index(["node", "kind"])
    assert intervals.loc[("n1", "acting"), "end"] == 5.0
    assert intervals.loc[("n1", "acting"), "end_reason"] == "crashed"
    assert intervals.loc[("n1", "belief"), "end"] == 5.0
    assert intervals.loc[("n1", "belief"), "end_reason"] == "crashed"

    [gap] = result.gaps().to_dict("records")
    assert (gap["start"], gap["end"], gap["before"], gap["after"]) == (5.0, 15.5, "n1", "n2")
    assert gap["faults"] == "crash@n1"

    [failover] = result.failovers().to_dict("records")
    assert failover["cause"] == "crash"
    assert failover["failover_s"] == pytest.approx(10.5)
    assert result.summary()["failover_all_s"] == [pytest.approx(10.5)]
    assert result.summary()["no_leader_s"] == pytest.approx(10.5)


def test_acting_ends_where_the_trace_says_the_callback_stopped_not_at_the_crash(build) -> None:
    # The world that crashed the node writes the stop (the lab: just after the member's
    # last own event, which may come after its clock reading of the kill); acting reads
    # that event and nothing else, while belief ends at the crash itself.
    build.start(0.0, "n1")
    build.renew(4.0, "n1", "n1", lease=10.0)
    build.fault(5.0, "n1", "crash")
    build.stop(5.25, "n1", reason="crashed")
    result = Result(build.trace(), 20.0)

    [acting] = result.acting()
    assert (acting.end, acting.end_reason) == (5.25, "crashed")
    [belief] = result.belief()
    assert (belief.end, belief.end_reason) == (5.0, "crashed")


def test_the_failover_table_and_the_verdict_name_the_same_cause(build) -> None:
    # n1 crashes, is restarted at 12 s and n2 takes over at 15.5 s: the restart does not
    # take a leader down, so both the verdict and the table count from the crash. (The
    # table used to cite the restart, 3.5 s, while the verdict said 10.5 s.)
    build.start(0.0, "n1")
    build.renew(4.0, "n1", "n1", lease=10.0)
    build.fault(5.0, "n1", "crash")
    build.stop(5.0, "n1", reason="crashed")
    build.fault(12.0, "n1", "restart", index=1)
    build.renew(15.5, "n2", "n2")
    build.start(15.5, "n2")
    result = Result(build.trace(), 20.0)

    [failover] = result.failovers().to_dict("records")
    assert (failover["cause"], failover["cause_at"]) == ("crash", 5.0)
    assert failover["failover_s"] == pytest.approx(10.5)
    assert result.verdict.failover_s == (pytest.approx(10.5),)


def test_a_leader_without_a_recorded_fault_fails_over_from_its_last_renewal(build) -> None:
    build.start(0.0, "n1")
    for t in (0.0, 2.0, 4.0):
        build.renew(t, "n1", "n1", lease=10.0)
    build.add(12.0, "n1", "renew_failed", error="StorageError: cut")
    build.stop(12.1, "n1")
    build.renew(14.5, "n2", "n2")
    build.start(14.5, "n2")
    result = Result(build.trace(), 20.0)

    [failover] = result.failovers().to_dict("records")
    assert (failover["cause"], failover["cause_at"]) == ("renewal", 4.0)
    assert failover["failover_s"] == pytest.approx(10.5)


def test_an_ambiguous_renew_is_committed_but_gives_the_leader_no_belief(build) -> None:
    build.start(0.0, "n1")
    build.renew(0.0, "n1", "n1", lease=10.0)
    build.add(
        0.01,
        "n1",
        "storage_op",
        op="update",
        outcome="ok",
        seen="ok",
        sent_at=0.0,
        arrived_at=0.005,
        replied_at=0.01,
        leader_id="n1",
        version=1,
    )
    # the next renewal commits at the server, but its reply is lost
    build.add(
        2.005,
        "n1",
        "storage_op",
        op="update",
        outcome="ok",
        seen="no_reply",
        sent_at=2.0,
        arrived_at=2.005,
        replied_at=None,
        leader_id="n1",
        version=2,
    )
    build.add(10.0, "n1", "renew_failed", error=None)
    build.stop(10.1, "n1")
    build.add(
        12.51,
        "n2",
        "storage_op",
        op="update",
        outcome="ok",
        seen="ok",
        sent_at=12.5,
        arrived_at=12.505,
        replied_at=12.51,
        leader_id="n2",
        version=3,
    )
    result = Result(build.trace(), 20.0)

    ops = result.storage_ops()
    assert ops["ambiguous"].tolist() == [False, True, False]
    assert ops["answered"].tolist() == [True, False, True]
    # the client never learnt of the commit: its belief ends with its last known lease
    belief = result.intervals().query("kind == 'belief'").to_dict("records")
    assert [(b["node"], b["end"], b["end_reason"]) for b in belief] == [
        ("n1", 10.0, "lease_expired")
    ]
    # ... while the record went on naming it until n2's commit
    committed = result.committed_leader()
    assert committed[["start", "end", "leader_id"]].values.tolist() == [
        [0.005, 12.505, "n1"],
        [12.505, 20.0, "n2"],
    ]


def test_guarded_writes_are_classified_ok_fenced_and_harmful(build) -> None:
    common = {"fencing": True, "sent_at": 0.0}
    build.add(
        1.0, "n1", "guarded_write", seq=1, accepted=True, stale=False, leader_id="n1", **common
    )
    build.add(
        2.0, "n1", "guarded_write", seq=2, accepted=False, stale=True, leader_id="n2", **common
    )
    build.add(
        3.0, "n1", "guarded_write", seq=3, accepted=True, stale=True, leader_id="n2", **common
    )
    result = Result(build.trace(), 4.0)

    assert result.writes()["class"].tolist() == ["ok", "fenced", "harmful"]
    summary = summarize(result.events)
    assert (summary.stale_accepted, summary.stale_rejected) == (1, 1)
    assert summary.safe is False


def test_a_stale_write_after_the_end_is_not_the_runs(build) -> None:
    # A lab's saved traces go on through the shutdown, where a leader that released its
    # slot still writes for its stop latency: judged with the run's end, it is not counted.
    common = {"fencing": False, "sent_at": 0.0, "seq": 1, "leader_id": ""}
    build.add(1.0, "n1", "guarded_write", accepted=True, stale=False, **common)
    build.add(4.5, "n1", "guarded_write", accepted=True, stale=True, **common)
    events = Result(build.trace(), 5.0).events
    assert summarize(events, 4.0).stale_accepted == 0
    assert summarize(events, 4.0).safe is True
    assert summarize(events, 5.0).stale_accepted == 1
