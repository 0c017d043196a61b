"""Shared fixtures: server URLs, skip-or-fail policy for servers."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVERS = os.environ.get("LEADERSIM_REQUIRE_SERVERS") == "1"

#: The PostgreSQL and MariaDB/MySQL servers the `server` tests use (trust auth, db `test`).
POSTGRES_URL = os.environ.get(
    "LEADERSIM_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("LEADERSIM_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")


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
