"""Trace events: what happened, to which node, when.

Every run, simulated or real, produces the same schema: one :class:`TraceEvent` per state
change, with ``true_time`` (the simulator's time, or the host's monotonic time in real runs),
``node``, ``local_time`` (the node's own monotonic clock), ``kind`` (an :class:`EventKind`)
and ``details`` (JSON-compatible scalars). The elector reports events to an
:class:`Observer`; a :class:`TraceRecorder` is the observer that stamps true time and keeps
them. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Protocol

__all__ = [
    "EventKind",
    "Observer",
    "TraceEvent",
    "TraceRecorder",
    "read_jsonl",
]

#: A value allowed in event details.
Scalar = str | int | float | bool | None


class EventKind(enum.StrEnum):
    """The documented kinds of trace events (the string is what traces store)."""

    RENEW_STARTED = "renew_started"
    RENEW_OK = "renew_ok"
    RENEW_FAILED = "renew_failed"
    CAS_CONFLICT = "cas_conflict"
    STORAGE_ERROR = "storage_error"
    BECAME_LEADER = "became_leader"
    LOST_LEADER = "lost_leader"
    CALLBACK_STARTED = "callback_started"
    CALLBACK_CANCELLED = "callback_cancelled"
    CALLBACK_STOPPED = "callback_stopped"
    MEMBER_EXPIRED = "member_expired"
    RECORD_WARNING = "record_warning"
    RESIGN = "resign"
    RELEASE = "release"
    ELECTION_STARTED = "election_started"
    ELECTION_STOPPED = "election_stopped"
    STORAGE_OP = "storage_op"
    GUARDED_WRITE = "guarded_write"
    FAULT_START = "fault_start"
    FAULT_END = "fault_end"


@dataclasses.dataclass(frozen=True, slots=True)
class TraceEvent:
    """One trace row.

    Attributes:
        true_time: Seconds on the run's reference clock (simulated time, or the host's
            monotonic clock in real runs); comparable across nodes.
        node: Id of the node the event happened on (``""`` for the environment).
        local_time: Seconds on the node's own monotonic clock; never compare two nodes'.
        kind: What happened.
        details: Event-specific JSON-compatible scalars.
    """

    true_time: float
    node: str
    local_time: float
    kind: EventKind
    details: Mapping[str, Scalar] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Scalar | dict[str, Scalar]]:
        """A plain dict (``kind`` as its string) for JSON or a DataFrame row."""
        return {
            "true_time": self.true_time,
            "node": self.node,
            "local_time": self.local_time,
            "kind": self.kind.value,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, object]) -> TraceEvent:
        """Inverse of :meth:`to_dict`."""
        details = row.get("details") or {}
        if not isinstance(details, Mapping):
            raise ValueError(f"trace details must be an object, got {details!r}")
        return cls(
            float(row["true_time"]),  # type: ignore[arg-type]
            str(row["node"]),
            float(row["local_time"]),  # type: ignore[arg-type]
            EventKind(str(row["kind"])),
            dict(details),
        )


class Observer(Protocol):
    """Receives the elector's (and the environment's) state changes."""

    def __call__(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        """Record that ``kind`` happened on ``node`` at its ``local_time``."""
        ...


class TraceRecorder:
    """An :class:`Observer` that stamps each event with true time and keeps it.

    Args:
        true_clock: Returns the run's reference time in seconds; defaults to
            :func:`time.monotonic`, which all processes of one host share on Linux.
        sink: Optional text stream; each event is also written to it as one JSON line
            (flushed), so a crashed process leaves its trace behind.
        keep: Whether to keep events in memory (``events``); a long-running member that
            only needs its sink sets it to ``False``.
    """

    def __init__(
        self,
        true_clock: Callable[[], float] | None = None,
        sink: IO[str] | None = None,
        *,
        keep: bool = True,
    ) -> None:
        self._true_clock = true_clock or time.monotonic
        self._sink = sink
        self._keep = keep
        self.events: list[TraceEvent] = []

    def __call__(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        """Record one event."""
        event = TraceEvent(self._true_clock(), node, local_time, kind, dict(details))
        if self._keep:
            self.events.append(event)
        if self._sink is not None:
            self._sink.write(json.dumps(event.to_dict()) + "\n")
            self._sink.flush()

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def of_kind(self, *kinds: EventKind) -> list[TraceEvent]:
        """The recorded events of the given kinds, in order."""
        return [e for e in self.events if e.kind in kinds]

    def write_jsonl(self, path: str | Path) -> None:
        """Write every event as one JSON line."""
        with open(path, "w", encoding="utf-8") as out:
            for event in self.events:
                out.write(json.dumps(event.to_dict()) + "\n")


def read_jsonl(paths: str | Path | Iterable[str | Path]) -> list[TraceEvent]:
    """Read events from one or more JSON-lines trace files, merged in true-time order.

    A truncated last line (a process killed mid-write) is skipped.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    events: list[TraceEvent] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                events.append(TraceEvent.from_dict(json.loads(line)))
    events.sort(key=lambda e: e.true_time)
    return events
