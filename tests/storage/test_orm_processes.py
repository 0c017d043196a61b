"""Multi-process failover on PostgreSQL and MariaDB: members as OS processes (leadersim.lab).

Three ``leadersim member --url ...`` processes share one table on the server; the leader
is SIGKILLed (no release), and another member must lead once the lease could have
expired, within the bound of the SQLite lab test (lease + 2 intervals + margin).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from worlds import drop_tables, unique_table

from leadersim.lab import Lab

NODES = ("n1", "n2", "n3")
STARTUP_TIMEOUT = 30.0  # generous: the machine is small and shared
MARGIN = 3.0
STAMP_TOLERANCE = 0.05  # see tests/test_lab.py


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    fixture = "postgres_url" if request.param == "postgresql" else "mysql_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def lab(server_url: str, tmp_path: Path) -> Iterator[Lab]:
    url = server_url
    table = unique_table("lab")
    lab = Lab(
        tmp_path / "unused.db",
        NODES,
        lease_duration=1.0,
        renew_interval=0.1,
        renew_deadline=0.5,
        trace_dir=tmp_path / "traces",
        table_name=table,
        url=url,
    )
    try:
        yield lab
    finally:
        lab.close()  # stops, then kills and reaps what is left
        asyncio.run(drop_tables(url, table))


@pytest.mark.server
@pytest.mark.slow
def test_sigkilled_leader_is_replaced_after_its_lease_within_the_bound(lab: Lab) -> None:
    lease, interval = lab.lease_duration, lab.renew_interval
    lab.start()
    failover = lab.kill_leader_and_watch(
        hold=3 * interval, startup_timeout=STARTUP_TIMEOUT, timeout=lease + 2 * interval + MARGIN
    )
    leader, successor = failover.leader, failover.successor
    killed_at, last_renewal = failover.killed_at, failover.last_renewal
    others = [n for n in NODES if n != leader]
    assert lab.wait(leader) == -signal.SIGKILL
    assert successor.node != leader
    assert successor.true_time >= last_renewal + lease - STAMP_TOLERANCE
    assert successor.true_time - killed_at <= lease + 2 * interval + MARGIN
    # The survivors stop gracefully (release and exit 0).
    codes = lab.stop_all()
    assert all(codes[n] == 0 for n in others), codes


def leadersim_command() -> list[str]:
    found = shutil.which("leadersim")
    assert found is not None, "the leadersim console script is not installed"
    return [found]


@pytest.mark.server
@pytest.mark.slow
def test_cli_demo_fails_over_on_a_server(server_url: str) -> None:
    done = subprocess.run(
        [*leadersim_command(), "demo", "--url", server_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sharing one database" in done.stdout
    assert "failover took" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says", "code"),
    [
        (["demo", "--url", "oracle://x/y"], "unsupported database 'oracle'", 2),
        (["demo", "--url", "sqlite:///x.db", "--db", "x.db"], "not both", 2),
        # A bad URL is a configuration mistake: a usage error, as for `demo`.
        (
            ["member", "--url", "postgresql+psycopg2://u@h/db", "--id", "n1"],
            "unsupported driver",
            2,
        ),
    ],
)
def test_cli_bad_url_is_one_line_and_exit_code(args: list[str], says: str, code: int) -> None:
    done = subprocess.run([*leadersim_command(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done
    assert says in done.stderr
    assert "Traceback" not in done.stderr
