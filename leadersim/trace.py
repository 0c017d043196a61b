"""Trace events: what happened, to which node, when.

Every run, simulated or real, produces the same schema: one :class:`TraceEvent` per state
change, with ``true_time`` (the simulator's time, or the host's monotonic time in real runs),
``node``, ``local_time`` (the node's own monotonic clock), ``kind`` (an :class:`EventKind`)
and ``details`` (JSON-compatible scalars). The elector reports events to an
:class:`Observer`; a :class:`TraceRecorder` is the observer that stamps true time and keeps
them.

A real run saved to disk is a *trace directory*: one JSON-lines file per process (each
member's ``<node>.jsonl``, and the lab's own ``lab.jsonl`` with the run's start and every
fault it injected); :func:`read_trace_dir` reads it back as one trace. Stdlib only.
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
    "TRUE_TIME_DETAILS",
    "TraceRecorder",
    "read_jsonl",
    "read_trace_dir",
    "run_start",
    "trace_files",
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
    #: The run began (node ``""``): a real run's time origin. Simulated traces have none:
    #: simulated time starts at 0.
    RUN_STARTED = "run_started"


#: Detail keys whose values are true times (seconds on the run's reference clock, like
#: ``true_time``), so that :meth:`TraceEvent.shifted` moves them too. Every other detail
#: that is a time (``lease_until`` ...) is on the node's local clock.
TRUE_TIME_DETAILS = frozenset({"sent_at", "arrived_at", "replied_at"})


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

    def shifted(self, offset: float) -> TraceEvent:
        """This event with ``offset`` seconds subtracted from its true times.

        ``true_time`` and the details named in :data:`TRUE_TIME_DETAILS` move;
        ``local_time`` (the node's own clock) does not.
        """
        details = dict(self.details)
        for key in TRUE_TIME_DETAILS.intersection(details):
            value = details[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                details[key] = value - offset
        return TraceEvent(self.true_time - offset, self.node, self.local_time, self.kind, details)

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
        """Record one event (``details`` is copied: the caller may reuse its mapping)."""
        self.record(node, local_time, kind, dict(details))

    def record(
        self, node: str, local_time: float, kind: EventKind, details: dict[str, Scalar]
    ) -> None:
        """Record one event whose ``details`` dict the caller hands over (not copied).

        The caller must not change ``details`` afterwards: the event keeps it as it is.
        """
        event = TraceEvent(self._true_clock(), node, local_time, kind, details)
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

    Events with the same ``true_time`` keep the order of ``paths``, then of the lines.
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


def trace_files(directory: str | Path) -> list[Path]:
    """The trace files of a trace directory: every ``*.jsonl`` in it, sorted by name.

    Raises:
        ValueError: ``directory`` is not a directory, or holds no ``*.jsonl`` file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"trace directory {str(directory)!r} does not exist or is not a directory")
    files = sorted(p for p in directory.glob("*.jsonl") if p.is_file())
    if not files:
        raise ValueError(f"trace directory {str(directory)!r} holds no *.jsonl trace file")
    return files


def read_trace_dir(directory: str | Path) -> list[TraceEvent]:
    """Read a saved real run back: every ``*.jsonl`` file of ``directory``, merged.

    The merge is :func:`read_jsonl` over the files in name order, which is also how
    :meth:`leadersim.lab.Lab.read_trace` merges them: a lab's directory read back gives
    the lab's trace, event for event (its ``lab.jsonl`` holds the run's start and the
    faults the lab injected). For the verdict, pass it to
    :class:`~leadersim.analysis.result.Result` (or use ``Result.from_trace_dir``).

    Raises:
        ValueError: ``directory`` is not a directory, or holds no ``*.jsonl`` file.
    """
    return read_jsonl(trace_files(directory))


def run_start(events: Iterable[TraceEvent]) -> float | None:
    """The true time of the first ``run_started`` event, or ``None`` if there is none."""
    return next((e.true_time for e in events if e.kind is EventKind.RUN_STARTED), None)
