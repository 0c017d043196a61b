"""The result of a run — simulated or real — and its views.

A :class:`Result` holds a trace (a list of :class:`~leadersim.trace.TraceEvent`) and the
instant the run ended. Its verdict is :meth:`Result.summary`; its tidy DataFrames are
:attr:`Result.trace`, :meth:`Result.intervals`, :meth:`Result.windows`,
:meth:`Result.gaps`, :meth:`Result.failovers`, :meth:`Result.writes`,
:meth:`Result.storage_ops`, :meth:`Result.clocks` ... (columns: :mod:`.frames`; pandas is
imported only when one is asked for); plots are explicit (:meth:`Result.plot_timeline`);
in Jupyter it shows as an HTML verdict card.
"""

from __future__ import annotations

import html
import itertools
import json
import operator
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from leadersim.analysis import frames
from leadersim.analysis.intervals import (
    Interval,
    Summary,
    Window,
    acting_intervals,
    belief_intervals,
    failovers,
    no_leader_gaps,
    overlap_windows,
)
from leadersim.trace import EventKind, TraceEvent

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Result"]

_node_of = operator.attrgetter("node")


class Result:
    """A run's trace and everything derived from it.

    Args:
        events: The trace, in true-time order.
        end_time: When the run ended (true time, s); defaults to the last event.
        name: What was run (a scenario name, "lab", ...).
        seed: The seed, for simulated runs.
        meta: Anything else worth keeping (config, warnings ...).
    """

    def __init__(
        self,
        events: Sequence[TraceEvent],
        end_time: float | None = None,
        *,
        name: str = "",
        seed: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.events: tuple[TraceEvent, ...] = tuple(events)
        self.end_time = (
            end_time
            if end_time is not None
            else max((e.true_time for e in self.events), default=0.0)
        )
        self.name = name
        self.seed = seed
        self.meta: dict[str, Any] = dict(meta or {})

    # ------------------------------------------------------------------ verdict

    @cached_property
    def verdict(self) -> Summary:
        """The :class:`~leadersim.analysis.intervals.Summary` of this run.

        The same as :func:`~leadersim.analysis.intervals.summarize` on the trace, composed
        here from the intervals this result keeps (so they are computed once).
        """
        index = self._index
        acting, belief = self._acting, self._belief
        faults = index.of(EventKind.FAULT_START, EventKind.FAULT_END)
        terms = sorted(acting, key=lambda i: i.start)
        # failovers() reads the fault starts and each node's renewals in time order:
        # concatenating the two (each in order) gives what the whole trace gives
        latencies = failovers(
            [*index.of(EventKind.RENEW_OK), *index.of(EventKind.FAULT_START)], acting
        )
        stale = [w.details for w in index.of(EventKind.GUARDED_WRITE) if w.details.get("stale")]
        accepted = sum(1 for d in stale if d.get("accepted"))
        overlap = sum(w.duration for w in overlap_windows(acting, faults))
        return Summary(
            safe=overlap == 0 and accepted == 0,
            overlap_s=overlap,
            belief_overlap_s=sum(w.duration for w in overlap_windows(belief, faults)),
            no_leader_s=sum(b - a for a, b in no_leader_gaps(acting, self.end_time)),
            failovers=len(latencies),
            failover_s=tuple(latencies),
            flaps=max(0, len(terms) - 1),
            leader_changes=sum(1 for a, b in itertools.pairwise(terms) if a.node != b.node),
            stale_accepted=accepted,
            stale_rejected=len(stale) - accepted,
            first_leader_at=terms[0].start if terms else None,
        )

    def summary(self) -> dict[str, object]:
        """The verdict as a flat dict (``safe``, ``overlap_s``, ``no_leader_s`` ...)."""
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
        """The callback terms after the first one (as :meth:`terms`)."""
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
        colour = "#1a7f37" if verdict.safe else "#cf222e"
        word = "SAFE" if verdict.safe else "UNSAFE"
        median = verdict.failover_median_s
        rows = [
            ("split brain (acting)", f"{verdict.overlap_s:.3f} s"),
            ("split brain (belief)", f"{verdict.belief_overlap_s:.3f} s"),
            ("no leader", f"{verdict.no_leader_s:.2f} s"),
            (
                "failovers",
                f"{verdict.failovers}" + ("" if median is None else f" (median {median:.2f} s)"),
            ),
            ("flaps", str(verdict.flaps)),
            (
                "stale writes accepted / rejected",
                f"{verdict.stale_accepted} / {verdict.stale_rejected}",
            ),
        ]
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(k)}</td>"
            f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        title = html.escape(self.name or "run")
        seed = "" if self.seed is None else f" · seed {self.seed}"
        return (
            f"<div style='border:2px solid {colour};border-radius:6px;padding:6px 10px;"
            f"display:inline-block;font-family:sans-serif'>"
            f"<div><b style='color:{colour}'>{word}</b> · {title}{seed} · "
            f"{self.end_time:g} s · {len(self.nodes)} nodes</div>"
            f"<table style='margin-top:4px'>{body}</table></div>"
        )
