"""Bad rows in a live election: real member processes (``leadersim member``) on a SQLite file.

While three members run, the test corrupts the election row with a plain ``sqlite3``
connection, the way a stray script or a hand edit would: a version that is not an integer
from 1 (text, a blob, negative, fractional), record JSON nested too deeply to decode, and a
member lease a Go member could not decode either. Each time it checks what a user would
notice: every member keeps running, each says in its log and its trace that the record is
corrupt (naming the table), nobody writes the row (it stays byte for byte), and once the
row is repaired the members elect a leader again.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersim.lab import Lab
from leadersim.trace import EventKind, TraceEvent

NODES = ("n1", "n2", "n3")
TABLE = "jobs_election"
LEASE, INTERVAL, DEADLINE = 1.0, 0.1, 0.5
#: Generous: the machine is small and shared; these bound waits, they do not measure speed.
TIMEOUT = 30.0
#: How long a corruption is left in place: several renew deadlines and a whole lease, so
#: every member has given up a renew round on it and the leader's lease has run out.
CORRUPT_FOR = 2.5

DEEP = "[" * 100_000
HUGE_LEASE = '{"leader_id":"n1","members":[{"id":"n1","lease_duration":1' + "0" * 30 + "}]}"
#: (what is corrupted, the column, the bad value, what the error says)
CORRUPTIONS: list[tuple[str, str, Any, str]] = [
    ("version-text", "version", "abc", "invalid version 'abc'"),
    ("version-blob", "version", b"\x00\x07", "invalid version b'"),
    ("version-negative", "version", -2, "invalid version -2"),
    ("version-fraction", "version", 2.5, "invalid version 2.5"),
    ("deep-json", "record", DEEP, "nested too deeply"),
    ("lease-1e30-ns", "record", HUGE_LEASE, "beyond the longest lease"),
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(
        tmp_path / "election.db",
        NODES,
        lease_duration=LEASE,
        renew_interval=INTERVAL,
        renew_deadline=DEADLINE,
        trace_dir=tmp_path / "traces",
        table_name=TABLE,
    )
    try:
        yield lab
    finally:
        lab.close()  # stops, then kills and reaps what is left


def connect(lab: Lab) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(lab.db_path, timeout=10, isolation_level=None))


def row_bytes(lab: Lab) -> list[tuple[Any, ...]]:
    """The row's columns as storage class and exact bytes."""
    with connect(lab) as connection:
        return connection.execute(
            "SELECT typeof(id), CAST(id AS BLOB), typeof(version), CAST(version AS BLOB), "
            f"typeof(record), CAST(record AS BLOB) FROM {TABLE}"
        ).fetchall()


def set_column(lab: Lab, column: str, value: Any) -> None:
    """Write a bad value the way a writer that keeps to the protocol would: the version moves.

    A bad record under an unchanged version is not a corruption the members can be asked
    to leave alone: a member that read the row just before the edit holds that version, and
    its compare-and-swap on it rightly replaces the record (the version is the row's only
    concurrency token, in the reference too). So a corrupt record comes with a new version,
    and a member that read before the edit loses its swap and reads the corruption.
    """
    with connect(lab) as connection:
        if column == "record":
            connection.execute(
                f"UPDATE {TABLE} SET record = ?, version = version + 1 WHERE id = 1", (value,)
            )
        else:
            connection.execute(f"UPDATE {TABLE} SET {column} = ? WHERE id = 1", (value,))


def events(lab: Lab, kind: EventKind, after: float) -> list[TraceEvent]:
    return [e for e in lab.read_trace() if e.kind is kind and e.true_time > after]


def wait_until(lab: Lab, predicate: Any, what: str) -> None:
    give_up_at = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > give_up_at:
            pytest.fail(f"{what}: not within {TIMEOUT:g} s\n{lab.describe()}")
        time.sleep(0.05)


@pytest.mark.slow
def test_members_survive_each_corrupt_row_leave_it_untouched_and_recover_after_repair(
    lab: Lab,
) -> None:
    lab.start()
    lab.wait_for_event(EventKind.BECAME_LEADER, timeout=TIMEOUT)
    with connect(lab) as connection:
        good_version, good_record = connection.execute(
            f"SELECT version, record FROM {TABLE} WHERE id = 1"
        ).fetchone()

    for name, column, bad, problem in CORRUPTIONS:
        corrupted_at = time.monotonic()
        set_column(lab, column, bad)
        corrupt_row = row_bytes(lab)

        def every_member_reported(after: float = corrupted_at, problem: str = problem) -> bool:
            reported = {
                e.node
                for e in events(lab, EventKind.STORAGE_ERROR, after)
                if e.details.get("corrupt") is True and problem in str(e.details.get("error"))
            }
            return reported == set(NODES)

        wait_until(lab, every_member_reported, f"{name}: every member reporting the corruption")
        time.sleep(max(0.0, corrupted_at + CORRUPT_FOR - time.monotonic()))

        # Nobody wrote the row, nobody renewed, nobody leads, nobody exited.
        assert row_bytes(lab) == corrupt_row, name
        assert all(lab.is_running(node) for node in NODES), f"{name}\n{lab.describe()}"
        late = corrupted_at + 0.2  # a renewal committed just before the corruption
        assert events(lab, EventKind.RENEW_OK, late) == [], name
        assert events(lab, EventKind.CALLBACK_STARTED, late) == [], name
        for event in events(lab, EventKind.STORAGE_ERROR, corrupted_at):
            error = str(event.details["error"])
            assert error.startswith(f"CorruptRecordError: table {TABLE!r}: "), error

        # Repair the row (the last good version and record): a leader is elected again.
        repaired_at = time.monotonic()
        with connect(lab) as connection:
            connection.execute(
                f"UPDATE {TABLE} SET version = ?, record = ? WHERE id = 1",
                (good_version, good_record),
            )
        lab.wait_for_event(EventKind.BECAME_LEADER, after=repaired_at, timeout=TIMEOUT)
        wait_until(
            lab,
            lambda after=repaired_at: (
                {e.node for e in events(lab, EventKind.RENEW_OK, after)} == set(NODES)
            ),
            f"{name}: every member renewing again after the repair",
        )
        assert all(lab.is_running(node) for node in NODES), f"{name}\n{lab.describe()}"
        with connect(lab) as connection:
            good_version, good_record = connection.execute(
                f"SELECT version, record FROM {TABLE} WHERE id = 1"
            ).fetchone()
        assert isinstance(good_version, int)
        assert good_version >= 1

    codes = lab.stop_all()
    assert codes == {node: 0 for node in NODES}, lab.describe()
    for node in NODES:
        log = lab.log_path(node).read_text(encoding="utf-8")
        assert "Traceback" not in log, log
        # One clear line per corruption (not one per retry), naming the table.
        corrupt_lines = [line for line in log.splitlines() if "election record is corrupt" in line]
        assert len(corrupt_lines) >= len(CORRUPTIONS), log
        assert all(f"table {TABLE!r}" in line for line in corrupt_lines), corrupt_lines
        assert all(" ERROR " in line for line in corrupt_lines), corrupt_lines
        assert log.count("election record is readable again") >= len(CORRUPTIONS), log


@pytest.mark.slow
def test_a_member_started_on_a_corrupt_row_keeps_running_and_stops_cleanly(lab: Lab) -> None:
    with connect(lab) as connection:
        connection.execute(
            f"CREATE TABLE {TABLE} (id int NOT NULL, version bigint NOT NULL, "
            "record text NOT NULL, PRIMARY KEY (id))"
        )
        connection.execute(f"INSERT INTO {TABLE} VALUES (1, 'abc', ?)", (DEEP,))
    before = row_bytes(lab)
    started = time.monotonic()
    lab.start("n1")
    lab.wait_for_event(EventKind.RENEW_FAILED, after=started, timeout=TIMEOUT)
    assert lab.is_running("n1"), lab.describe()
    lab.kill("n1", signal.SIGTERM)  # graceful stop: the release fails too, without writing
    assert lab.wait("n1") == 0, lab.describe()
    assert row_bytes(lab) == before
    log = lab.log_path("n1").read_text(encoding="utf-8")
    assert "Traceback" not in log, log
    assert "election record is corrupt" in log, log
