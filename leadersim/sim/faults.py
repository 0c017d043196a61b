"""Fault records and schedules, as data (re-exported from :mod:`leadersim.faults`).

The table of fault kinds and the schedule format live in :mod:`leadersim.faults`, which
the simulator, the real fault wrapper, the lab and the analysis all read; this module
keeps the simulator's historical import path working.
"""

from __future__ import annotations

from leadersim.faults import (
    CUT_MODES,
    FAULT_KINDS,
    MIN_DRIFT_PPM,
    SPECIAL_TARGETS,
    Fault,
    FaultKind,
    check_params,
    check_schedule,
    finite_number,
    parse_faults,
    random_schedule,
    reference_index,
)

__all__ = [
    "CUT_MODES",
    "FAULT_KINDS",
    "MIN_DRIFT_PPM",
    "SPECIAL_TARGETS",
    "Fault",
    "FaultKind",
    "check_params",
    "check_schedule",
    "finite_number",
    "parse_faults",
    "random_schedule",
    "reference_index",
]
