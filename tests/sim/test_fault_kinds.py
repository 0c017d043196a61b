"""The table of fault kinds (leadersim.faults): what each world and the analysis read."""

from __future__ import annotations

import pytest

from leadersim import ConfigError
from leadersim.faults import FAULT_KINDS, FaultKind, check_params
from leadersim.sim import faults as sim_faults

#: The parameters that are seconds, kind by kind (what scaling a scenario multiplies).
SECONDS = {
    "crash": (),
    "restart": (),
    "start": (),
    "pause": ("duration",),
    "cancel": (),
    "resign": ("resign_duration",),
    "cut": ("duration",),
    "slow": ("latency_s", "duration"),
    "error": ("after_s", "duration"),
    "ambiguous": ("delay_s",),
    "clock_drift": ("duration",),
    "clock_step": ("seconds",),
    "conflicts": ("duration",),
    "busy": ("duration",),
}


def test_every_kind_has_one_row_with_its_seconds_parameters() -> None:
    assert {name: row.time_params for name, row in FAULT_KINDS.items()} == SECONDS
    for name, row in FAULT_KINDS.items():
        assert isinstance(row, FaultKind)
        assert row.name == name
        assert set(row.time_params) <= set(row.params), name
        assert not {"ppm", "rate", "mode"} & set(row.time_params), name
        # A kind ends after a duration exactly when it has a duration parameter.
        assert (row.ends == "duration") == ("duration" in row.params), name


def test_the_simulators_import_path_reads_the_same_table() -> None:
    assert sim_faults.FAULT_KINDS is FAULT_KINDS
    with pytest.raises(TypeError):
        FAULT_KINDS["pause"] = FAULT_KINDS["crash"]  # type: ignore[index]


def test_only_the_clock_kinds_cannot_run_for_real() -> None:
    unreal = {name: row.real for name, row in FAULT_KINDS.items() if row.real is not None}
    assert set(unreal) == {"clock_drift", "clock_step"}
    assert "rate cannot be changed" in unreal["clock_drift"]
    assert all(row.scope == "clock" for name, row in FAULT_KINDS.items() if name in unreal)


@pytest.mark.parametrize(
    ("kind", "params", "label"),
    [
        ("pause", {"duration": 20}, "pause (20s)"),
        ("cut", {"duration": 8, "mode": "reply"}, "cut reply (8s)"),
        ("cut", {"duration": None}, "cut request"),  # open-ended (a real run's fault)
        ("slow", {"latency_s": 0.2, "duration": 5.0}, "slow 0.2s (5s)"),
        ("error", {"after_s": 1.0, "duration": 3}, "error after 1.0s (3s)"),
        ("clock_drift", {"ppm": 500}, "drift 500ppm"),
        ("clock_step", {"seconds": -30}, "wall -30s"),
        ("resign", {}, "resign 0s"),
        ("crash", {}, "crash"),
    ],
)
def test_each_kind_labels_itself(kind: str, params: dict[str, object], label: str) -> None:
    assert FAULT_KINDS[kind].label(params) == label


def test_parameters_are_checked_by_the_table_naming_what_is_allowed() -> None:
    assert check_params("cut", {"duration": 1}) == {"duration": 1, "mode": "request"}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ppm'\].*allowed: \['after_s'"):
        check_params("error", {"after_s": 1, "duration": 2, "ppm": 3})
    with pytest.raises(ConfigError, match=r"needs \['latency_s'\]"):
        check_params("slow", {"duration": 2})
    with pytest.raises(ConfigError, match="unknown fault kind 'drift'; allowed: "):
        check_params("drift", {})
    with pytest.raises(ConfigError, match="'rate' is a probability"):
        check_params("busy", {"rate": 1.5, "duration": 1})
