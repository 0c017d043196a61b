"""leadersim.explore: search fault schedules within a budget, shrink, bisect the threshold.

Every run is simulated (deterministic), so each test fixes its seeds; a failing assertion
prints the exploration's summary, whose last line is the replay command.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from leadersim import ConfigError, SafetyWarning, explore, simulate
from leadersim.analysis import theory
from leadersim.cli import EXIT_OK, EXIT_UNSAFE, EXIT_USAGE, main
from leadersim.explore import Exploration, _size
from leadersim.sim.scenario import load_scenario_file

LEASE, INTERVAL, DEADLINE = 10.0, 2.0, 8.0
#: The members' renew rounds in phase: the follower reads 10 ms after the leader, over a
#: 1-ms storage, so the search can reach the theory's worst case (at random phases a
#: follower notices the leader's last renewal up to a round late: a larger threshold).
IN_PHASE = {"start_stagger": 0.01, "start_jitter": 0, "storage": {"latency": 0.001}}
PAUSES = {"pause": {"max_duration": 30, "max_count": 3}}


def quiet_explore(base: Any, budget: Any, **options: Any) -> Exploration:
    options.setdefault("executor", "serial")
    options.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)  # 10/2/8 has no slack, on purpose
        return explore(base, budget, **options)


@pytest.fixture(scope="module")
def paused() -> Exploration:
    """10/2/8 with pauses up to 30 s: the acceptance case."""
    return quiet_explore({"nodes": 3, "duration": 60, **IN_PHASE}, PAUSES, runs=50, seed=1)


def acting_node_at(answer: Exploration, t: float) -> str | None:
    assert answer.result is not None
    intervals = answer.result.intervals()
    acting = intervals[(intervals["kind"] == "acting") & (intervals["start"] <= t)]
    acting = acting[acting["end"] > t]
    return None if acting.empty else str(acting["node"].iloc[0])


def test_pause_on_10_2_8_shrinks_to_one_leader_pause_at_the_theorys_threshold(
    paused: Exploration,
) -> None:
    answer = paused
    assert answer.found, answer.summary()
    assert answer.scenario is not None
    assert answer.threshold is not None
    (fault,) = answer.scenario["faults"]
    assert fault["kind"] == "pause", answer.summary()
    # The paused node is the one leading when the pause begins.
    target = fault["target"]
    leader = acting_node_at(answer, fault["at"])
    assert target in (leader, "leader"), answer.summary()
    # Theory (leadersim.explore._theory): S = L - I - D = 0 < C = 0.1, so the margin is
    # negative and a renew round that fails at its deadline already overlaps; a pause
    # inside the round (between its read and its write) makes it fail when the leader
    # wakes to a conflict and its first retry's backoff w runs past D: P > D - w, with w
    # a seeded draw from I/2 = 1 s to D/2 = 4 s (the reference's backoff). So the
    # threshold lies in [D - D/2, D - I/2] = [4, 7] s, below the L - I = 8 s a pause
    # between rounds needs; which value depends on the draw of the run found.
    predicted = DEADLINE - DEADLINE / 2
    assert answer.theory["predicted"] == predicted
    assert answer.theory["predicted_range"] == (predicted, DEADLINE - INTERVAL / 2)
    assert answer.theory["slack_s"] == theory.slack(LEASE, INTERVAL, DEADLINE) == 0
    assert answer.threshold["kind"] == "pause"
    assert answer.threshold["param"] == "duration"
    assert predicted - 0.01 <= answer.threshold["value"] <= DEADLINE - INTERVAL / 2 + 0.01, (
        answer.summary()
    )
    assert answer.threshold["value"] - answer.threshold["passes_at"] <= 0.01
    # The threshold is real on both sides: just below it the same run is safe.
    seed = answer.seed
    assert seed is not None
    below = {**answer.scenario, "faults": [{**fault, "duration": answer.threshold["passes_at"]}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)
        assert simulate(below, seed=seed).verdict.overlap_s == 0
        assert simulate(answer.scenario, seed=seed).verdict.overlap_s > 0


def test_pause_threshold_at_random_phases_lies_in_the_theorys_range() -> None:
    answer = quiet_explore({"nodes": 3, "duration": 60}, PAUSES, runs=50, seed=0)
    assert answer.found, answer.summary()
    assert answer.threshold is not None
    # From the worst phase and draw (D - D/2, see above) up to the failover formula's
    # high end L + I (a follower that saw the last renewal a whole round late).
    value = answer.threshold["value"]
    low, _, high = theory.failover_time("pause", LEASE, INTERVAL)
    assert DEADLINE / 2 - 0.01 <= value <= high + 0.1, answer.summary()
    assert low == LEASE - INTERVAL


def test_shrunk_schedule_is_no_larger_still_fails_and_replays_byte_for_byte_in_a_fresh_process(
    paused: Exploration, tmp_path: Path
) -> None:
    answer = paused
    assert answer.scenario is not None
    assert answer.found_scenario is not None
    assert answer.seed is not None
    assert _size(answer.scenario) <= _size(answer.found_scenario)
    path = answer.write(tmp_path / "explored.yaml")
    assert load_scenario_file(path).to_mapping() == answer.scenario
    trace = tmp_path / "trace.jsonl"
    replay = [*answer.replay(path).split(), "--trace", str(trace)]
    assert replay[:2] == ["leadersim", "simulate"]
    done = subprocess.run(
        [sys.executable, "-m", "leadersim", *replay[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_UNSAFE, done.stdout + done.stderr
    assert answer.result is not None
    assert trace.read_bytes() == answer.result.to_jsonl().encode()


MIXED = {
    "pause": {"max_duration": 20, "max_count": 2},
    "cut": {"max_duration": 15},
    "slow": {"max_latency_s": 3, "max_duration": 10},
    "clock_drift": {"max_ppm": 5000},
    "crash": {"max_down_s": 10},  # with its restart, a 'fault:N' reference to renumber
}


@pytest.mark.parametrize("seed", [0, 2])
def test_shrinking_a_mixed_schedule_keeps_it_failing_and_never_larger(seed: int) -> None:
    answer = quiet_explore({"nodes": 4, "duration": 60}, MIXED, runs=50, seed=seed)
    assert answer.found, answer.summary()
    assert answer.scenario is not None
    assert answer.found_scenario is not None
    assert answer.seed is not None
    found, shrunk = answer.found_scenario, answer.scenario
    assert len(found["faults"]) >= 2, "the case should need shrinking"
    assert _size(shrunk) <= _size(found)
    assert len(shrunk["faults"]) < len(found["faults"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)
        assert simulate(found, seed=answer.seed).verdict.overlap_s > 0
        assert simulate(shrunk, seed=answer.seed).verdict.overlap_s > 0, answer.summary()


def test_budget_inside_the_safe_region_finds_nothing_and_says_what_it_covered() -> None:
    lease, interval, deadline = 15.0, 2.0, 8.0  # slack S = 5 s
    budget = {
        "pause": {"max_duration": 4, "max_count": 2},
        "cut": {"max_duration": 30},
        "slow": {"max_latency_s": 0.5, "max_duration": 20},
        "clock_drift": {"max_ppm": 200},
    }
    # Every fault below the theory's bound: 0.5 s reply delay + 0.1 s stop + a 4-s pause
    # + 200 ppm drift stay inside S, and a 4-s pause is far below L - I = 13 s.
    assert theory.is_safe(
        lease, interval, deadline, delta_resp=0.5, stop_latency=0.1, pause=4, rho=200e-6
    )
    assert theory.failover_time("pause", lease, interval).low > 4
    base = {
        "nodes": 3,
        "duration": 60,
        "config": {
            "lease_duration": lease,
            "renew_interval": interval,
            "renew_deadline": deadline,
        },
    }
    runs = 100  # the 1,000-run version is benchmarks/bench_explore.py
    answer = quiet_explore(base, budget, runs=runs, seed=3)
    assert not answer.found, answer.summary()
    assert answer.runs == runs
    assert answer.scenario is None
    assert answer.threshold is None
    assert answer.seed is None
    assert f"in {runs} runs" in answer.summary()
    assert "cut x1 (duration <= 30 s)" in answer.covered


def test_fencing_makes_the_found_overlap_harmless() -> None:
    base = {"nodes": 3, "duration": 60, "fencing": True}
    overlap = quiet_explore(base, PAUSES, runs=40, seed=0, shrink=False)
    assert overlap.found, overlap.summary()
    harmful = quiet_explore(base, PAUSES, runs=40, seed=0, prop="harmful")
    assert not harmful.found, harmful.summary()
    assert harmful.runs == 40
    # Without fencing the same search finds a harmful write.
    unfenced = quiet_explore({**base, "fencing": False}, PAUSES, runs=40, seed=0, prop="harmful")
    assert unfenced.found, unfenced.summary()


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_an_executor_gives_the_serial_answer(kind: str) -> None:
    # Pauses up to 9 s break 10/2/8 only now and then: the first failure is a few
    # schedules in, so the batch order matters.
    budget = {"pause": {"max_duration": 9}, "cut": {"max_duration": 5}}
    base = {"nodes": 3, "duration": 40}
    serial = quiet_explore(base, budget, runs=64, seed=5, shrink=False)
    pool: concurrent.futures.Executor
    if kind == "thread":
        # Two threads: simulations side by side in one process (each loop and world
        # keeps its own callback context; a shared one once raised "cannot enter context").
        pool = concurrent.futures.ThreadPoolExecutor(2)
    else:
        pool = concurrent.futures.ProcessPoolExecutor(2)
    with pool:
        parallel = quiet_explore(base, budget, runs=64, seed=5, executor=pool, shrink=False)
    a, b = serial.to_dict(), parallel.to_dict()
    del a["elapsed_s"], b["elapsed_s"]
    assert a == b
    assert serial.runs > 1, serial.summary()


def test_no_leader_property_finds_a_crash_of_the_leader() -> None:
    base = {"nodes": 3, "duration": 40}
    budget = {"crash": {"max_count": 1}, "max_faults": 1}
    # A crash of the leader leaves no leader until the lease has run out (L +- I).
    answer = quiet_explore(base, budget, runs=20, seed=0, prop="no_leader>5")
    assert answer.found, answer.summary()
    assert answer.scenario is not None
    assert [f["kind"] for f in answer.scenario["faults"]] == ["crash"]
    assert answer.prop == "no_leader>5"
    assert answer.threshold is None  # a crash has no magnitude to bisect
    nothing = quiet_explore(base, budget, runs=20, seed=0, prop="no_leader>30")
    assert not nothing.found


def test_a_slow_callback_stop_shrinks_to_the_slack_and_one_lost_message_is_enough() -> None:
    slack = 5.0
    base = {"nodes": 3, "duration": 80, "config": {"lease_duration": 15, "renew_deadline": 8}}
    budget = {
        "cut": {"max_duration": 30, "modes": ["both"]},
        "callback": {"max_stop_latency": 10},
        "nodes": {"min": 2, "max": 5},
    }
    answer = quiet_explore(base, budget, runs=60, seed=0)
    assert answer.found, answer.summary()
    assert answer.scenario is not None
    assert answer.found_scenario is not None
    assert answer.theory["slack_s"] == slack
    assert len(answer.scenario["nodes"]) <= len(answer.found_scenario["nodes"])
    # theory.handover_gap: the leader cut off stops S - C (+ the follower's phase, 0..I)
    # before the take-over, so the stop latency C that still overlaps lies in [S, S + I].
    stop = answer.scenario["callback"]["stop_latency"]
    assert slack - 0.01 <= stop <= slack + 2.0 + 0.1, answer.summary()
    # With C > S, a cut of any length loses a message, which stalls the round until D.
    assert answer.threshold is not None
    assert answer.threshold["kind"] == "cut"
    assert answer.threshold["value"] <= 0.01 + answer.theory["predicted"], answer.summary()


def test_failover_property_finds_a_crash_and_not_beyond_the_failover_formula() -> None:
    base = {"nodes": 3, "duration": 40}
    budget = {"crash": {}}
    slow = quiet_explore(base, budget, runs=30, seed=0, prop="failover>10")
    assert slow.found, slow.summary()
    # A crash's failover is L +- I (8..12 s) plus a round trip: never above 13 s.
    beyond = quiet_explore(base, budget, runs=30, seed=0, prop="failover>13")
    assert not beyond.found, beyond.summary()


@pytest.mark.slow
def test_quick_benchmark_runs_and_reports_its_lines() -> None:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "benchmarks" / "bench_explore.py"),
         "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "schedules/s" in done.stdout
    assert "10/2/8 pause: found after" in done.stdout
    assert "100 schedules, no failure" in done.stdout


@pytest.mark.parametrize(
    ("budget", "options", "message"),
    [
        ({"pauses": {}}, {}, "unknown key(s) ['pauses']; allowed: ["),
        ({"pause": {}}, {}, "budget.pause needs ['max_duration']"),
        ({"pause": {"max_duration": 3, "max_len": 2}}, {}, "allowed: ['max_count', "),
        ({"pause": {"max_duration": -1}}, {}, "budget.pause.max_duration must be >= 0"),
        ({"cut": {"max_duration": 3, "modes": ["x"]}}, {}, "allowed: ['request'"),
        ({"pause": {"max_duration": 3}}, {"prop": "split"}, "unknown property 'split'"),
        ({"pause": {"max_duration": 3}}, {"runs": 0}, "runs must be an integer >= 1"),
        ({"pause": {"max_duration": 3}, "window": [5, 1]}, {}, "end 1 must be after start 5"),
        ({}, {}, "budget names no fault kind"),
        ({"pause": {"max_duration": 3, "targets": ["n9"]}}, {}, "['n9'] not node(s)"),
        ({"clock_drift": {"max_ppm": 2e6}}, {}, "max_ppm must be below 1e+06"),
    ],
)
def test_a_bad_budget_is_one_line_naming_what_is_allowed(
    budget: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    options.setdefault("runs", 5)
    with pytest.raises(ConfigError) as caught:
        explore({"duration": 60}, budget, executor="serial", progress=False, **options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_cli_explore_exit_codes_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, plot = tmp_path / "found.yaml", tmp_path / "found.png"
    budget = "{pause: {max_duration: 30}}"
    found = main(
        ["explore", str(_base_file(tmp_path)), "--budget", budget,
         "--runs", "20", "--workers", "1", "--out", str(out), "--plot", str(plot)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert found == EXIT_UNSAFE, printed
    assert f"replay: leadersim simulate {out} --seed " in printed
    assert out.is_file()
    assert plot.stat().st_size > 0
    # Without --out nothing is written, and the answer says how to save what it replays.
    unsaved = main(
        ["explore", str(_base_file(tmp_path)), "--budget", budget, "--runs", "20",
         "--workers", "1"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert unsaved == EXIT_UNSAFE, printed
    assert "(not written: add --out explored.yaml" in printed
    safe = main(
        ["explore", str(_base_file(tmp_path)), "--budget", "{pause: {max_duration: 3}}",
         "--runs", "10", "--workers", "1", "--json"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert safe == EXIT_OK
    assert '"found": false' in printed
    assert '"runs": 10' in printed
    bad = main(["explore", str(_base_file(tmp_path)), "--budget", "{pause: {}}"])
    error = capsys.readouterr().err
    assert bad == EXIT_USAGE
    assert error.count("\n") == 1
    assert "needs ['max_duration']" in error


def _base_file(directory: Path) -> Path:
    path = directory / "base.yaml"
    path.write_text("nodes: 3\nduration: 40\n", encoding="utf-8")
    return path
