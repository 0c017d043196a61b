"""Fixtures shared by the simulator's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadersim.sim.loop import SimLoop


@pytest.fixture
def loop() -> Iterator[SimLoop]:
    """A fresh SimLoop on its own SimPy environment, closed after the test."""
    sim_loop = SimLoop()
    try:
        yield sim_loop
    finally:
        sim_loop.close()
