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
import operator
import struct
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress, islice
from pathlib import Path
from typing import IO, Any, Protocol, overload

__all__ = [
    "EventKind",
    "Observer",
    "Trace",
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


#: How a position of an event is stored, by the exact type of its value: packed (a
#: ``struct`` code), as an index into the store's strings (``S``), not at all (``N``:
#: ``None``), or as an index into a list of the values themselves (``O``: any other value).
_CODES: dict[type, str] = {float: "d", int: "q", bool: "?", str: "S", type(None): "N"}
_FORMATS = {"d": "d", "q": "q", "?": "?", "S": "I", "O": "I"}

#: Events a store keeps unpacked before it packs them in one pass.
_BATCH = 256

#: Setters of TraceEvent's slots, in field order (what a frozen dataclass's __init__ uses).
_FIELD_SETTERS = tuple(getattr(TraceEvent, f.name).__set__ for f in dataclasses.fields(TraceEvent))

#: One key tuple per distinct tuple of detail keys, shared by every shape (and store).
_shared_keys: dict[tuple[str, ...], tuple[str, ...]] = {}


class _Shape:
    """What the packed events of one kind, key tuple and value types have in common.

    An event's positions are its ``node``, ``true_time``, ``local_time`` and its detail
    values, in that order; ``codes`` says how each is stored. Its packer and unpacker
    are made for it once (one line of generated code each: no loop per value).
    """

    __slots__ = ("codes", "decode", "encode", "keys", "kind", "number")

    def __init__(self, number: int, kind: EventKind, keys: tuple[str, ...], codes: str) -> None:
        self.number = number
        self.kind = kind
        self.keys = _shared_keys.setdefault(keys, keys)
        self.codes = codes
        packer = struct.Struct("<" + "".join(_FORMATS[c] for c in codes if c != "N"))
        stored: list[str] = []  # what to pack, from the event's values v
        read: list[str] = []  # each position's value, from the unpacked p
        for i, code in enumerate(codes):
            j = len(stored)
            if code == "N":
                read.append("None")
                continue
            stored.append({"S": f"ids[v[{i}]]", "O": f"keep(v[{i}])"}.get(code, f"v[{i}]"))
            read.append({"S": f"strings[p[{j}]]", "O": f"objects[p[{j}]]"}.get(code, f"p[{j}]"))
        details = ", ".join(f"k{i}: {value}" for i, value in enumerate(read[3:]))
        namespace: dict[str, Any] = {f"k{i}": key for i, key in enumerate(self.keys)}
        namespace.update(pack=packer.pack, unpack=packer.unpack_from, kind=kind, new=object.__new__)
        # The event is built as its frozen __init__ would, minus a call per field.
        namespace.update(Event=TraceEvent, **{f"set{i}": s for i, s in enumerate(_FIELD_SETTERS)})
        fields = (read[1], read[0], read[2], "kind", f"{{{details}}}")
        sets = "; ".join(f"set{i}(e, {value})" for i, value in enumerate(fields))
        exec(
            f"def encode(v, ids, keep):\n    return pack({', '.join(stored)})\n"
            f"def decode(blob, offset, strings, objects):\n    p = unpack(blob, offset)\n"
            f"    e = new(Event); {sets}\n    return e\n",
            namespace,
        )
        self.encode: Callable[[tuple[object, ...], _StringIds, Callable[[object], int]], bytes]
        self.encode = namespace["encode"]
        self.decode: Callable[[bytearray, int, list[str], list[object]], TraceEvent]
        self.decode = namespace["decode"]


class _StringIds(dict[str, int]):
    """Each distinct string's index in :attr:`strings` (a new string is added on lookup)."""

    __slots__ = ("strings",)

    def __init__(self) -> None:
        super().__init__()
        self.strings: list[str] = []

    def __missing__(self, text: str) -> int:
        index = self[text] = len(self.strings)
        self.strings.append(text)
        return index


class _Store:
    """The append-only packed events behind :class:`Trace` views.

    Per event: its shape's number and its offset in one byte buffer that holds every
    event's packed values. Each distinct string (node, id, outcome ...) is kept once.

    An appended event waits, as it was given, among :attr:`pending` until the next
    :meth:`flush` packs it: every :data:`_BATCH` events, and before anything is read (a
    :class:`Trace` view flushes when it is made). Packing a batch in one pass keeps the
    packers' code and data warm, between a simulation's other steps: a 5-node simulated
    hour costs 4 % less CPU than with each event packed as it comes (0.87 s -> 0.84 s).
    """

    __slots__ = (
        "_by_codes",
        "_by_types",
        "blob",
        "ids",
        "objects",
        "offsets",
        "pending",
        "shape_ids",
        "shapes",
    )

    def __init__(self) -> None:
        self.shapes: list[_Shape] = []
        self._by_codes: dict[tuple[object, ...], _Shape] = {}
        self._by_types: dict[tuple[object, ...], _Shape] = {}
        self.shape_ids = array("I")
        self.offsets = array("Q")
        self.blob = bytearray()
        self.ids = _StringIds()
        self.objects: list[object] = []
        self.pending: list[tuple[float, str, float, EventKind, Mapping[str, Scalar]]] = []

    def __len__(self) -> int:
        """Every event appended (packed or pending)."""
        return len(self.shape_ids) + len(self.pending)

    def shape(self, kind: EventKind, keys: tuple[str, ...], codes: str) -> _Shape:
        """The shape of these codes (made on first use)."""
        key = (type(kind), kind, keys, codes)
        shape = self._by_codes.get(key)
        if shape is None:
            shape = self._by_codes[key] = _Shape(len(self.shapes), kind, keys, codes)
            self.shapes.append(shape)
        return shape

    def _keep(self, value: object) -> int:
        self.objects.append(value)
        return len(self.objects) - 1

    def append(
        self,
        true_time: float,
        node: str,
        local_time: float,
        kind: EventKind,
        details: Mapping[str, Scalar],
    ) -> None:
        """Add one event; ``details`` is kept as it is until packed (pass a fresh mapping)."""
        pending = self.pending
        pending.append((true_time, node, local_time, kind, details))
        if len(pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Pack the pending events, in order."""
        pending, self.pending = self.pending, []
        by_types, ids, keep = self._by_types, self.ids, self._keep
        shape_ids, offsets, blob = self.shape_ids, self.offsets, self.blob
        for true_time, node, local_time, kind, details in pending:
            values = (node, true_time, local_time, *details.values())
            types = (type(kind), kind, tuple(details), tuple(map(type, values)))
            shape = by_types.get(types)
            if shape is None:
                codes = "".join(_CODES.get(t, "O") for t in types[3])
                shape = by_types[types] = self.shape(kind, types[2], codes)
            try:
                packed = shape.encode(values, ids, keep)
            except (struct.error, OverflowError):  # an int beyond 64 bits: kept as an object
                shape = self.shape(kind, shape.keys, shape.codes.replace("q", "O"))
                packed = shape.encode(values, ids, keep)
            shape_ids.append(shape.number)
            offsets.append(len(blob))
            blob += packed

    def event(self, index: int) -> TraceEvent:
        """The event at ``index``, built anew."""
        return self.shapes[self.shape_ids[index]].decode(
            self.blob, self.offsets[index], self.ids.strings, self.objects
        )


class Trace(Sequence[TraceEvent]):
    """A recorded trace: an immutable sequence of :class:`TraceEvent`, stored packed.

    What :class:`TraceRecorder` keeps and :attr:`leadersim.analysis.result.Result.events`
    holds. It reads like the tuple of events it stands for (``len``, indexing, slicing,
    iteration, ``==`` against any sequence of events), but keeps each event packed in a
    few dozen bytes and builds the :class:`TraceEvent` (its details a new dict) when it is
    read: two reads of one event give equal events, not the same object. It pickles
    compactly. Build one from events with :meth:`from_events`.
    """

    __slots__ = ("_length", "_store")

    def __init__(self, store: _Store | None = None, length: int | None = None) -> None:
        self._store = store if store is not None else _Store()
        self._store.flush()
        self._length = len(self._store) if length is None else length

    @classmethod
    def from_events(cls, events: Iterable[TraceEvent]) -> Trace:
        """The trace of ``events`` (returned as it is if it is a :class:`Trace`)."""
        if isinstance(events, Trace):
            return events
        store = _Store()
        for e in events:
            store.append(e.true_time, e.node, e.local_time, e.kind, e.details)
        return cls(store)  # packs them now: the events' details are read before it returns

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> TraceEvent: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TraceEvent, ...]: ...

    def __getitem__(self, index: int | slice) -> TraceEvent | tuple[TraceEvent, ...]:
        if isinstance(index, slice):
            return tuple(map(self._store.event, range(*index.indices(self._length))))
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("trace index out of range")
        return self._store.event(index)

    def __iter__(self) -> Iterator[TraceEvent]:
        return map(self._store.event, range(self._length))

    def __reversed__(self) -> Iterator[TraceEvent]:
        return map(self._store.event, range(self._length - 1, -1, -1))

    def of_kind(self, *kinds: EventKind) -> list[TraceEvent]:
        """The events of the given kinds, in order (only those are built)."""
        return list(map(self._store.event, self.positions(*kinds)))

    def positions(self, *kinds: EventKind) -> list[int]:
        """The indices of the events of the given kinds, in order (no event is built)."""
        wanted = {s.number for s in self._store.shapes if s.kind in kinds}
        if not wanted:
            return []
        return list(compress(range(self._length), map(wanted.__contains__, self._shape_ids())))

    def kinds(self) -> list[EventKind]:
        """The kinds in the trace, in order of first appearance (no event is built)."""
        shapes = self._store.shapes
        return list(dict.fromkeys(shapes[n].kind for n in dict.fromkeys(self._shape_ids())))

    def _shape_ids(self) -> Iterator[int]:
        ids = self._store.shape_ids
        return iter(ids) if len(ids) == self._length else islice(ids, self._length)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace) and other._store is self._store:
            return other._length == self._length
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == self._length and all(map(operator.eq, self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, as a tuple of its events

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        store, n = self._store, self._length
        end = store.offsets[n] if n < len(store.offsets) else len(store.blob)
        shapes = [(s.kind, s.keys, s.codes) for s in store.shapes]
        state = (shapes, store.shape_ids[:n], store.offsets[:n], bytes(store.blob[:end]))
        return (_trace, (*state, store.ids.strings, store.objects))


def _trace(
    shapes: list[tuple[EventKind, tuple[str, ...], str]],
    shape_ids: array[int],
    offsets: array[int],
    blob: bytes,
    strings: list[str],
    objects: list[object],
) -> Trace:
    """Unpickle a :class:`Trace`."""
    store = _Store()
    for kind, keys, codes in shapes:
        store.shape(kind, keys, codes)
    store.shape_ids.extend(shape_ids)
    store.offsets.extend(offsets)
    store.blob[:] = blob
    for text in strings:
        store.ids[text]
    store.objects[:] = objects
    return Trace(store)


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
        self._store = _Store()

    @property
    def events(self) -> Trace:
        """The events recorded so far (a :class:`Trace`: later events do not join it)."""
        return Trace(self._store)

    def __call__(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        """Record one event (``details`` is copied: the caller may reuse its mapping)."""
        self.record(node, local_time, kind, dict(details))

    def record(
        self, node: str, local_time: float, kind: EventKind, details: dict[str, Scalar]
    ) -> None:
        """Record one event; ``details`` is kept until packed: hand over a fresh dict."""
        true_time = self._true_clock()
        if self._keep:
            self._store.append(true_time, node, local_time, kind, details)
        if self._sink is not None:
            event = TraceEvent(true_time, node, local_time, kind, details)
            self._sink.write(json.dumps(event.to_dict()) + "\n")
            self._sink.flush()

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._store)

    def of_kind(self, *kinds: EventKind) -> list[TraceEvent]:
        """The recorded events of the given kinds, in order."""
        return self.events.of_kind(*kinds)

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
    if isinstance(events, Trace):  # found without building every event (a simulation has none)
        found = events.positions(EventKind.RUN_STARTED)
        return events[found[0]].true_time if found else None
    return next((e.true_time for e in events if e.kind is EventKind.RUN_STARTED), None)
