"""Real mode: election members as OS processes on one SQLite file (leadersim.lab)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leadersim.analysis.result import Result
from leadersim.lab import Lab
from leadersim.record import Record
from leadersim.storage.sqlite import SQLiteStatements
from leadersim.trace import EventKind

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
        lab.close()
        for process in lab.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


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
    first = lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=STARTUP_TIMEOUT)
    leader = first.node
    others = [n for n in NODES if n != leader]
    # Let the leader renew a few times, so the successor must track a moving renewal.
    lab.wait_for_event(
        EventKind.RENEW_OK, nodes=[leader], after=first.true_time + 3 * interval, timeout=MARGIN
    )

    killed_at = lab.kill(leader, signal.SIGKILL)
    assert lab.wait(leader) == -signal.SIGKILL
    successor = lab.wait_for_event(
        EventKind.CALLBACK_STARTED,
        nodes=others,
        after=first.true_time,
        timeout=lease + 2 * interval + MARGIN,
    )

    trace = lab.read_trace()
    last_renewal = max(
        e.true_time for e in trace if e.node == leader and e.kind is EventKind.RENEW_OK
    )
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
    # leader's acting term, so the analysis sees one failover and no split brain.
    result = Result(trace)
    killed_terms = [i for i in result.acting() if i.node == leader]
    assert killed_terms[-1].end == killed_at
    assert killed_terms[-1].end_reason == "crashed"
    summary = result.summary()
    assert summary["overlap_s"] == 0
    assert summary["failovers"] == 1
    assert summary["failover_s"] == pytest.approx(successor.true_time - killed_at)

    codes = lab.stop_all()
    assert [codes[n] for n in others] == [0, 0]
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
