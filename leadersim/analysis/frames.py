"""Tidy pandas DataFrames from a trace: one row per thing, one column per fact.

Every function takes the trace (a sequence of :class:`~leadersim.trace.TraceEvent` in
true-time order, simulated or real) and returns a :class:`pandas.DataFrame` whose columns
are fixed (an empty trace gives an empty frame with the same columns). All times are
seconds of **true time** unless a column says ``local``; two nodes' ``local_time`` values
are never compared. pandas is imported inside the functions, so importing this module
stays light.

The frames (and the :class:`~leadersim.analysis.result.Result` method that shows each):

- :func:`events_frame` (``Result.trace``): every event, common details flattened;
- :func:`faults_frame` (``faults()``): each fault on each node, start to end;
- :func:`storage_ops_frame` (``storage_ops()``): each storage operation, true outcome at
  the server beside the outcome the client saw, latency, ambiguous flag;
- :func:`committed_leader_frame` (``committed_leader()``): who the stored record named
  leader, span by span;
- :func:`intervals_frame` (``intervals()``): belief and acting leadership intervals;
- :func:`windows_frame` (``windows()``): split-brain windows with the faults active then;
- :func:`gaps_frame` (``gaps()``): spans with no node acting;
- :func:`terms_frame` (``terms()``, ``flaps()``): callback terms, flaps (failovers and
  re-elections) marked;
- :func:`failovers_frame` (``failovers()``): each change of acting leader, its cause and
  latency (the rule of :func:`~leadersim.analysis.intervals.failovers`);
- :func:`writes_frame` (``writes()``): leader-guarded writes, classified ``ok``,
  ``fenced`` (stale, rejected) or ``harmful`` (stale, accepted);
- :func:`clocks_frame` (``clocks()``): each node's clock offset (local - true) over time
  and its drift rate.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from leadersim.analysis.intervals import (
    Interval,
    acting_intervals,
    belief_intervals,
    fault_spans,
    faults_during,
    leader_changes,
    no_leader_gaps,
    overlap_windows,
)
from leadersim.faults import FAULT_KINDS
from leadersim.trace import EventKind, Trace, TraceEvent

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EVENT_DETAIL_COLUMNS",
    "TraceIndex",
    "as_index",
    "clocks_frame",
    "committed_leader_frame",
    "events_frame",
    "failovers_frame",
    "fault_records",
    "faults_frame",
    "gaps_frame",
    "intervals_frame",
    "lease_expiries",
    "storage_ops_frame",
    "true_times",
    "terms_frame",
    "windows_frame",
    "writes_frame",
]

#: Detail keys that :func:`events_frame` lifts into columns (``kind`` of a fault becomes
#: ``fault_kind``, so as not to clash with the event kind).
EVENT_DETAIL_COLUMNS = (
    "leader_id",
    "version",
    "lease_until",
    "reason",
    "incarnation",
    "error",
    "op",
    "outcome",
    "seen",
    "accepted",
    "stale",
    "fault",
    "fault_kind",
)


class TraceIndex(Sequence[TraceEvent]):
    """A trace with its events grouped by kind, built in one pass.

    Every function of this module accepts a plain sequence of events or a
    ``TraceIndex``; given an index, each reads only the kinds it needs, which matters
    for long runs (a 5-node simulated day holds about a million events, most of them
    storage operations and renew rounds). :class:`~leadersim.analysis.result.Result`
    keeps one. It is a sequence of the events, in their original order.

    Args:
        events: The trace, in true-time order.
    """

    __slots__ = ("_by_kind", "_core", "_events", "_trace")

    #: The high-volume kinds the leadership checker never reads.
    NOT_CHECKED = frozenset({EventKind.STORAGE_OP, EventKind.RENEW_STARTED})

    def __init__(self, events: Sequence[TraceEvent]) -> None:
        self._by_kind: dict[EventKind, list[TraceEvent]] = {}
        self._core: list[TraceEvent] | None = None
        self._events: tuple[TraceEvent, ...] | None = None
        #: A packed trace is read lazily: each kind's events are built when first asked
        #: for (the checker never builds the high-volume kinds it does not read).
        self._trace = events if isinstance(events, Trace) else None
        if self._trace is not None:
            return
        self._events = tuple(events)
        by_kind = self._by_kind
        core: list[TraceEvent] = []
        skip = self.NOT_CHECKED
        for event in self._events:
            kind = event.kind
            group = by_kind.get(kind)
            if group is None:
                group = by_kind[kind] = []
            group.append(event)
            if kind not in skip:
                core.append(event)
        self._core = core

    @property
    def events(self) -> tuple[TraceEvent, ...]:
        """Every event, in order."""
        if self._events is None:
            self._events = tuple(self._trace or ())
        return self._events

    @property
    def core(self) -> list[TraceEvent]:
        """The events in order, without the kinds in :attr:`NOT_CHECKED`.

        What the checker of :mod:`~leadersim.analysis.intervals` reads: its answers on
        ``core`` equal its answers on the whole trace.
        """
        if self._core is None:
            assert self._trace is not None
            kinds = [k for k in self._trace.kinds() if k not in self.NOT_CHECKED]
            self._core = self._trace.of_kind(*kinds)
        return self._core

    def _group(self, kind: EventKind) -> list[TraceEvent]:
        group = self._by_kind.get(kind)
        if group is None:
            if self._trace is None:
                return []
            group = self._by_kind[kind] = self._trace.of_kind(kind)
        return group

    def kinds(self) -> list[EventKind]:
        """The kinds of the trace's events, in order of first appearance."""
        return self._trace.kinds() if self._trace is not None else list(self._by_kind)

    def of(self, *kinds: EventKind) -> list[TraceEvent]:
        """The events of the given kinds, in true-time order (ties: in argument order)."""
        if len(kinds) == 1:
            return self._group(kinds[0])
        groups = [self._group(kind) for kind in kinds]
        return list(heapq.merge(*groups, key=_true_time))

    def __len__(self) -> int:
        return len(self._trace) if self._trace is not None else len(self.events)

    @overload
    def __getitem__(self, index: int) -> TraceEvent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TraceEvent]: ...

    def __getitem__(self, index: int | slice) -> TraceEvent | Sequence[TraceEvent]:
        return self.events[index]

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)


_true_time = operator.attrgetter("true_time")
_local_time = operator.attrgetter("local_time")


def true_times(events: Sequence[TraceEvent]) -> Any:
    """The events' true times as a float array."""
    import numpy as np

    return np.fromiter(map(_true_time, events), dtype=float, count=len(events))


def _local_times(events: Sequence[TraceEvent]) -> Any:
    import numpy as np

    return np.fromiter(map(_local_time, events), dtype=float, count=len(events))


def as_index(events: Sequence[TraceEvent]) -> TraceIndex:
    """``events`` as a :class:`TraceIndex` (itself if it is one)."""
    return events if isinstance(events, TraceIndex) else TraceIndex(events)


def _end_time(index: TraceIndex, end_time: float | None) -> float:
    if end_time is not None:
        return end_time
    return max((e.true_time for e in index.events), default=0.0)


def _float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _detail_columns(
    details: Sequence[Mapping[str, object]], keys: Sequence[str]
) -> list[list[object]]:
    """One list per key of the details' values (``None`` where a detail is missing)."""
    columns = []
    for key in keys:
        try:  # usually every mapping has the key: a C-level loop
            columns.append(list(map(operator.itemgetter(key), details)))
        except KeyError:
            columns.append([d.get(key) for d in details])
    return columns


def _floats(values: Sequence[object]) -> Any:
    """A float array (``None`` and non-numbers become NaN)."""
    import numpy as np

    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return np.array([_float(v) for v in values], dtype=float)


# ---------------------------------------------------------------------- events


def events_frame(events: Sequence[TraceEvent]) -> pd.DataFrame:
    """Every event: ``true_time, node, local_time, kind``, the common details, ``details``.

    The columns of :data:`EVENT_DETAIL_COLUMNS` hold the detail of that name (``None``
    where the event has none); ``details`` holds the event's own mapping (not a copy:
    treat it as read-only).
    """
    import numpy as np
    import pandas as pd

    index = as_index(events)
    all_events = index.events
    count = len(all_events)
    frame = pd.DataFrame(
        {
            "true_time": true_times(all_events),
            "node": [e.node for e in all_events],
            "local_time": _local_times(all_events),
            "kind": [e.kind.value for e in all_events],
        }
    )
    details = [e.details for e in all_events]
    # Look each detail up only in the kinds that have it: one pass to group rows by
    # kind, then one lookup per (row, key present in its kind).
    rows_of: dict[EventKind, list[int]] = {}
    for row, event in enumerate(all_events):
        rows_of.setdefault(event.kind, []).append(row)
    columns = {key: np.full(count, None, dtype=object) for key in EVENT_DETAIL_COLUMNS}
    for kind, rows in rows_of.items():
        group = [details[row] for row in rows]
        present: set[str] = set().union(*group)
        wanted = [
            key
            for key in EVENT_DETAIL_COLUMNS
            if (key == "fault_kind" and kind in _FAULT_KINDS and "kind" in present)
            or (key != "fault_kind" and key in present)
        ]
        sources = ["kind" if key == "fault_kind" else key for key in wanted]
        for key, found in zip(wanted, _detail_columns(group, sources), strict=True):
            values = np.empty(len(rows), dtype=object)
            values[:] = found
            columns[key][rows] = values
    for key, values in columns.items():
        frame[key] = values
    frame["details"] = details
    return frame


_FAULT_KINDS = (EventKind.FAULT_START, EventKind.FAULT_END)


# ---------------------------------------------------------------------- faults

_FAULT_COLUMNS = ["fault", "node", "kind", "start", "end", "duration", "instant", "label", "params"]


def fault_records(events: Sequence[TraceEvent], end_time: float) -> list[dict[str, object]]:
    """The rows of :func:`faults_frame` as dicts (no pandas), for plots and labels."""
    rows: list[dict[str, object]] = []
    for span in fault_spans(as_index(events).of(EventKind.FAULT_START, EventKind.FAULT_END)):
        params = {k: v for k, v in span.details.items() if k not in ("fault", "kind", "target")}
        # still active when the run ended: it lasts to the end
        end = max(end_time, span.start) if math.isinf(span.end) else span.end
        rows.append(
            {
                "fault": span.fault,
                "node": span.node,
                "kind": span.kind,
                "start": span.start,
                "end": end,
                "duration": end - span.start,
                "instant": span.instant,
                "label": _fault_label(span.kind, params),
                "params": params,
            }
        )
    return rows


def _fault_label(kind: str, params: Mapping[str, object]) -> str:
    """The short text of a fault: its kind's :meth:`~leadersim.faults.FaultKind.label`.

    A kind the table does not know (a trace written elsewhere) is labelled by its name.
    """
    row = FAULT_KINDS.get(kind)
    return kind if row is None else row.label(params)


def faults_frame(events: Sequence[TraceEvent], end_time: float | None = None) -> pd.DataFrame:
    """Each fault on each node it hit.

    Columns: ``fault`` (index in the schedule), ``node``, ``kind``, ``start``, ``end``
    (the matching ``fault_end``; the run's end if it never came), ``duration``,
    ``instant`` (a fault without duration: crash, restart, cancel, clock step ...),
    ``label`` (short text for plots) and ``params`` (the fault's own keys).
    """
    import pandas as pd

    index = as_index(events)
    rows = fault_records(index, _end_time(index, end_time))
    return pd.DataFrame(rows, columns=_FAULT_COLUMNS)


# ---------------------------------------------------------------------- storage

_STORAGE_COLUMNS = [
    "node",
    "op",
    "sent_at",
    "arrived_at",
    "replied_at",
    "done_at",
    "outcome",
    "seen",
    "latency_s",
    "answered",
    "ambiguous",
    "leader_id",
    "version",
]


def storage_ops_frame(events: Sequence[TraceEvent]) -> pd.DataFrame:
    """Each storage operation, as the server and the client each saw it.

    Columns: ``node``, ``op`` (``get``, ``update``, ``txn``), ``sent_at``, ``arrived_at``
    (at the server; NaN if the request was lost), ``replied_at`` (the reply reached the
    client's side; NaN if it was lost), ``done_at`` (the trace instant: when the server
    side was done), ``outcome`` (true, at the server: ok, conflict, error, dropped),
    ``seen`` (at the client: ok, conflict, error; ``timeout``: the reply came after the
    client had given up; ``no_reply``: request or reply lost), ``latency_s``
    (``replied_at - sent_at``), ``answered`` (the client got the reply while waiting),
    ``ambiguous`` (a write that took effect while its client saw a failure or nothing),
    ``leader_id`` and ``version`` (of a committed update).

    Real runs do not instrument their storage: the frame is then empty.
    """
    import pandas as pd

    ops = as_index(events).of(EventKind.STORAGE_OP)
    op, outcome, seen, sent_at, arrived_at, replied_at, leader_id, version = _detail_columns(
        [e.details for e in ops],
        ("op", "outcome", "seen", "sent_at", "arrived_at", "replied_at", "leader_id", "version"),
    )
    sent = _floats(sent_at)
    replied = _floats(replied_at)
    frame = pd.DataFrame(
        {
            "node": [e.node for e in ops],
            "op": op,
            "sent_at": sent,
            "arrived_at": _floats(arrived_at),
            "replied_at": replied,
            "done_at": true_times(ops),
            "outcome": outcome,
            "seen": seen,
            "latency_s": replied - sent,
        },
        columns=_STORAGE_COLUMNS[:9],
    )
    frame["answered"] = frame["seen"].isin(_ANSWERED)
    frame["ambiguous"] = (
        (frame["op"] != "get") & (frame["outcome"] == "ok") & (frame["seen"] != "ok")
    )
    frame["leader_id"] = leader_id
    frame["version"] = version
    return frame


_ANSWERED = ("ok", "conflict", "error")


def committed_leader_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    ops: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Who the stored record named leader, as spans: ``start, end, duration, leader_id``.

    From the commits of successful ``update`` storage operations (at their arrival at the
    server). Nodes whose storage operations are not traced (real runs, or real runs where
    only some nodes' storage is wrapped) count through their ``renew_ok`` events, which
    carry the record the node had just written: their instants are the client's, a reply
    latency after the commit. ``leader_id`` is ``""`` while the slot is empty; spans with
    the same leader are merged. ``ops`` may pass the :func:`storage_ops_frame` computed
    already.
    """
    import numpy as np
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    traced_nodes = {e.node for e in index.of(EventKind.STORAGE_OP)}
    if ops is not None:
        commits = ops[(ops["op"] == "update") & (ops["outcome"] == "ok")]
        arrived = commits["arrived_at"].to_numpy(dtype=float)
        done = commits["done_at"].to_numpy(dtype=float)
        leader_ids: list[object] = commits["leader_id"].tolist()
    else:
        raw = index.of(EventKind.STORAGE_OP)
        details = [e.details for e in raw]
        op, outcome = _detail_columns(details, ("op", "outcome"))
        chosen = [
            i
            for i, (name, result) in enumerate(zip(op, outcome, strict=True))
            if name == "update" and result == "ok"
        ]
        arrived_at, leader_ids = _detail_columns(
            [details[i] for i in chosen], ("arrived_at", "leader_id")
        )
        arrived = _floats(arrived_at)
        done = true_times([raw[i] for i in chosen])
    at = np.where(np.isnan(arrived), done, arrived) if len(arrived) else np.array([], float)
    leaders = np.array([str(v or "") for v in leader_ids], dtype=object)
    # Nodes whose storage is not traced are known by the records they wrote.
    renewals = [e for e in index.of(EventKind.RENEW_OK) if e.node not in traced_nodes]
    if renewals:
        at = np.concatenate([at, true_times(renewals)])
        written = [str(e.details.get("leader_id") or "") for e in renewals]
        leaders = np.concatenate([leaders, np.array(written, dtype=object)])
    columns = ["start", "end", "duration", "leader_id"]
    if not len(at):
        return pd.DataFrame([], columns=columns)
    order = np.argsort(at, kind="stable")
    at, leaders = at[order], leaders[order]
    change = np.ones(len(at), dtype=bool)
    change[1:] = leaders[1:] != leaders[:-1]
    starts = at[change]
    ends = np.append(starts[1:], max(end, float(at[-1])))
    return pd.DataFrame(
        {"start": starts, "end": ends, "duration": ends - starts, "leader_id": leaders[change]},
        columns=columns,
    )


# ---------------------------------------------------------------------- leadership


def intervals_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
    belief: Sequence[Interval] | None = None,
) -> pd.DataFrame:
    """Acting and belief intervals.

    Columns: ``node``, ``kind`` (``acting``: callback running; ``belief``:
    ``is_leader()`` true), ``start``, ``end``, ``duration``, ``end_reason``,
    ``incarnation``. ``acting``/``belief`` may pass intervals computed already.
    """
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    acting = acting_intervals(index.core, end) if acting is None else acting
    belief = belief_intervals(index.core, end) if belief is None else belief
    rows = [
        (i.node, kind, i.start, i.end, i.duration, i.end_reason, i.incarnation)
        for kind, items in (("acting", acting), ("belief", belief))
        for i in items
    ]
    columns = ["node", "kind", "start", "end", "duration", "end_reason", "incarnation"]
    return pd.DataFrame(rows, columns=columns)


def windows_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
    belief: Sequence[Interval] | None = None,
) -> pd.DataFrame:
    """Split-brain windows: two or more nodes acting (or believing) at once.

    Columns: ``kind`` (``acting`` or ``belief``), ``start``, ``end``, ``duration``,
    ``nodes`` (comma-separated), ``n_nodes``, ``faults`` (``kind@node`` of the faults
    active during the window, comma-separated).
    """
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    acting = acting_intervals(index.core, end) if acting is None else acting
    belief = belief_intervals(index.core, end) if belief is None else belief
    faults = index.of(EventKind.FAULT_START, EventKind.FAULT_END)
    rows = []
    for kind, intervals in (("acting", acting), ("belief", belief)):
        for w in overlap_windows(intervals, faults):
            rows.append(
                (
                    kind,
                    w.start,
                    w.end,
                    w.duration,
                    ",".join(w.nodes),
                    len(w.nodes),
                    ",".join(w.faults),
                )
            )
    columns = ["kind", "start", "end", "duration", "nodes", "n_nodes", "faults"]
    return pd.DataFrame(rows, columns=columns)


def gaps_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
) -> pd.DataFrame:
    """Spans with no node acting, from the first callback start to the end of the run.

    Columns: ``start``, ``end``, ``duration``, ``before`` (the node whose term ended at
    ``start``), ``after`` (the node whose term began at ``end``; ``None`` if the run ended
    first), ``faults`` (active during the gap, ``kind@node``, comma-separated).
    """
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    acting = acting_intervals(index.core, end) if acting is None else acting
    spans = fault_spans(index.of(EventKind.FAULT_START, EventKind.FAULT_END))
    ends = {i.end: i.node for i in sorted(acting, key=lambda i: i.end)}
    starts: dict[float, str] = {}
    for interval in sorted(acting, key=lambda i: i.start, reverse=True):
        starts[interval.start] = interval.node
    rows = [
        (
            start,
            stop,
            stop - start,
            ends.get(start),
            starts.get(stop),
            ",".join(faults_during(spans, start, stop)),
        )
        for start, stop in no_leader_gaps(acting, end)
    ]
    return pd.DataFrame(rows, columns=["start", "end", "duration", "before", "after", "faults"])


def terms_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
) -> pd.DataFrame:
    """Callback terms in start order; every term after the first is a flap.

    A flap is a failover if ``leader_changed``, else a re-election (the same node again).

    Columns: ``term`` (0-based), ``node``, ``start``, ``end``, ``duration``,
    ``end_reason``, ``previous`` (node of the term before), ``gap_s`` (``start`` minus the
    previous term's end; negative: they overlapped), ``leader_changed`` (another node
    than the previous term's), ``flap`` (not the first term).
    """
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    acting = acting_intervals(index.core, end) if acting is None else acting
    terms = sorted(acting, key=lambda i: i.start)
    rows = []
    previous: Interval | None = None
    for number, term in enumerate(terms):
        rows.append(
            (
                number,
                term.node,
                term.start,
                term.end,
                term.duration,
                term.end_reason,
                None if previous is None else previous.node,
                math.nan if previous is None else term.start - previous.end,
                previous is not None and previous.node != term.node,
                number > 0,
            )
        )
        previous = term
    columns = [
        "term",
        "node",
        "start",
        "end",
        "duration",
        "end_reason",
        "previous",
        "gap_s",
        "leader_changed",
        "flap",
    ]
    return pd.DataFrame(rows, columns=columns)


def failovers_frame(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
) -> pd.DataFrame:
    """Each change of acting leader, with what caused it and how long it took.

    A table of :func:`~leadersim.analysis.intervals.leader_changes` (the rule is there, and
    the verdict's failovers are the same changes): the cause is the latest fault on the
    old leader (not a member's start or restart) that started during its term (or within
    one lease before it ended) and no later than its end; failing that, the old leader's
    last successful renewal. ``failover_s`` is from the cause to the new start (NaN when
    neither exists: such changes are not counted as failovers in the summary).

    Columns: ``old``, ``new``, ``old_start``, ``old_end``, ``new_start``, ``gap_s``
    (``new_start - old_end``; negative: overlap), ``cause`` (the fault kind, or
    ``renewal``), ``cause_at``, ``failover_s``.
    """
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    acting = acting_intervals(index.core, end) if acting is None else acting
    causes = [*index.of(EventKind.RENEW_OK), *index.of(EventKind.FAULT_START)]
    rows = [
        (
            change.old.node,
            change.new.node,
            change.old.start,
            change.old.end,
            change.new.start,
            change.new.start - change.old.end,
            change.cause,
            math.nan if change.cause_at is None else change.cause_at,
            math.nan if change.failover_s is None else change.failover_s,
        )
        for change in leader_changes(causes, acting)
    ]
    columns = [
        "old",
        "new",
        "old_start",
        "old_end",
        "new_start",
        "gap_s",
        "cause",
        "cause_at",
        "failover_s",
    ]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------- writes


def writes_frame(events: Sequence[TraceEvent]) -> pd.DataFrame:
    """Leader-guarded writes to the protected resource, classified.

    Columns: ``at`` (arrival at the resource), ``node`` (the writer), ``seq``,
    ``sent_at``, ``accepted``, ``stale`` (the record did not name the writer leader at
    arrival), ``fencing``, ``leader_id`` (whom the record named), ``class``: ``ok``
    (accepted from the named leader), ``fenced`` (stale and rejected), ``harmful``
    (stale and accepted: a deposed leader's write took effect) or ``rejected`` (refused
    though not stale; the simulator's resource never does that).
    """
    import numpy as np
    import pandas as pd

    writes = as_index(events).of(EventKind.GUARDED_WRITE)
    seq, accepted_in, stale_in, fencing, leader_id, sent_at = _detail_columns(
        [e.details for e in writes], ("seq", "accepted", "stale", "fencing", "leader_id", "sent_at")
    )
    accepted = np.array([bool(v) for v in accepted_in], dtype=bool)
    stale = np.array([bool(v) for v in stale_in], dtype=bool)
    klass = np.where(
        stale,
        np.where(accepted, "harmful", "fenced"),
        np.where(accepted, "ok", "rejected"),
    )
    return pd.DataFrame(
        {
            "at": true_times(writes),
            "node": [e.node for e in writes],
            "seq": seq,
            "sent_at": _floats(sent_at),
            "accepted": accepted,
            "stale": stale,
            "fencing": np.array([bool(v) for v in fencing], dtype=bool),
            "leader_id": leader_id,
            "class": klass.astype(object),
        }
    )


# ---------------------------------------------------------------------- clocks


def clocks_frame(events: Sequence[TraceEvent], *, every_s: float = 1.0) -> pd.DataFrame:
    """Each node's clock against true time, sampled from its own events.

    At most one sample per node and ``every_s`` seconds of true time: the first of the
    node's events in each slot (storage operations and guarded writes left out; their
    readings are the same clock, stamped by the environment).

    Columns: ``node``, ``true_time``, ``local_time``, ``offset_s`` (``local_time -
    true_time``: arbitrary per node, since monotonic clocks have arbitrary origins),
    ``offset_change_s`` (the offset minus the node's first one: what drift accumulated;
    to the nanosecond), ``drift_ppm`` (rate error since the previous sample, parts per
    million, to 0.001 ppm; positive: the clock runs fast; NaN at a node's first sample).

    Wall-clock steps do not show here (traces hold monotonic readings); they are faults
    (``clock_step``) in :func:`faults_frame`.
    """
    import numpy as np
    import pandas as pd

    if every_s <= 0:
        raise ValueError(f"every_s must be positive, got {every_s!r}")
    columns = ["node", "true_time", "local_time", "offset_s", "offset_change_s", "drift_ppm"]
    index = as_index(events)
    # the node's own events (not storage ops or guarded writes: the environment stamps
    # those, on the same clocks, and they are many), put back in true-time order below
    samples = list(
        itertools.chain.from_iterable(
            index.of(kind)
            for kind in index.kinds()
            if kind not in (EventKind.STORAGE_OP, EventKind.GUARDED_WRITE)
        )
    )
    frame = pd.DataFrame(
        {
            "node": [e.node for e in samples],
            "true_time": true_times(samples),
            "local_time": _local_times(samples),
        }
    )
    frame = frame[(frame["node"] != "") & frame["local_time"].notna()]
    if frame.empty:
        return pd.DataFrame([], columns=columns)
    frame = frame.sort_values("true_time", kind="stable")
    frame["slot"] = np.floor(frame["true_time"].to_numpy() / every_s)
    frame = frame.drop_duplicates(["node", "slot"], keep="first").drop(columns="slot")
    frame["offset_s"] = frame["local_time"] - frame["true_time"]
    by_node = frame.groupby("node", sort=False)
    frame["offset_change_s"] = (frame["offset_s"] - by_node["offset_s"].transform("first")).round(9)
    elapsed = by_node["true_time"].diff()
    drift = by_node["offset_s"].diff() / elapsed.where(elapsed > 0) * 1e6
    # rounded: below a nanosecond / a thousandth of a ppm is float noise
    frame["drift_ppm"] = drift.round(3)
    return frame.reset_index(drop=True)[columns]


# ---------------------------------------------------------------------- lease marks


def lease_expiries(
    events: Sequence[TraceEvent], end_time: float | None = None
) -> list[tuple[str, float]]:
    """Where a leader's own lease ran out before it renewed it again: ``(node, true_time)``.

    Each successful renewal *as leader* carries the instant (on the node's clock) until
    which it counts itself leader; converted to true time at the rate of the clock then.
    A mark is where such a lease was not extended in time (or the last one), within the
    run. This is where ``is_leader()`` turns false unless something came first.
    """
    import numpy as np
    import pandas as pd

    index = as_index(events)
    end = _end_time(index, end_time)
    renewals = index.of(EventKind.RENEW_OK)
    leader_id, lease_until = _detail_columns(
        [e.details for e in renewals], ("leader_id", "lease_until")
    )
    nodes = np.array([e.node for e in renewals], dtype=object)
    mine = np.flatnonzero(nodes == np.array(leader_id, dtype=object))
    if not len(mine):
        return []
    chosen = [renewals[i] for i in mine]
    true = true_times(chosen)
    local = _local_times(chosen)
    leases = pd.DataFrame(
        {
            "node": [e.node for e in chosen],
            "true": true,
            "expires": true + (_floats([lease_until[i] for i in mine]) - local),
        }
    ).dropna(subset=["expires"])
    following = leases.groupby("node", sort=False)["true"].shift(-1)
    ran_out = (following.isna() | (following > leases["expires"])) & (leases["expires"] <= end)
    marks = list(
        zip(
            leases.loc[ran_out, "node"].tolist(),
            leases.loc[ran_out, "expires"].tolist(),
            strict=True,
        )
    )
    marks.sort(key=lambda m: (m[1], m[0]))
    return marks
