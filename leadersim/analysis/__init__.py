"""Traces into answers: leadership intervals, split-brain windows, verdicts, plots.

Reads traces only (simulated or real: one schema); never imports :mod:`leadersim.sim`.
pandas and matplotlib are imported lazily by the views that need them.
"""

from leadersim.analysis.calibration import fit_latency, fit_timers
from leadersim.analysis.intervals import (
    GLOSSARY,
    FaultSpan,
    Interval,
    LeaderChange,
    Summary,
    VerdictLevel,
    Window,
    acting_intervals,
    belief_intervals,
    compose_summary,
    failovers,
    fault_spans,
    faults_during,
    leader_changes,
    no_leader_gaps,
    overlap_windows,
    summarize,
)

__all__ = [
    "FaultSpan",
    "GLOSSARY",
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
    "fit_latency",
    "fit_timers",
    "leader_changes",
    "no_leader_gaps",
    "overlap_windows",
    "summarize",
]
