"""A lab pause on SQLite stops the member, not the database.

A member process on a SQLite file is its own database engine: stopped (``SIGSTOP``) while it
commits, it would keep the file's write lock and stall every other member, which is not the
pause of one member that a scenario means. These tests use a real writer process that holds
the write lock nine milliseconds in ten, and check that the lab's stop leaves the file
writable for others, every time.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadersim.lab import holds_sqlite_write_lock, process_state, stop_member_process

pytestmark = pytest.mark.skipif(
    not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks to see who holds a lock"
)

#: A writer that holds the write lock most of the time: 9 ms in a transaction, 1 ms out.
BUSY_WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS t (x)")
print("ready", flush=True)
while True:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES (1)")
    time.sleep(0.009)
    db.execute("COMMIT")
    time.sleep(0.001)
"""


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    db = tmp_path / "w.db"
    process = subprocess.Popen([sys.executable, "-c", BUSY_WRITER, str(db)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == b"ready\n"
        yield process, db
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def writable_by_another(db: Path) -> bool:
    """Whether another connection gets the write lock at once."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=0)) as other:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False
        other.execute("ROLLBACK")
        return True


def test_the_lock_holder_is_seen_by_its_pid(
    writer: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, db = writer
    seen_holding = seen_free = False
    deadline = time.monotonic() + 10
    while not (seen_holding and seen_free) and time.monotonic() < deadline:
        process.send_signal(signal.SIGSTOP)
        time.sleep(0.005)
        holding = holds_sqlite_write_lock(process.pid, db)
        assert holding != writable_by_another(db)
        seen_holding |= holding
        seen_free |= not holding
        process.send_signal(signal.SIGCONT)
        time.sleep(0.003)
    assert seen_holding
    assert seen_free
    assert not holds_sqlite_write_lock(process.pid + 1_000_000, db)


def test_a_stopped_member_never_keeps_the_write_lock(
    writer: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, db = writer
    retried = 0
    for _ in range(10):
        extra = stop_member_process(process, db)
        assert "holds_write_lock" not in extra, extra
        retried += int(extra.get("lock_retries", 0))
        assert writable_by_another(db)
        time.sleep(0.02)  # still stopped: the file stays writable
        assert writable_by_another(db)
        process.send_signal(signal.SIGCONT)
        time.sleep(0.013)
    # The writer holds the lock 90% of the time: stops had to be retried.
    assert retried >= 1


def test_on_a_server_the_stop_is_plain(writer: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, _ = writer
    assert stop_member_process(process, None) == {}
    time.sleep(0.01)
    assert process_state(process.pid) == "T"
