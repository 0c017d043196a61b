"""The result of a run — simulated or real — and its views.

A :class:`Result` holds a trace (a list of :class:`~leadersim.trace.TraceEvent`) and the
instant the run ended. Its verdict is :meth:`Result.summary`; its tidy DataFrames are
:attr:`Result.trace`, :meth:`Result.intervals` and :meth:`Result.windows` (pandas is
imported only when one is asked for); in Jupyter it shows as an HTML verdict card.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from leadersim.analysis.intervals import (
    Interval,
    Summary,
    Window,
    acting_intervals,
    belief_intervals,
    overlap_windows,
    summarize,
)
from leadersim.trace import EventKind, TraceEvent

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Result"]


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
        """The :class:`~leadersim.analysis.intervals.Summary` of this run."""
        return summarize(self.events, self.end_time)

    def summary(self) -> dict[str, object]:
        """The verdict as a flat dict (``safe``, ``overlap_s``, ``no_leader_s`` ...)."""
        return self.verdict.as_dict()

    @property
    def nodes(self) -> list[str]:
        """Node ids in order of first appearance in the trace."""
        return list(dict.fromkeys(e.node for e in self.events if e.node))

    # ------------------------------------------------------------------ pure views

    def acting(self) -> list[Interval]:
        """Acting intervals (callback running), as records."""
        return acting_intervals(self.events, self.end_time)

    def belief(self) -> list[Interval]:
        """Belief intervals (``is_leader()`` true), as records."""
        return belief_intervals(self.events, self.end_time)

    def split_brain(self, *, belief: bool = False) -> list[Window]:
        """Split-brain windows (acting, or belief with ``belief=True``), as records."""
        faults = [e for e in self.events if e.kind in (EventKind.FAULT_START, EventKind.FAULT_END)]
        return overlap_windows(self.belief() if belief else self.acting(), faults)

    # ------------------------------------------------------------------ DataFrames

    @property
    def trace(self) -> pd.DataFrame:
        """The events as a DataFrame: true_time, node, local_time, kind, details."""
        import pandas as pd

        return pd.DataFrame(
            {
                "true_time": [e.true_time for e in self.events],
                "node": [e.node for e in self.events],
                "local_time": [e.local_time for e in self.events],
                "kind": [e.kind.value for e in self.events],
                "details": [dict(e.details) for e in self.events],
            }
        )

    def intervals(self) -> pd.DataFrame:
        """Acting and belief intervals: node, kind, start, end, duration, end_reason."""
        import pandas as pd

        rows = [
            {
                "node": i.node,
                "kind": kind,
                "start": i.start,
                "end": i.end,
                "duration": i.duration,
                "end_reason": i.end_reason,
            }
            for kind, items in (("acting", self.acting()), ("belief", self.belief()))
            for i in items
        ]
        columns = ["node", "kind", "start", "end", "duration", "end_reason"]
        return pd.DataFrame(rows, columns=columns)

    def windows(self) -> pd.DataFrame:
        """Split-brain windows: kind (acting/belief), start, end, duration, nodes, faults."""
        import pandas as pd

        rows = [
            {
                "kind": kind,
                "start": w.start,
                "end": w.end,
                "duration": w.duration,
                "nodes": ",".join(w.nodes),
                "faults": ",".join(w.faults),
            }
            for kind, windows in (
                ("acting", self.split_brain()),
                ("belief", self.split_brain(belief=True)),
            )
            for w in windows
        ]
        columns = ["kind", "start", "end", "duration", "nodes", "faults"]
        return pd.DataFrame(rows, columns=columns)

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
