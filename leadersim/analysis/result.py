"""The result of a run — simulated or real — and its views.

A :class:`Result` holds a trace (a list of :class:`~leadersim.trace.TraceEvent`) and the
instant the run ended, in seconds since the run's start: a real trace, stamped on the
host's monotonic clock, is moved so that its ``run_started`` event is at 0 (simulated
traces start at 0 already). Its verdict is :attr:`Result.verdict` (a level, ``SAFE``,
``OVERLAP-FENCED`` or ``UNSAFE``, and the numbers; terms defined in
:data:`~leadersim.analysis.intervals.GLOSSARY`), as a dict :meth:`Result.summary`;
its tidy DataFrames are :attr:`Result.trace`, :meth:`Result.intervals`, :meth:`Result.windows`,
:meth:`Result.gaps`, :meth:`Result.failovers`, :meth:`Result.writes`,
:meth:`Result.storage_ops`, :meth:`Result.clocks` ... (columns: :mod:`.frames`; pandas is
imported only when one is asked for); plots are explicit (:meth:`Result.plot_timeline`);
in Jupyter it shows as an HTML verdict card.
"""

from __future__ import annotations

import html
import json
import operator
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadersim.analysis import frames
from leadersim.analysis.intervals import (
    GLOSSARY,
    Interval,
    Summary,
    VerdictLevel,
    Window,
    acting_intervals,
    belief_intervals,
    overlap_windows,
    summarize,
)
from leadersim.trace import EventKind, Trace, TraceEvent, read_trace_dir, run_start

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Result"]

_node_of = operator.attrgetter("node")

#: The HTML card's colour of each level.
_LEVEL_COLOURS = {
    VerdictLevel.SAFE: "#1a7f37",
    VerdictLevel.OVERLAP_FENCED: "#9a6700",
    VerdictLevel.UNSAFE: "#cf222e",
}


class Result:
    """A run's trace and everything derived from it, in seconds since the run's start.

    Args:
        events: The trace, in true-time order.
        end_time: When the run ended, on the trace's clock (s); defaults to the last event.
        name: What was run (a scenario name, "lab", ...).
        seed: The seed, for simulated runs.
        meta: Anything else worth keeping (config, warnings ...).
        start_time: When the run started, on the trace's clock (s). Defaults to the first
            ``run_started`` event of the trace (a lab writes one), else 0 (simulated
            time starts at 0). If it is not 0, the events are moved by it
            (:meth:`~leadersim.trace.TraceEvent.shifted`) so that every view, the plots
            and the verdict read seconds since the start; :attr:`start_time` keeps it,
            to map a time back: ``t + result.start_time``.
    """

    def __init__(
        self,
        events: Sequence[TraceEvent],
        end_time: float | None = None,
        *,
        name: str = "",
        seed: int | None = None,
        meta: Mapping[str, Any] | None = None,
        start_time: float | None = None,
    ) -> None:
        origin = start_time if start_time is not None else run_start(events)
        #: When the run started on the trace's own clock (0 for simulated runs; host
        #: monotonic seconds for real ones); every time this result shows is relative to it.
        self.start_time: float = float(origin or 0.0)
        if self.start_time:
            events = [e.shifted(self.start_time) for e in events]
        #: The trace (packed: see :class:`~leadersim.trace.Trace`).
        self.events: Trace = Trace.from_events(events)
        self.end_time = (
            end_time - self.start_time
            if end_time is not None
            else max((e.true_time for e in self.events), default=0.0)
        )
        self.name = name
        self.seed = seed
        self.meta: dict[str, Any] = dict(meta or {})

    @classmethod
    def from_trace_dir(cls, directory: str | Path, *, name: str | None = None) -> Result:
        """Read a saved real run (a lab's or ``leadersim demo --trace-dir``'s) back.

        The trace is :func:`~leadersim.trace.read_trace_dir` of ``directory``: the
        members' files and the lab's ``lab.jsonl`` (run start, injected faults), so the
        verdict is the one the live run gave.

        Args:
            directory: The trace directory.
            name: The result's name; defaults to the directory's name.

        Raises:
            ValueError: ``directory`` is not a directory or holds no ``*.jsonl`` file.
        """
        directory = Path(directory)
        events = read_trace_dir(directory)
        started = next((e for e in events if e.kind is EventKind.RUN_STARTED), None)
        meta: dict[str, Any] = {"trace_dir": str(directory)}
        if started is not None:
            meta.update(started.details)
        return cls(events, name=directory.name if name is None else name, meta=meta)

    # ------------------------------------------------------------------ verdict

    @cached_property
    def verdict(self) -> Summary:
        """The :class:`~leadersim.analysis.intervals.Summary` of this run.

        :func:`~leadersim.analysis.intervals.summarize` of the trace, given the intervals
        this result keeps (so they are computed once) and its index by kind. For a
        script: ``verdict.level`` (a :class:`~leadersim.analysis.intervals.VerdictLevel`)
        or ``verdict.safe`` (false only for ``UNSAFE``).
        """
        return summarize(self._index, self.end_time, acting=self._acting, belief=self._belief)

    def summary(self) -> dict[str, object]:
        """The verdict as a flat dict (``level``, ``safe``, ``overlap_s``, ``no_leader_s`` ...)."""
        return self.verdict.as_dict()

    @property
    def nodes(self) -> list[str]:
        """Node ids in order of first appearance in the trace."""
        return list(self._nodes)

    @cached_property
    def _nodes(self) -> tuple[str, ...]:
        return tuple(node for node in dict.fromkeys(map(_node_of, self.events)) if node)

    # ------------------------------------------------------------------ pure views

    @property
    def index(self) -> frames.TraceIndex:
        """The trace grouped by event kind (built once; what the views read)."""
        return self._index

    @cached_property
    def _index(self) -> frames.TraceIndex:
        return frames.TraceIndex(self.events)

    @cached_property
    def _acting(self) -> tuple[Interval, ...]:
        return tuple(acting_intervals(self._index.core, self.end_time))

    @cached_property
    def _belief(self) -> tuple[Interval, ...]:
        return tuple(belief_intervals(self._index.core, self.end_time))

    def acting(self) -> list[Interval]:
        """Acting intervals (callback running), as records."""
        return list(self._acting)

    def belief(self) -> list[Interval]:
        """Belief intervals (``is_leader()`` true), as records."""
        return list(self._belief)

    def split_brain(self, *, belief: bool = False) -> list[Window]:
        """Split-brain windows (acting, or belief with ``belief=True``), as records."""
        faults = self._index.of(EventKind.FAULT_START, EventKind.FAULT_END)
        return overlap_windows(self._belief if belief else self._acting, faults)

    # ------------------------------------------------------------------ DataFrames
    # Column meanings: leadersim.analysis.frames (one function per view).

    @property
    def trace(self) -> pd.DataFrame:
        """The events: true_time, node, local_time, kind, common details, details."""
        return frames.events_frame(self._index)

    def faults(self) -> pd.DataFrame:
        """Each fault on each node: fault, node, kind, start, end, duration, label ..."""
        return frames.faults_frame(self._index, self.end_time)

    def storage_ops(self) -> pd.DataFrame:
        """Storage operations: true outcome vs client-seen, latency, ambiguous flag."""
        return self._storage_ops.copy()

    @cached_property
    def _storage_ops(self) -> pd.DataFrame:
        return frames.storage_ops_frame(self._index)

    def committed_leader(self) -> pd.DataFrame:
        """Who the stored record named leader, span by span."""
        return self._committed_leader.copy()

    @cached_property
    def _committed_leader(self) -> pd.DataFrame:
        ops = self.__dict__.get("_storage_ops")  # reuse it if it was built already
        return frames.committed_leader_frame(self._index, self.end_time, ops=ops)

    def intervals(self) -> pd.DataFrame:
        """Acting and belief intervals: node, kind, start, end, duration, end_reason ..."""
        return frames.intervals_frame(
            self._index, self.end_time, acting=self._acting, belief=self._belief
        )

    def windows(self) -> pd.DataFrame:
        """Split-brain windows: kind (acting/belief), start, end, duration, nodes, faults."""
        return frames.windows_frame(
            self._index, self.end_time, acting=self._acting, belief=self._belief
        )

    def gaps(self) -> pd.DataFrame:
        """No-leader gaps: start, end, duration, before, after, faults."""
        return frames.gaps_frame(self._index, self.end_time, acting=self._acting)

    def terms(self) -> pd.DataFrame:
        """Callback terms in start order (``flap`` marks all but the first)."""
        return frames.terms_frame(self._index, self.end_time, acting=self._acting)

    def flaps(self) -> pd.DataFrame:
        """The callback terms after the first one (as :meth:`terms`): failovers and re-elections."""
        terms = self.terms()
        return terms[terms["flap"]].reset_index(drop=True)

    def failovers(self) -> pd.DataFrame:
        """Changes of acting leader: old, new, cause, cause_at, failover_s ..."""
        return frames.failovers_frame(self._index, self.end_time, acting=self._acting)

    def writes(self) -> pd.DataFrame:
        """Leader-guarded writes, ``class`` ok / fenced (rejected) / harmful (stale, accepted)."""
        return frames.writes_frame(self._index)

    def clocks(self, every_s: float = 1.0) -> pd.DataFrame:
        """Clock offset (local - true) and drift per node over time (one sample per every_s)."""
        return frames.clocks_frame(self._index, every_s=every_s)

    # ------------------------------------------------------------------ plots
    # matplotlib is imported by leadersim.analysis.plots, only when a plot is asked for.

    def plot_timeline(self, ax: Axes | None = None, **options: Any) -> Axes:
        """The timeline: one lane per node and one for the storage (see ``plots``)."""
        from leadersim.analysis import plots

        return plots.plot_timeline(self, ax=ax, **options)

    def plot_latency(self, ax: Axes | None = None) -> Axes:
        """Storage operation latencies over time, coloured by outcome."""
        from leadersim.analysis import plots

        return plots.plot_latency(self, ax=ax)

    def plot_clocks(self, ax: Axes | Sequence[Axes] | None = None) -> Figure:
        """Clock offset change and drift rate per node."""
        from leadersim.analysis import plots

        return plots.plot_clocks(self, ax=ax)

    # ------------------------------------------------------------------ export / display

    def to_jsonl(self) -> str:
        """The trace as JSON lines (sorted keys: byte-identical for identical runs)."""
        return "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in self.events)

    def __repr__(self) -> str:
        label = self.name or "run"
        seed = "" if self.seed is None else f" seed={self.seed}"
        return f"<Result {label}{seed} {self.end_time:g}s: {self.verdict.line()}>"

    def _repr_html_(self) -> str:
        verdict = self.verdict
        level = verdict.level
        colour = _LEVEL_COLOURS[level]
        median = verdict.failover_median_s
        rows = [
            ("split brain", f"{verdict.overlap_s:.3f} s"),
            ("belief overlap", f"{verdict.belief_overlap_s:.3f} s"),
            ("no leader", f"{verdict.no_leader_s:.2f} s"),
            (
                "failovers",
                f"{verdict.failovers}" + ("" if median is None else f" (median {median:.2f} s)"),
            ),
            ("re-elections", str(verdict.reelections)),
            (
                "stale writes",
                f"{verdict.stale_accepted} accepted / {verdict.stale_rejected} rejected",
            ),
        ]
        cell = "style='text-align:{};padding:1px 6px;vertical-align:top'"
        note = "style='color:#57606a;font-size:85%;padding:1px 6px;vertical-align:top'"
        body = "".join(
            f"<tr><td {cell.format('left')}>{html.escape(k)}</td>"
            f"<td {cell.format('right')}>{html.escape(v)}</td>"
            f"<td {note}>{html.escape(GLOSSARY[k])}</td></tr>"
            for k, v in rows
        )
        title = html.escape(self.name or "run")
        seed = "" if self.seed is None else f" · seed {self.seed}"
        return (
            f"<div style='border:2px solid {colour};border-radius:6px;padding:6px 10px;"
            f"display:inline-block;font-family:sans-serif'>"
            f"<div><b style='color:{colour}'>{html.escape(level.value)}</b> · {title}{seed} · "
            f"{self.end_time:g} s · {len(self.nodes)} nodes</div>"
            f"<div {note}>{html.escape(level.value)}: {html.escape(GLOSSARY[level.value])}</div>"
            f"<table style='margin-top:4px'>{body}</table></div>"
        )
