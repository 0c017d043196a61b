"""The soak (benchmarks/soak.py): its judging rules, a smoke run, and the 5-minute soak.

The 5-minute soak of 20 members (marker ``soak``) runs only when asked for, in either
tier: ``python -m pytest -m soak tests/test_soak.py``. The smoke run (a few members for a
few seconds, marker ``slow``) is in the full tier, so that the script cannot rot. The
rules that decide the soak's verdict are tested here on hand-made intervals, so that
each check is seen to fail when it should.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from leadersim.analysis.intervals import Interval
from leadersim.trace import EventKind, TraceEvent

REPO = Path(__file__).resolve().parent.parent
SOAK = REPO / "benchmarks" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak = load_soak()
# L = 2, I = 0.25, D = 1.5: slack 0.25 s; a woken leader may act I + D + margin = 2.25 s more.
TIMING = soak.Timing(lease=2.0, interval=0.25, deadline=1.5, margin=0.5)


def pause(node: str, start: float, end: float):  # type: ignore[no-untyped-def]
    return soak.Pause(node, start, end)


def test_overlap_inside_a_pause_longer_than_the_slack_is_explained() -> None:
    # n1 leads, is paused 2-7 s; n2 takes over at 4.2; n1 stops 0.05 s after it wakes.
    acting = [Interval("n1", 1.0, 7.05), Interval("n2", 4.2, 20.0)]
    [overlap] = soak.classify_overlaps(acting, {"n1": [pause("n1", 2.0, 7.0)]}, TIMING)
    assert (overlap.node, overlap.newer) == ("n1", "n2")
    assert (overlap.start, overlap.end) == (4.2, 7.05)
    assert overlap.explained


@pytest.mark.parametrize(
    ("pauses", "why"),
    [
        ({}, "no pause at all: the overlap comes from something the theory does not allow"),
        ({"n1": [pause("n1", 2.0, 2.2)]}, "a pause shorter than the slack cannot cause it"),
        ({"n2": [pause("n2", 2.0, 7.0)]}, "the new leader's pause does not explain the old"),
        ({"n1": [pause("n1", 4.5, 7.0)]}, "the pause began after the take-over"),
        ({"n1": [pause("n1", 2.0, 4.5)]}, "n1 acted on 2.25 s (I + D + margin) after waking"),
    ],
)
def test_overlap_without_a_long_enough_pause_of_the_old_leader_is_unexplained(
    pauses: dict[str, list[object]], why: str
) -> None:
    acting = [Interval("n1", 1.0, 7.05), Interval("n2", 4.2, 20.0)]
    [overlap] = soak.classify_overlaps(acting, pauses, TIMING)
    assert not overlap.explained, why


def test_terms_that_only_follow_each_other_are_no_overlap() -> None:
    acting = [Interval("n1", 1.0, 5.0), Interval("n2", 5.0, 9.0), Interval("n1", 9.5, 12.0)]
    assert soak.classify_overlaps(acting, {}, TIMING) == []


def test_pauses_end_at_their_sigcont_or_at_a_crash() -> None:
    def fault(at: float, node: str, kind: EventKind, fault: int, what: str) -> TraceEvent:
        return TraceEvent(at, node, at, kind, {"fault": fault, "kind": what})

    events = [
        fault(1.0, "n1", EventKind.FAULT_START, 0, "pause"),
        fault(3.0, "n1", EventKind.FAULT_END, 0, "pause"),
        fault(4.0, "n2", EventKind.FAULT_START, 1, "pause"),
        fault(6.0, "n2", EventKind.FAULT_START, 2, "crash"),
        fault(7.0, "n3", EventKind.FAULT_START, 3, "pause"),
    ]
    found = soak.pauses_of(events, end_time=10.0)
    assert [(p.start, p.end) for p in found["n1"]] == [(1.0, 3.0)]
    assert [(p.start, p.end) for p in found["n2"]] == [(4.0, 6.0)]
    assert [(p.start, p.end) for p in found["n3"]] == [(7.0, 10.0)]


def test_recovery_counts_from_the_quiet_start_until_one_node_acts_alone() -> None:
    # Quiet 10-20 s: n1 (woken) stops at 10.3, n2 acts from 8 to the end: back after 0.3 s.
    acting = [Interval("n1", 2.0, 10.3), Interval("n2", 8.0, 30.0)]
    [rec] = soak.recoveries(acting, [(10.0, 20.0)])
    assert (rec.leader, rec.back_s) == ("n2", pytest.approx(0.3))
    # The leader crashed at 10 s; n3 starts at 12.1: back after 2.1 s.
    acting = [Interval("n1", 2.0, 10.0), Interval("n3", 12.1, 30.0)]
    [rec] = soak.recoveries(acting, [(10.0, 20.0)])
    assert (rec.leader, rec.back_s) == ("n3", pytest.approx(2.1))
    # A re-election inside the interval moves the "back" time to the last start.
    acting = [Interval("n3", 1.0, 14.0), Interval("n3", 14.5, 30.0)]
    [rec] = soak.recoveries(acting, [(10.0, 20.0)])
    assert rec.back_s == pytest.approx(4.5)


@pytest.mark.parametrize(
    "acting",
    [
        [Interval("n1", 2.0, 30.0), Interval("n2", 8.0, 30.0)],  # two at the end
        [Interval("n1", 2.0, 15.0)],  # none at the end
    ],
)
def test_recovery_without_a_single_leader_at_the_end_of_the_quiet_is_reported(
    acting: list[Interval],
) -> None:
    [rec] = soak.recoveries(acting, [(10.0, 20.0)])
    assert (rec.leader, rec.back_s) == (None, None)


def run_soak(tmp_path: Path, *options: str, timeout: float) -> tuple[dict, str]:  # type: ignore[type-arg]
    report = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(SOAK), "--dir", str(tmp_path / "run"), "--json", str(report),
         *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )  # fmt: skip
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, output
    assert "soak: PASS" in done.stdout, output
    assert "replay: python benchmarks/soak.py --seed " in done.stdout, output
    return json.loads(report.read_text()), output


def check_report(data: dict, output: str) -> None:  # type: ignore[type-arg]
    assert data["violations"] == [], output
    assert data["integrity_check"] == "ok", output
    assert data["overlaps_unexplained"] == 0, output
    assert data["record_samples"] > 0, output
    assert data["record_versions"][1] > data["record_versions"][0], output
    back = data["leader_back_s"]
    assert back["n"] == data["quiet_intervals"] >= 1, output
    assert back["max"] <= data["recovery_bound_s"], output
    faults = data["faults"]
    assert faults.get("sigkill", 0) + faults.get("final blow: leader sigkill", 0) >= 1, output
    assert faults.get("restart", 0) >= 1, output


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_soak_smoke_run_of_a_few_members_passes_its_checks(tmp_path: Path) -> None:
    data, output = run_soak(
        tmp_path,
        "--members", "4", "--duration", "12", "--seed", "18", "--max-faulty", "2",
        timeout=200,
    )  # fmt: skip
    check_report(data, output)
    # The seed fixes the plan: the first burst begins with a long pause, then a SIGKILL,
    # and with at most two members faulty neither of the first two can be skipped.
    assert data["faults"].get("long pause (> slack)", 0) >= 1, output
    assert data["faults"].get("sigkill", 0) >= 1, output


@pytest.mark.soak
@pytest.mark.timeout(1200)
def test_soak_of_20_members_for_5_minutes_keeps_every_promise(tmp_path: Path) -> None:
    data, output = run_soak(tmp_path, "--members", "20", "--duration", "300", timeout=1100)
    print(output)
    check_report(data, output)
    assert data["quiet_intervals"] >= 5, output
    assert sum(data["faults"].values()) >= 50, output
