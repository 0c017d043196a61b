"""Shared fixtures and the two test tiers.

Tiers:

- ``python -m pytest`` (the README's command) is the fast tier: every module, the rules on
  fake or simulated clocks, one seed per catalogue variant. Tests marked ``slow`` (real-time
  runs of several seconds, benchmarks' smoke runs, every seed of the catalogue) are left out
  and counted in the summary.
- ``python -m pytest --full`` (what ``.ci/run`` runs as well) is the full tier: everything,
  every catalogue variant over all of its seeds. ``LEADERSIM_FULL=1`` is the same switch
  for a run that cannot pass options.
- Tests marked ``soak`` (the 5-minute soak of benchmarks/soak.py) run in neither tier;
  ``-m soak`` selects them.

Server tests read their URL from the environment and skip with a reason when the server is
unreachable, unless ``LEADERSIM_REQUIRE_SERVERS=1`` (as in CI) turns that into a failure.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REQUIRE_SERVERS = os.environ.get("LEADERSIM_REQUIRE_SERVERS") == "1"

#: The PostgreSQL and MariaDB/MySQL servers the `server` tests use (trust auth, db `test`).
POSTGRES_URL = os.environ.get(
    "LEADERSIM_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("LEADERSIM_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")


def full_tier() -> bool:
    """Whether this run is the full tier (``--full`` or ``LEADERSIM_FULL=1``)."""
    return os.environ.get("LEADERSIM_FULL") == "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="the full tier: slow tests too, every catalogue variant over all its seeds",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Test modules read the tier when they are collected, after this hook; xdist workers
    # get the same options, so they agree with the controller.
    if config.getoption("--full"):
        os.environ["LEADERSIM_FULL"] = "1"


#: Modules of real-time tests (OS processes, server sessions, wall-clock bounds): under
#: xdist they share one worker (``--dist loadgroup``), so two of them never compete for
#: the CPU and their timing bounds measure the elector, not the test run's load.
REAL_TIME_MODULES = {
    "test_lab.py",
    "test_lab_scenarios.py",
    "test_cli.py",
    "test_corrupt_rows.py",
    "test_orm.py",
    "test_orm_elector.py",
    "test_orm_faults.py",
    "test_orm_processes.py",
    "test_calibration.py",
    "test_fault_parity.py",
    "test_soak.py",
}


#: The directory of the tests that only simulate: no wall clock, no processes, no
#: servers (but the real-time modules above). Marked ``simulated``: ``.ci/run`` runs them
#: on every core first, then the rest of the full tier in one process.
SIMULATED_DIR = Path(__file__).parent / "sim"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in REAL_TIME_MODULES:
            item.add_marker(pytest.mark.xdist_group("real-time"))
        elif item.path.parent == SIMULATED_DIR:
            item.add_marker(pytest.mark.simulated)
    # The soak runs for minutes: in neither tier unless asked for by name (`-m soak`).
    if "soak" not in (config.getoption("markexpr", "") or ""):
        soaks = [item for item in items if item.get_closest_marker("soak")]
        if soaks:
            config.hook.pytest_deselected(items=soaks)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]
    if full_tier():
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_report_header(config: pytest.Config) -> str:
    if full_tier():
        return "leadersim: full tier (slow tests, every catalogue seed)"
    return "leadersim: fast tier (slow tests deselected; `python -m pytest --full` runs all)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not full_tier():
        terminalreporter.write_line(
            "fast tier: tests marked slow were not run; `python -m pytest --full` runs every "
            "test, every catalogue variant over all its seeds (as CI does)"
        )


def server_unreachable(reason: str) -> None:
    """Skip (or, with LEADERSIM_REQUIRE_SERVERS=1, fail) a test whose server is down."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (LEADERSIM_REQUIRE_SERVERS=1 requires it)")
    pytest.skip(reason)


def require_server(url: str, what: str) -> str:
    """Return ``url`` if its server accepts TCP connections, else skip-or-fail."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    host, port = parsed.host or "127.0.0.1", parsed.port
    if port is None:
        port = 5432 if parsed.get_backend_name() == "postgresql" else 3306
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        server_unreachable(f"{what} at {host}:{port} is unreachable ({exc})")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL (``LEADERSIM_POSTGRES_URL``); skips if the server is down."""
    return require_server(POSTGRES_URL, "PostgreSQL (LEADERSIM_POSTGRES_URL)")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """The MariaDB/MySQL URL (``LEADERSIM_MYSQL_URL``); skips if the server is down."""
    return require_server(MYSQL_URL, "MariaDB/MySQL (LEADERSIM_MYSQL_URL)")
