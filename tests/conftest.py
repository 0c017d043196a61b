"""Shared fixtures: server URLs, skip-or-fail policy for servers."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVERS = os.environ.get("LEADERSIM_REQUIRE_SERVERS") == "1"


def server_unreachable(reason: str) -> None:
    """Skip (or, with LEADERSIM_REQUIRE_SERVERS=1, fail) a test whose server is down."""
    if REQUIRE_SERVERS:
        pytest.fail(f"{reason} (LEADERSIM_REQUIRE_SERVERS=1 requires it)")
    pytest.skip(reason)
