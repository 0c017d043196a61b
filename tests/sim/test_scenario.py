"""Scenario validation at load time, through the public API (``leadersim.simulate``).

Every bad scenario is refused before anything runs, with a ConfigError of one line that
names the problem and what is allowed; good scenarios near each rule's edge still run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersim import ConfigError, EventKind, simulate
from leadersim.sim.scenario import Scenario, load_scenario_file


@pytest.fixture(autouse=True)
def _quiet_safety_warnings() -> Iterator[None]:
    # The reference defaults (10/2/8) leave no slack; simulate() says so every run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pause(**changes: Any) -> dict[str, Any]:
    return {"at": 30, "kind": "pause", "target": "n1", "duration": 5, **changes}


def fault(kind: str, **params: Any) -> dict[str, Any]:
    return {"at": 30, "kind": kind, "target": "n1", **params}


INF, NAN = math.inf, math.nan

#: (scenario mapping, a pattern its one-line error must match)
BAD: dict[str, tuple[dict[str, Any], str]] = {
    # fault targets and references
    "unknown target": (
        {"faults": [fault("crash", target="n9")]},
        r"faults\[0\] \(crash at t=30\): target 'n9' is not a node of this scenario; "
        r"allowed: a node id, .*'leader', 'all' or 'fault:N', with nodes \['n1', 'n2', 'n3'\]",
    ),
    "unknown target in a list": (
        {"faults": [fault("crash", target=["n1", "n9"])]},
        r"target 'n9' is not a node",
    ),
    "restart of a mistyped id": (
        {"faults": [fault("crash"), fault("restart", at=40, target="n11")]},
        r"faults\[1\] \(restart at t=40\): target 'n11' is not a node of this scenario "
        r"\(a new node joins with a 'start' fault\)",
    ),
    "fault:7 with no fault 7": (
        {"faults": [fault("crash"), fault("restart", at=40, target="fault:7")]},
        r"faults\[1\].*target 'fault:7' names no earlier fault; allowed: fault:0 to fault:0",
    ),
    "fault:N naming itself": (
        {"faults": [fault("crash", target="fault:0")]},
        r"'fault:0' names no earlier fault; allowed: none \(it is the first\)",
    ),
    "fault:N not a number": (
        {"faults": [fault("crash"), fault("restart", at=40, target="fault:first")]},
        r"'fault:first' is not a fault reference; allowed: 'fault:N'",
    ),
    "fault:N in a schedule out of time order": (
        {"faults": [fault("restart", at=40, target="fault:1"), fault("crash")]},
        r"'fault:N' targets must be listed in time order",
    ),
    "special target inside a list": (
        {"faults": [fault("crash", target=["n1", "leader"])]},
        r"a target list must hold node ids only",
    ),
    "a node named twice in a target list": (
        {"faults": [fault("crash", target=["n1", "n1"])]},
        r"names a node twice",
    ),
    "a fault before its node joins": (
        {"faults": [fault("crash", target="n4"), fault("start", at=40, target="n4")]},
        r"faults\[0\].*target 'n4' is not a node",
    ),
    # times
    "fault after the end": (
        {"duration": 60, "faults": [fault("crash", at=90)]},
        r"faults\[0\] \(crash at t=90\): starts at or after the run's end \(duration 60 s\); "
        r"allowed: 0 <= at < 60",
    ),
    "fault at the end": (
        {"duration": 60, "faults": [fault("crash", at=60)]},
        r"starts at or after the run's end",
    ),
    "at: NaN": ({"faults": [pause(at=NAN)]}, r"'at' must be a finite number of seconds >= 0"),
    "at: inf": ({"faults": [pause(at=INF)]}, r"'at' must be a finite number of seconds >= 0"),
    "duration: inf": ({"duration": INF}, r"^duration must be a finite number of seconds > 0"),
    "duration: NaN": ({"duration": NAN}, r"^duration must be a finite number of seconds > 0"),
    "duration: 0": ({"duration": 0}, r"^duration must be a finite number of seconds > 0"),
    "negative start_stagger": ({"start_stagger": -1}, r"start_stagger must be .* >= 0"),
    "negative pause": ({"faults": [pause(duration=-5)]}, r"'duration' must be seconds >= 0"),
    "pause of inf": ({"faults": [pause(duration=INF)]}, r"'duration' must be a finite number"),
    "negative slow latency": (
        {"faults": [fault("slow", latency_s=-1, duration=5)]},
        r"'latency_s' must be seconds >= 0",
    ),
    "negative reply delay": (
        {"faults": [fault("ambiguous", delay_s=-1)]},
        r"'delay_s' must be seconds >= 0",
    ),
    # probabilities and rates
    "rate: 7": (
        {"faults": [fault("conflicts", rate=7, duration=5)]},
        r"'rate' is a probability; allowed: 0 to 1, got 7",
    ),
    "negative rate": (
        {"faults": [fault("busy", rate=-0.5, duration=5)]},
        r"'rate' is a probability",
    ),
    "clock_drift of inf": (
        {"faults": [fault("clock_drift", ppm=INF)]},
        r"'ppm' must be a finite number",
    ),
    "clock_drift that stops the clock": (
        {"faults": [fault("clock_drift", ppm=-1e6)]},
        r"'ppm' must be > -1e\+06",
    ),
    # per-node entries
    "nodes_config for a missing node": (
        {"nodes_config": {"n9": {"lease_duration": 15}}},
        r"^nodes_config: 'n9' is not a node of this scenario; allowed: \['n1', 'n2', 'n3'\]",
    ),
    "clocks for a missing node": (
        {"clocks": {"n4": {"drift_ppm": 100}}},
        r"^clocks: 'n4' is not a node of this scenario; allowed:",
    ),
    "latency_by_node for a missing node": (
        {"storage": {"latency_by_node": {"n7": 0.01}}},
        r"storage.latency_by_node: \['n7'\] not node\(s\) of this scenario",
    ),
    "raise_on a missing node": (
        {"callback": {"raise_after_s": 5, "raise_on": ["n9"]}},
        r"callback.raise_on: \['n9'\] not node\(s\) of this scenario",
    ),
    "nodes_config entry not a mapping": (
        {"nodes_config": {"n2": 15}},
        r"nodes_config.n2 must be a mapping, got 15",
    ),
    "clock drift NaN": ({"clocks": {"n2": {"drift_ppm": NAN}}}, r"clocks.n2.drift_ppm.*finite"),
    "clock drift backwards": (
        {"clocks": {"n2": {"drift_ppm": -2e6}}},
        r"clocks.n2.drift_ppm must be > -1e\+06",
    ),
    "clock offset inf": ({"clocks": {"n2": {"wall_offset": INF}}}, r"wall_offset.*finite"),
    # latency
    "negative latency": (
        {"storage": {"latency": -0.01}},
        r"^storage.latency must be finite seconds >= 0",
    ),
    "latency NaN": (
        {"storage": {"latency": {"median_s": NAN}}},
        r"^storage.latency.median_s must be a finite number >= 0",
    ),
    "tail_p above 1": (
        {"storage": {"latency": {"tail_p": 2, "tail_min_s": 1, "tail_max_s": 2}}},
        r"^storage.latency.tail_p is a probability; allowed: 0 to 1",
    ),
    "uniform low above high": (
        {"storage": {"latency": {"dist": "uniform", "low_s": 0.2, "high_s": 0.1}}},
        r"low_s \(0.2\) must not exceed high_s \(0.1\)",
    ),
    "key of another dist": (
        {"storage": {"latency": {"dist": "constant", "median_s": 0.02}}},
        r"^storage.latency: key\(s\) \['median_s'\] do not apply to dist 'constant'; "
        r"allowed: \['value_s', 'tail_p'",
    ),
    "dist without its keys": (
        {"storage": {"latency_by_op": {"update": {"dist": "uniform"}}}},
        r"^storage.latency_by_op.update: dist 'uniform' needs \['low_s', 'high_s'\]",
    ),
    "tail bounds without tail_p": (
        {"storage": {"latency": {"tail_max_s": 2}}},
        r"tail_min_s/tail_max_s need tail_p > 0",
    ),
    "latency_by_node not a mapping": (
        {"storage": {"latency_by_node": ["n1"]}},
        r"storage.latency_by_node must be a mapping",
    ),
    # callback
    "stop latency inf": ({"callback": {"stop_latency": INF}}, r"callback.stop_latency.*finite"),
    "negative writes per second": (
        {"callback": {"writes_per_s": -1}},
        r"callback.writes_per_s must be a finite number of writes per second >= 0",
    ),
    "raise_on not ids": ({"callback": {"raise_on": 3}}, r"callback.raise_on must be a node id"),
    # shapes and ids
    "a node called leader": ({"nodes": ["n1", "leader"]}, r"would read as a fault target"),
    "a null node id": ({"nodes": ["n1", None]}, r"ids must be non-empty strings"),
    "config not a mapping": ({"config": 5}, r"^config must be a mapping, got 5"),
    "faults not a list": ({"faults": 5}, r"^faults must be a list of fault mappings"),
    "name not a string": ({"name": 5}, r"^name must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_scenario_is_one_config_error_naming_the_problem(case: str) -> None:
    spec, pattern = BAD[case]
    with pytest.raises(ConfigError, match=pattern) as raised:
        simulate(spec)
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------- good, near the edge


def test_start_adds_a_node_that_later_faults_and_per_node_entries_may_name() -> None:
    result = simulate(
        {
            "duration": 60,
            "nodes_config": {"n4": {"lease_duration": 12}},
            "clocks": {"n4": {"drift_ppm": 50}},
            "faults": [
                fault("start", at=20, target="n4"),
                fault("crash", at=40, target="n4"),
                fault("restart", at=50, target="fault:1"),
            ],
        }
    )
    started = [e for e in result.events if e.kind is EventKind.ELECTION_STARTED]
    assert [(e.true_time, e.details["incarnation"]) for e in started if e.node == "n4"] == [
        (20, 0),
        (50, 1),
    ]


def test_special_targets_and_boundary_values_are_accepted() -> None:
    scenario = Scenario.from_mapping(
        {
            "duration": 60,
            "faults": [
                fault("pause", target="leader", duration=0),
                fault("conflicts", target="all", rate=1, duration=5),
                fault("busy", target="fault:0", rate=0, duration=5),
                fault("clock_step", seconds=-3600),
                fault("ambiguous", at=59.999, delay_s=None),
            ],
        }
    )
    assert [f.kind for f in scenario.faults][-1] == "ambiguous"


def test_a_duration_override_leaves_out_the_faults_past_the_new_end() -> None:
    # leader-crash crashes at t=60 and restarts at t=90: run its first 75 s.
    result = simulate("leader-crash", duration=75)
    starts = [e.details["kind"] for e in result.events if e.kind is EventKind.FAULT_START]
    assert starts == ["crash"]
    assert Scenario.from_mapping({"duration": 300}).replace(duration=50).faults == ()


def test_a_file_with_a_fault_past_its_end_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "late.yaml"
    path.write_text("duration: 50\nfaults: [{at: 60, kind: crash, target: leader}]\n")
    with pytest.raises(ConfigError, match=r"late\.yaml: faults\[0\].*run's end"):
        simulate(path)


# ---------------------------------------------------------------------------- files

BAD_FILES: dict[str, tuple[str, str | bytes, str]] = {
    "malformed YAML": (
        "bad.yaml",
        "nodes: 3\nfaults:\n  - {at: 30, kind: crash, target: n1\nduration: 60\n",
        r"bad\.yaml: cannot parse YAML: .* \(at line 4, column \d+\)$",
    ),
    "YAML tab indentation": (
        "tab.yml",
        "nodes: 3\nconfig:\n\tlease_duration: 10\n",
        r"tab\.yml: cannot parse YAML: .*\(at line 3, column 1\)$",
    ),
    "malformed JSON": (
        "bad.json",
        '{"nodes": 3,\n "duration": }\n',
        r"bad\.json: cannot parse JSON: Expecting value \(at line 2, column 14\)$",
    ),
    "malformed TOML": (
        "bad.toml",
        "nodes = 3\nduration = \n",
        r"bad\.toml: cannot parse TOML: .*line 2",
    ),
    "duplicate YAML key": (
        "dup.yaml",
        "duration: 60\nnodes: 3\nduration: 600\n",
        r"dup\.yaml: cannot parse YAML: key 'duration' is given twice in one mapping "
        r"\(at line 3, column 1\)$",
    ),
    "duplicate JSON key": (
        "dup.json",
        '{"duration": 60, "duration": 600}',
        r"dup\.json: cannot parse JSON: key 'duration' is given twice in one object$",
    ),
    "an empty file": ("empty.yaml", "", r"empty\.yaml: .*must hold a mapping.*empty"),
    "a list, not a mapping": ("list.json", "[1, 2]", r"list\.json: .*got list$"),
    "not UTF-8": ("latin.yaml", b"name: caf\xe9\n", r"latin\.yaml: .*not UTF-8 text"),
    "JSON infinity": ("inf.json", '{"duration": Infinity}', r"inf\.json: duration must be"),
    "TOML nan": ("nan.toml", "[[faults]]\nat = nan\nkind = 'crash'\ntarget = 'n1'\n", r"'at'"),
    "YAML .inf": ("inf.yaml", "duration: .inf\n", r"inf\.yaml: duration must be a finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_scenario_file_is_one_config_error_naming_the_file(case: str, tmp_path: Path) -> None:
    name, content, pattern = BAD_FILES[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=pattern) as raised:
        simulate(path)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: no such scenario file$"):
        simulate(missing)
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: no such scenario file$"):
        simulate(str(missing))


def test_a_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"dir\.yaml: cannot read scenario file"):
        simulate(folder)


def test_an_unknown_extension_is_a_config_error_naming_the_types(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml.txt"
    path.write_text("nodes: 3\n")
    with pytest.raises(
        ConfigError, match=r"unknown scenario file type '\.txt'; allowed: \.yaml, \.yml"
    ):
        load_scenario_file(path)


@pytest.mark.parametrize("suffix", [".YAML", ".Yml", ".JSON", ".Toml"])
def test_the_extension_is_matched_in_any_case(suffix: str, tmp_path: Path) -> None:
    text = {
        ".yaml": "nodes: 2\nduration: 30\n",
        ".yml": "nodes: 2\nduration: 30\n",
        ".json": '{"nodes": 2, "duration": 30}',
        ".toml": "nodes = 2\nduration = 30\n",
    }[suffix.lower()]
    path = tmp_path / f"upper{suffix}"
    path.write_text(text, encoding="utf-8")
    assert load_scenario_file(path).nodes == ("n1", "n2")
    assert simulate(path).end_time == 30
    assert simulate(str(path)).end_time == 30  # a string path is a file, not a name
