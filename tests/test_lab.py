"""Real mode: election members as OS processes on one SQLite file (leadersim.lab)."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leadersim.analysis.result import Result
from leadersim.lab import LAB_TRACE_NAME, Lab
from leadersim.record import Record
from leadersim.storage.sqlite import SQLiteStatements
from leadersim.trace import EventKind, read_jsonl, read_trace_dir

NODES = ("n1", "n2", "n3")
# Generous: the machine is small and shared; these bound waits, they do not measure speed.
STARTUP_TIMEOUT = 20.0
MARGIN = 3.0
# The killed leader stamps its last renew_ok just *after* its commit; a successor can only
# start a full lease after it has *read* that commit. What separates the two readings of
# the shared monotonic clock is the leader's stamping delay, hence a small tolerance.
STAMP_TOLERANCE = 0.05

LabFactory = Callable[..., Lab]


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[LabFactory]:
    """Build labs on a fresh SQLite file; every member process is gone after the test."""
    labs: list[Lab] = []

    def make(**config: float) -> Lab:
        lab = Lab(tmp_path / "election.db", NODES, trace_dir=tmp_path / "traces", **config)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()  # stops, then kills and reaps what is left


def stored_record(db_path: Path) -> Record:
    statements = SQLiteStatements.for_table("election")
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        return statements.decode(connection.execute(statements.select).fetchall())


def test_killed_leader_is_replaced_only_after_its_lease_could_have_expired(
    make_lab: LabFactory,
) -> None:
    lease, interval = 1.0, 0.1
    lab = make_lab(lease_duration=lease, renew_interval=interval, renew_deadline=0.5)
    lab.start()
    # Let the leader renew a few times, so the successor must track a moving renewal.
    failover = lab.kill_leader_and_watch(
        hold=3 * interval, startup_timeout=STARTUP_TIMEOUT, timeout=lease + 2 * interval + MARGIN
    )
    leader, successor = failover.leader, failover.successor
    killed_at, last_renewal = failover.killed_at, failover.last_renewal
    others = [n for n in NODES if n != leader]
    assert lab.wait(leader) == -signal.SIGKILL
    assert successor.node != leader

    trace = lab.read_trace()
    assert last_renewal < killed_at
    assert successor.true_time >= last_renewal + lease - STAMP_TOLERANCE, (
        f"{successor.node} started leading {successor.true_time - last_renewal:.3f} s after "
        f"{leader}'s last renewal, before its {lease} s lease could have expired"
    )
    assert successor.true_time - killed_at <= lease + 2 * interval + MARGIN
    assert any(
        e.node == successor.node
        and e.kind is EventKind.MEMBER_EXPIRED
        and e.details == {"member": leader, "was_leader": True}
        and e.true_time <= successor.true_time
        for e in trace
    )

    # The real trace reads like a simulated one: the kill is a crash fault that ends the
    # leader's acting term, so the analysis sees one failover and no split brain. The
    # result counts from the run's start (the lab's run_started), not from host uptime.
    result = Result(trace)
    assert result.start_time == trace[0].true_time
    assert trace[0].kind is EventKind.RUN_STARTED
    assert 0 <= result.acting()[0].start < STARTUP_TIMEOUT
    killed_terms = [i for i in result.acting() if i.node == leader]
    assert killed_terms[-1].end + result.start_time == pytest.approx(killed_at, abs=1e-9)
    assert killed_terms[-1].end_reason == "crashed"
    summary = result.summary()
    assert summary["overlap_s"] == 0
    assert summary["level"] == "SAFE"
    assert summary["failovers"] == 1
    assert summary["failover_s"] == pytest.approx(successor.true_time - killed_at)

    codes = lab.stop_all()
    assert [codes[n] for n in others] == [0, 0], lab.describe()
    assert lab.integrity_check() == "ok"
    # The successor pruned the dead leader; the others removed themselves on SIGTERM.
    record = stored_record(lab.db_path)
    assert (record.leader_id, record.members) == ("", [])


def test_leader_stopped_with_sigterm_hands_over_without_waiting_out_its_lease(
    make_lab: LabFactory,
) -> None:
    lease, interval = 4.0, 0.1
    lab = make_lab(lease_duration=lease, renew_interval=interval, renew_deadline=2.0)
    lab.start()
    first = lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=STARTUP_TIMEOUT)
    leader = first.node
    others = [n for n in NODES if n != leader]

    stopped_at = lab.kill(leader, signal.SIGTERM)
    assert lab.wait(leader) == 0
    successor = lab.wait_for_event(
        EventKind.CALLBACK_STARTED, nodes=others, after=first.true_time, timeout=interval + MARGIN
    )

    # interval + MARGIN < lease: the successor took a released slot, it did not expire it.
    assert successor.true_time - stopped_at <= interval + MARGIN
    trace = lab.read_trace()
    releases = [e for e in trace if e.node == leader and e.kind is EventKind.RELEASE]
    assert [(e.details["ok"], e.details["leader_changed"]) for e in releases] == [(True, True)]
    assert not [e for e in trace if e.kind is EventKind.MEMBER_EXPIRED]
    stops = [e for e in trace if e.node == leader and e.kind is EventKind.CALLBACK_STOPPED]
    assert [e.details["reason"] for e in stops] == ["cancelled"]

    assert lab.stop_all() == {n: 0 for n in NODES}
    assert lab.integrity_check() == "ok"


# In a fresh interpreter: nothing of the lab object, only the files.
READ_BACK = """
import json, sys
from leadersim.analysis.result import Result
result = Result.from_trace_dir(sys.argv[1])
print(json.dumps({"line": result.verdict.line(), "summary": result.summary()}))
"""


@pytest.mark.slow
def test_a_saved_lab_run_read_back_in_a_fresh_process_gives_the_live_verdict(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    lease, interval = 1.0, 0.1
    lab = make_lab(lease_duration=lease, renew_interval=interval, renew_deadline=0.5)
    lab.start()
    first = lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=STARTUP_TIMEOUT)
    leader = first.node
    others = [n for n in NODES if n != leader]
    # Every kind of fault the lab injects: a follower paused and resumed, the leader
    # killed, a successor elected, the killed member restarted, then a stop of all.
    lab.kill(others[0], signal.SIGSTOP)
    lab.kill(others[0], signal.SIGCONT)
    killed_at = lab.kill(leader, signal.SIGKILL)
    lab.wait_for_event(
        EventKind.CALLBACK_STARTED, nodes=others, after=killed_at, timeout=lease + MARGIN + 5
    )
    lab.start(leader)
    lab.wait_for_event(EventKind.ELECTION_STARTED, nodes=[leader], after=killed_at, timeout=10)
    lab.kill(leader, signal.SIGKILL)  # a follower now: its old term stays ended once
    lab.stop_all()
    live_trace = lab.read_trace()
    live = Result(live_trace)
    lab.close()

    faults = [
        (e.node, e.kind.value, e.details.get("kind"), e.details.get("signal"))
        for e in live_trace
        if e.kind in (EventKind.FAULT_START, EventKind.FAULT_END)
    ]
    assert faults[:5] == [
        (others[0], "fault_start", "pause", "SIGSTOP"),
        (others[0], "fault_end", "pause", "SIGCONT"),
        (leader, "fault_start", "crash", "SIGKILL"),
        (leader, "fault_start", "restart", None),
        (leader, "fault_start", "crash", "SIGKILL"),
    ]
    assert sorted(f[0] for f in faults[5:]) == sorted(others)  # stop_all's SIGTERMs
    crashed_stops = [
        e
        for e in live_trace
        if e.node == leader
        and e.kind is EventKind.CALLBACK_STOPPED
        and e.details["reason"] == "crashed"
    ]
    assert [e.true_time for e in crashed_stops] == [killed_at]
    assert live.verdict.level == "SAFE", live.verdict.line()
    assert live.verdict.overlap_s == 0
    assert live.verdict.failovers == 1

    # The directory alone, read in this process and in a fresh one: the same events and
    # the same verdict, number for number.
    trace_dir = lab.trace_dir
    assert read_trace_dir(trace_dir) == live_trace
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(trace_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    read_back = json.loads(done.stdout)
    assert read_back["line"] == live.verdict.line()
    assert read_back["summary"] == json.loads(json.dumps(live.summary()))

    # What made the files lie before: without the lab's own file, the killed leader's
    # callback never stops in the trace, and the verdict is a false split brain.
    members = sorted(p for p in trace_dir.glob("*.jsonl") if p.name != LAB_TRACE_NAME)
    members_only = read_jsonl(members)
    assert Result(members_only).verdict.level == "UNSAFE"


def test_a_member_may_not_take_the_name_of_the_labs_own_trace_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="may not be called 'lab'"):
        Lab(tmp_path / "election.db", ["n1", "lab"])
    lab = Lab(tmp_path / "election.db", ["n1"])
    with pytest.raises(ValueError, match="may not be called 'lab'"):
        lab.start("lab")
    assert not lab.processes
    assert not (tmp_path / LAB_TRACE_NAME).exists()
