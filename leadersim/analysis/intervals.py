"""From a trace to leadership intervals, split-brain windows and a verdict.

Pure Python over :class:`~leadersim.trace.TraceEvent` lists (fast enough for sweeps); the
DataFrame views are built on top. Works the same for simulated and real traces: only
``true_time`` is compared across nodes, never ``local_time`` (except to turn a node's own
lease deadline into true time, which assumes its clock runs at true rate).

Definitions (the verdict's terms are in :data:`GLOSSARY`, shown with every verdict):

- **acting**: a node's leader callback runs, from ``callback_started`` until it has
  actually stopped (``callback_stopped``, or the end of the run). A frozen (paused)
  callback counts as running. A crash ends acting through the trace itself: the world
  that crashed the node (simulator or lab) knows the instant its process was gone and
  writes a ``callback_stopped`` with reason ``crashed`` then, so this module reads no
  crash rule of its own for acting.
- **belief**: ``is_leader()`` would answer true: from a successful renewal as leader until
  the lease it measured runs out, or a ``lost_leader``, stop or crash comes first (a
  process that is gone answers nothing; unlike acting, no event but the crash fault
  says so, hence the one crash check of this module).
- **split brain** (acting overlap) / **belief overlap**: true-time spans where two or
  more nodes act / believe at once.
- **no leader**: spans with no node acting, counted from the first callback start.
- **term**: one acting interval. **failover**: a term that starts on another node than
  the term before it; **re-election**: one that starts on the same node. Every term after
  the first is one or the other; together they are the catalogue's ``flaps``.
- **stale writes**: guarded writes from a node the record did not name leader when the
  write arrived, accepted (harm) or rejected by fencing.
- **level**: ``SAFE``, ``OVERLAP-FENCED`` (split brain that fencing made harmless) or
  ``UNSAFE`` (:class:`VerdictLevel`).
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import itertools
import math
import statistics
import typing
from collections.abc import Iterable, Mapping, Sequence

from leadersim.faults import FAULT_KINDS
from leadersim.trace import EventKind, TraceEvent

__all__ = [
    "GLOSSARY",
    "FaultSpan",
    "Interval",
    "LeaderChange",
    "Summary",
    "VerdictLevel",
    "Window",
    "acting_intervals",
    "belief_intervals",
    "compose_summary",
    "failovers",
    "fault_spans",
    "faults_during",
    "leader_changes",
    "no_leader_gaps",
    "overlap_windows",
    "summarize",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """A span of true time during which ``node`` acted or believed it led.

    Attributes:
        node: The node.
        start: True-time start (s).
        end: True-time end (s).
        end_reason: What ended it (``cancelled``, ``returned``, ``raised``, ``crashed``,
            ``lease_expired``, ``lost_leader``, ``run_end`` ...).
        incarnation: Which incarnation of the node (restarts count up), if known.
    """

    node: str
    start: float
    end: float
    end_reason: str = ""
    incarnation: int = 0

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """A span of true time during which two or more nodes act (or believe) at once."""

    start: float
    end: float
    nodes: tuple[str, ...]
    faults: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


def _end_time(events: Sequence[TraceEvent], end_time: float | None) -> float:
    if end_time is not None:
        return end_time
    return max((e.true_time for e in events), default=0.0)


def acting_intervals(events: Sequence[TraceEvent], end_time: float | None = None) -> list[Interval]:
    """Per-node spans from ``callback_started`` to the callback having stopped."""
    end = _end_time(events, end_time)
    open_at: dict[str, tuple[float, int]] = {}
    intervals: list[Interval] = []
    for event in events:
        if event.kind is EventKind.CALLBACK_STARTED:
            if event.node not in open_at:
                incarnation = int(event.details.get("incarnation") or 0)
                open_at[event.node] = (event.true_time, incarnation)
        elif event.kind is EventKind.CALLBACK_STOPPED:
            started = open_at.pop(event.node, None)
            if started is not None:
                reason = str(event.details.get("reason") or "")
                intervals.append(
                    Interval(event.node, started[0], event.true_time, reason, started[1])
                )
    for node, (start, incarnation) in open_at.items():
        intervals.append(Interval(node, start, max(start, end), "run_end", incarnation))
    intervals.sort(key=lambda i: (i.start, i.node))
    return intervals


def belief_intervals(events: Sequence[TraceEvent], end_time: float | None = None) -> list[Interval]:
    """Per-node spans during which ``is_leader()`` would have answered true."""
    end = _end_time(events, end_time)
    state: dict[str, list[float]] = {}  # node -> [start, lease end]
    intervals: list[Interval] = []

    def close(node: str, at: float, reason: str) -> None:
        start, lease_end = state.pop(node)
        if lease_end < at:
            at, reason = lease_end, "lease_expired"
        if at >= start:
            intervals.append(Interval(node, start, at, reason))

    for event in events:
        node = event.node
        kind = event.kind
        if kind is EventKind.RENEW_OK:
            if event.details.get("leader_id") != node:
                continue
            lease_until = event.details.get("lease_until")
            if not isinstance(lease_until, int | float):
                continue
            lease_end = event.true_time + (float(lease_until) - event.local_time)
            current = state.get(node)
            if current is not None and event.true_time > current[1]:
                close(node, event.true_time, "lease_expired")
                current = None
            if current is None:
                state[node] = [event.true_time, lease_end]
            else:
                current[1] = max(current[1], lease_end)
        elif node in state and (
            kind is EventKind.LOST_LEADER
            or kind is EventKind.ELECTION_STOPPED
            or (kind is EventKind.FAULT_START and event.details.get("kind") == "crash")
        ):
            reason = "crashed" if kind is EventKind.FAULT_START else kind.value
            close(node, event.true_time, reason)
    for node in list(state):
        close(node, end, "run_end")
    intervals.sort(key=lambda i: (i.start, i.node))
    return intervals


def overlap_windows(
    intervals: Iterable[Interval],
    faults: Sequence[TraceEvent] = (),
    *,
    min_nodes: int = 2,
) -> list[Window]:
    """Spans where at least ``min_nodes`` intervals overlap, with the faults active then.

    Intervals that only touch (one ends where the next starts) do not overlap.
    """
    spans = fault_spans(faults)
    points: list[tuple[float, int, str]] = []
    for interval in intervals:
        if interval.end > interval.start:
            points.append((interval.start, 1, interval.node))
            points.append((interval.end, -1, interval.node))
    points.sort(key=lambda p: (p[0], p[1]))  # ends before starts at the same instant
    active: dict[str, int] = {}
    windows: list[Window] = []
    window_start: float | None = None
    window_nodes: set[str] = set()
    for time, delta, node in points:
        active[node] = active.get(node, 0) + delta
        if active[node] == 0:
            del active[node]
        if len(active) >= min_nodes:
            if window_start is None:
                window_start = time
                window_nodes = set()
            window_nodes.update(active)
        elif window_start is not None:
            if time > window_start:
                windows.append(
                    Window(
                        window_start,
                        time,
                        tuple(sorted(window_nodes)),
                        faults_during(spans, window_start, time),
                    )
                )
            window_start = None
    return windows


@dataclasses.dataclass(frozen=True, slots=True)
class FaultSpan:
    """One fault on one node, from its ``fault_start`` to its ``fault_end`` (true time, s).

    Attributes:
        fault: The fault's index in the schedule (its ``fault`` detail).
        node: The node it hit.
        kind: The fault kind (``crash``, ``pause``, ``partition`` ...).
        start: When it started.
        end: When it ended: ``start`` for an instantaneous fault (one without a
            ``duration``: crash, restart, clock step ...), ``math.inf`` for one that had
            not ended when the trace did.
        instant: The fault has no duration.
        details: The ``fault_start`` event's details (its parameters).
    """

    fault: object
    node: str
    kind: str
    start: float
    end: float
    instant: bool
    details: Mapping[str, object]

    @property
    def label(self) -> str:
        """``kind@node``, as windows and gaps list the faults active then."""
        return f"{self.kind}@{self.node}"


def fault_spans(faults: Iterable[TraceEvent]) -> list[FaultSpan]:
    """Pair each ``fault_start`` with its ``fault_end`` (same node and fault), in start order.

    A fault is instantaneous when its start has no ``duration`` detail; an open-ended one
    (``duration`` None) lasts until its ``fault_end``, else to the end of the trace.
    Events of other kinds are ignored.
    """
    starts: list[TraceEvent] = []
    ends: list[float] = []
    open_at: dict[tuple[str, object], int] = {}  # (node, fault) -> index in starts
    for event in faults:
        if event.kind is EventKind.FAULT_START:
            instant = "duration" not in event.details
            if not instant:
                open_at[(event.node, event.details.get("fault"))] = len(starts)
            starts.append(event)
            ends.append(event.true_time if instant else math.inf)
        elif event.kind is EventKind.FAULT_END:
            at = open_at.pop((event.node, event.details.get("fault")), None)
            if at is not None:
                ends[at] = event.true_time
    spans: list[FaultSpan] = []
    for start_event, end in zip(starts, ends, strict=True):
        details = start_event.details
        spans.append(
            FaultSpan(
                fault=details.get("fault"),
                node=start_event.node,
                kind=str(details.get("kind") or ""),
                start=start_event.true_time,
                end=end,
                instant="duration" not in details,
                details=details,
            )
        )
    return spans


def faults_during(spans: Iterable[FaultSpan], start: float, end: float) -> tuple[str, ...]:
    """Labels (``kind@node``) of the faults active at some instant of [start, end].

    Instantaneous faults count at their instant; each label once, in start order.
    """
    labels = [span.label for span in spans if span.start <= end and span.end >= start]
    return tuple(dict.fromkeys(labels))


def no_leader_gaps(acting: Sequence[Interval], end_time: float) -> list[tuple[float, float]]:
    """Spans with no node acting, from the first callback start to ``end_time``."""
    if not acting:
        return []
    gaps: list[tuple[float, float]] = []
    covered_until = min(i.start for i in acting)
    for interval in sorted(acting, key=lambda i: i.start):
        if interval.start > covered_until:
            gaps.append((covered_until, interval.start))
        covered_until = max(covered_until, interval.end)
    if end_time > covered_until:
        gaps.append((covered_until, end_time))
    return gaps


@dataclasses.dataclass(frozen=True, slots=True)
class LeaderChange:
    """A term that started on another node than the term before it, and its cause.

    Attributes:
        old: The term before (the leader that went down).
        new: The term that followed, on another node.
        cause: What took the old leader down: a fault kind (``crash``, ``pause`` ...),
            ``renewal`` (its last successful renewal), or ``None`` when neither is known.
        cause_at: When the cause happened (true time, s), or ``None``.
    """

    old: Interval
    new: Interval
    cause: str | None
    cause_at: float | None

    @property
    def failover_s(self) -> float | None:
        """Seconds from the cause to the new term's start, or ``None`` without a cause."""
        return None if self.cause_at is None else self.new.start - self.cause_at


def leader_changes(events: Sequence[TraceEvent], acting: Sequence[Interval]) -> list[LeaderChange]:
    """Each change of acting leader to another node, with what caused it (the one rule).

    The cause is the latest fault on the old leader that started during its term (or
    within one lease before its term ended) and no later than its end; failing that, its
    last successful renewal. A member's (re)start is never a cause: it does not take a
    leader down, and a restart of the killed leader must not shorten the failover it is in.

    Args:
        events: At least the ``renew_ok`` and ``fault_start`` events, each kind in
            true-time order (other kinds are ignored).
        acting: The acting intervals (:func:`acting_intervals`).
    """
    faults: dict[str, tuple[list[float], list[str]]] = {}
    renewals: dict[str, list[float]] = {}
    leases: dict[str, float] = {}
    for event in events:
        kind = event.kind
        if kind is EventKind.RENEW_OK:
            renewals.setdefault(event.node, []).append(event.true_time)
            lease_until = event.details.get("lease_until")
            if isinstance(lease_until, int | float):
                leases[event.node] = float(lease_until) - event.local_time
        elif kind is EventKind.FAULT_START:
            fault_kind = event.details.get("kind")
            if not _is_membership(fault_kind):
                times, kinds = faults.setdefault(event.node, ([], []))
                times.append(event.true_time)
                kinds.append(str(fault_kind or "fault"))
    changes: list[LeaderChange] = []
    terms = sorted(acting, key=lambda i: i.start)
    for previous, current in itertools.pairwise(terms):
        if current.node == previous.node:
            continue
        window = leases.get(previous.node, 0.0)
        since = min(previous.start, previous.end - window)
        # Times are in trace order, so the latest cause is found by bisection.
        node_faults, fault_kinds = faults.get(previous.node, ([], []))
        last = bisect.bisect_right(node_faults, min(previous.end, current.start)) - 1
        if last >= 0 and node_faults[last] >= since:
            changes.append(LeaderChange(previous, current, fault_kinds[last], node_faults[last]))
            continue
        node_renewals = renewals.get(previous.node, [])
        last = bisect.bisect_right(node_renewals, previous.end) - 1
        if last >= 0:
            changes.append(LeaderChange(previous, current, "renewal", node_renewals[last]))
        else:
            changes.append(LeaderChange(previous, current, None, None))
    return changes


def failovers(events: Sequence[TraceEvent], acting: Sequence[Interval]) -> list[float]:
    """Seconds from what took the acting leader down to the next start on another node.

    The :attr:`LeaderChange.failover_s` of each :func:`leader_changes` whose cause was
    found (the rule is there).
    """
    return [
        change.new.start - change.cause_at
        for change in leader_changes(events, acting)
        if change.cause_at is not None
    ]


def _is_membership(kind: object) -> bool:
    """Whether a fault kind only (re)starts members (``start``, ``restart``)."""
    row = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    return row is not None and row.scope == "membership"


class VerdictLevel(enum.StrEnum):
    """How bad a run was, from best to worst (the string is what the verdict line shows).

    - ``SAFE``: no split brain (no two leader callbacks ran at once) and no stale write
      accepted.
    - ``OVERLAP-FENCED``: split brain, but harmless: every guarded write of the run went
      through fencing, and no stale write was accepted.
    - ``UNSAFE``: harmful: a stale write was accepted, or callbacks ran at once with no
      fencing seen (no guarded write at all, or some unfenced), so nothing stopped the old
      leader's writes.
    """

    SAFE = "SAFE"
    OVERLAP_FENCED = "OVERLAP-FENCED"
    UNSAFE = "UNSAFE"


#: Every term the verdict shows (its line, the HTML card), defined in one place.
GLOSSARY: dict[str, str] = {
    "SAFE": "no two leader callbacks ran at once, and no stale write was accepted",
    "OVERLAP-FENCED": (
        "split brain, but harmless: every guarded write went through fencing and no stale "
        "write was accepted"
    ),
    "UNSAFE": (
        "a stale write was accepted, or callbacks ran at once with no fencing to stop the "
        "old leader's writes"
    ),
    "split brain": (
        "seconds during which two or more nodes acted as leader at once: their leader "
        "callbacks ran, each from its start until it had actually stopped"
    ),
    "belief overlap": (
        "seconds during which two or more nodes' is_leader() was true at once (a renewal "
        "as leader, until the lease it measured ran out); for information, not judged"
    ),
    "no leader": "seconds with no leader callback running, from the first callback start",
    "failovers": (
        "times leadership moved to another node; the median runs from what took the old "
        "leader down (a fault on it, else its last renewal) to the new callback's start"
    ),
    "re-elections": (
        "times the node that led won leadership again after its callback had stopped "
        "(with failovers: every term after the first, the catalogue's 'flaps')"
    ),
    "stale writes": (
        "guarded writes that arrived while the stored record named another leader: "
        "accepted (harm) or rejected by fencing"
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """The one-screen verdict of a run (all durations in seconds of true time).

    Attributes:
        level: The verdict: ``SAFE``, ``OVERLAP-FENCED`` or ``UNSAFE`` (see
            :class:`VerdictLevel`); what a script should test (or :attr:`safe`).
        overlap_s: Split brain: seconds during which two or more nodes acted at once.
        belief_overlap_s: Seconds during which two or more nodes believed they led.
        no_leader_s: Seconds with no node acting, from the first callback start.
        failovers: Changes of acting leader to another node whose cause was found.
        failover_s: Each failover's time, from its cause to the new callback's start.
        flaps: Callback terms after the first (``leader_changes + reelections``); the
            catalogue judges it; the line shows its two parts instead.
        leader_changes: Consecutive terms on different nodes.
        reelections: Consecutive terms on the same node.
        stale_accepted: Stale guarded writes that were accepted (the harm), by the end.
        stale_rejected: Stale guarded writes that fencing rejected, by the end.
        fenced: The run had guarded writes, and every one went through fencing.
        first_leader_at: When the first callback started (true time), if one did.
    """

    level: VerdictLevel
    overlap_s: float
    belief_overlap_s: float
    no_leader_s: float
    failovers: int
    failover_s: tuple[float, ...]
    flaps: int
    leader_changes: int
    reelections: int
    stale_accepted: int
    stale_rejected: int
    fenced: bool
    first_leader_at: float | None

    @property
    def safe(self) -> bool:
        """No harm done: the level is ``SAFE`` or ``OVERLAP-FENCED`` (not ``UNSAFE``)."""
        return self.level is not VerdictLevel.UNSAFE

    @property
    def failover_median_s(self) -> float | None:
        """Median failover time, or ``None`` without failovers."""
        return statistics.median(self.failover_s) if self.failover_s else None

    def as_dict(self) -> dict[str, object]:
        """A flat dict (``failover_s`` as the median; ``failover_all_s`` the list).

        ``level`` is the level's string, ``safe`` the bool of :attr:`safe`.
        """
        return {
            "level": self.level.value,
            "safe": self.safe,
            "overlap_s": self.overlap_s,
            "belief_overlap_s": self.belief_overlap_s,
            "no_leader_s": self.no_leader_s,
            "failovers": self.failovers,
            "failover_s": self.failover_median_s,
            "failover_all_s": list(self.failover_s),
            "flaps": self.flaps,
            "leader_changes": self.leader_changes,
            "reelections": self.reelections,
            "stale_accepted": self.stale_accepted,
            "stale_rejected": self.stale_rejected,
            "fenced": self.fenced,
            "first_leader_at": self.first_leader_at,
        }

    def line(self) -> str:
        """One line: the level, then the numbers (terms: :data:`GLOSSARY`).

        ``LEVEL: split brain 0.000s, belief overlap 0.000s, no leader 0.00s, failovers N
        (median 0.00s), re-elections N, stale writes accepted N / rejected N``, with ``-``
        for the median of no failover.
        """
        median = self.failover_median_s
        failover = "-" if median is None else f"{median:.2f}s"
        return (
            f"{self.level.value}: split brain {self.overlap_s:.3f}s, belief overlap "
            f"{self.belief_overlap_s:.3f}s, no leader {self.no_leader_s:.2f}s, failovers "
            f"{self.failovers} (median {failover}), re-elections {self.reelections}, "
            f"stale writes accepted {self.stale_accepted} / rejected {self.stale_rejected}"
        )


def compose_summary(
    acting: Sequence[Interval],
    belief: Sequence[Interval],
    *,
    faults: Sequence[TraceEvent],
    causes: Sequence[TraceEvent],
    writes: Sequence[TraceEvent],
    end_time: float,
) -> Summary:
    """The verdict from a run's intervals and the events it rests on: the one rule.

    :func:`summarize` (which :attr:`~leadersim.analysis.result.Result.verdict` is) calls
    it with the events each argument names, taken from the trace.

    Args:
        acting: The acting intervals (:func:`acting_intervals`).
        belief: The belief intervals (:func:`belief_intervals`).
        faults: The ``fault_start``/``fault_end`` events, in true-time order.
        causes: What :func:`failovers` reads: ``renew_ok`` and ``fault_start`` events,
            each kind in true-time order.
        writes: The ``guarded_write`` events.
        end_time: When the run ended (true time, s).
    """
    overlap = sum(w.duration for w in overlap_windows(acting, faults))
    latencies = failovers(causes, acting)
    terms = sorted(acting, key=lambda i: i.start)
    changes = sum(1 for a, b in itertools.pairwise(terms) if a.node != b.node)
    stale_accepted = stale_rejected = 0
    # A write after the end is not the run's: a lab's saved traces go on through the
    # members' shutdown (a leader that released its slot still writes for its stop latency).
    writes = [w for w in writes if w.true_time <= end_time]
    for write in writes:
        if write.details.get("stale"):
            if write.details.get("accepted"):
                stale_accepted += 1
            else:
                stale_rejected += 1
    fenced = bool(writes) and all(w.details.get("fencing") is True for w in writes)
    if stale_accepted or (overlap > 0 and not fenced):
        level = VerdictLevel.UNSAFE
    elif overlap > 0:
        level = VerdictLevel.OVERLAP_FENCED
    else:
        level = VerdictLevel.SAFE
    flaps = max(0, len(terms) - 1)
    return Summary(
        level=level,
        overlap_s=overlap,
        belief_overlap_s=sum(w.duration for w in overlap_windows(belief, faults)),
        no_leader_s=sum(b - a for a, b in no_leader_gaps(acting, end_time)),
        failovers=len(latencies),
        failover_s=tuple(latencies),
        flaps=flaps,
        leader_changes=changes,
        reelections=flaps - changes,
        stale_accepted=stale_accepted,
        stale_rejected=stale_rejected,
        fenced=fenced,
        first_leader_at=terms[0].start if terms else None,
    )


@typing.runtime_checkable
class KindIndex(typing.Protocol):
    """A trace that hands out its events of given kinds in true-time order.

    :class:`~leadersim.analysis.frames.TraceIndex` is one: :func:`summarize` then reads
    only the kinds it needs instead of the whole trace.
    """

    def of(self, *kinds: EventKind) -> Sequence[TraceEvent]:
        """The events of ``kinds``, in true-time order."""
        ...


def summarize(
    events: Sequence[TraceEvent],
    end_time: float | None = None,
    *,
    acting: Sequence[Interval] | None = None,
    belief: Sequence[Interval] | None = None,
) -> Summary:
    """Compute the verdict of a trace (see :class:`Summary` and :data:`GLOSSARY`).

    Args:
        events: The trace, in true-time order (a :class:`KindIndex` is read by kind).
        end_time: When the run ended (true time, s); defaults to the last event.
        acting: The trace's :func:`acting_intervals`, if computed already.
        belief: The trace's :func:`belief_intervals`, if computed already.
    """
    end = _end_time(events, end_time)
    if isinstance(events, KindIndex):
        of = events.of
    else:

        def of(*kinds: EventKind) -> Sequence[TraceEvent]:
            return [e for e in events if e.kind in kinds]

    return compose_summary(
        acting_intervals(events, end) if acting is None else acting,
        belief_intervals(events, end) if belief is None else belief,
        faults=of(EventKind.FAULT_START, EventKind.FAULT_END),
        causes=of(EventKind.RENEW_OK, EventKind.FAULT_START),
        writes=of(EventKind.GUARDED_WRITE),
        end_time=end,
    )
