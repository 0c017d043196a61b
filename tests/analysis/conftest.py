"""Shared helpers for the analysis tests: hand-built traces and a headless matplotlib."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import matplotlib
import pytest

from leadersim.trace import EventKind, TraceEvent

matplotlib.use("Agg")


class TraceBuilder:
    """Build a trace by hand, event by event, in any order (sorted by true time).

    Each node's clock reads ``origin + true_time`` unless an event gives ``local``: the
    origins differ per node, as monotonic clocks do.
    """

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self._origins: dict[str, float] = {}

    def local(self, node: str, true_time: float) -> float:
        origin = self._origins.setdefault(node, 1000.0 * (len(self._origins) + 1))
        return origin + true_time

    def add(
        self, t: float, node: str, event: str, local: float | None = None, **details: Any
    ) -> None:
        local_time = self.local(node, t) if local is None else local
        self.events.append(TraceEvent(t, node, local_time, EventKind(event), details))

    # the elector's and the environment's usual sequences

    def renew(self, t: float, node: str, leader: str, lease: float = 10.0) -> None:
        """A successful renew round at ``t``: leader ``leader``, own lease ``lease`` s."""
        self.add(t, node, "renew_ok", leader_id=leader, lease_until=self.local(node, t) + lease)

    def start(self, t: float, node: str) -> None:
        self.add(t, node, "callback_started", incarnation=0)

    def stop(self, t: float, node: str, reason: str = "cancelled") -> None:
        self.add(t, node, "callback_stopped", reason=reason, error=None, incarnation=0)

    def fault(self, t: float, node: str, kind: str, index: int = 0, **params: Any) -> None:
        details = {"fault": index, "kind": kind, "target": node, **params}
        self.add(t, node, "fault_start", **details)

    def fault_end(self, t: float, node: str, kind: str, index: int = 0) -> None:
        self.add(t, node, "fault_end", **{"fault": index, "kind": kind})

    def trace(self) -> list[TraceEvent]:
        return sorted(self.events, key=lambda e: e.true_time)


@pytest.fixture
def build() -> TraceBuilder:
    return TraceBuilder()


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    # pyplot keeps every figure alive; more than 20 open is a warning (an error here)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
