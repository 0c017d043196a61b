"""Calibration: the simulator's latency model fitted from traces, and sim vs lab compared.

The fit is checked on simulated traces of known latency (it must recover the model it was
drawn from). The comparisons run a scenario for real (``leadersim.lab.run_scenario``: one
OS process per member on one SQLite file) and in the simulator, with the same config and
schedule, and hold the simulator to the lab's figures.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from leadersim import simulate
from leadersim.analysis import fit_latency, fit_timers
from leadersim.analysis.calibration import round_trips
from leadersim.errors import ConfigError

#: A fault-free 300-s run of 3 members: ~450 reads and ~450 writes.
_CLEAN: dict[str, Any] = {"name": "fit", "duration": 300}


def _simulated(storage: dict[str, Any], seed: int = 1, **extra: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate({**_CLEAN, "storage": storage, **extra}, seed=seed)


@pytest.mark.parametrize(
    ("model", "tolerance"),
    [
        ({"dist": "lognormal", "median_s": 0.002, "sigma": 0.4}, 0.08),
        ({"dist": "lognormal", "median_s": 0.0004, "sigma": 0.9}, 0.10),
        ({"dist": "exponential", "mean_s": 0.003}, 0.10),
        ({"dist": "uniform", "low_s": 0.001, "high_s": 0.004}, 0.10),
        ({"dist": "constant", "value_s": 0.0015}, 1e-9),
    ],
    ids=["lognormal", "lognormal-wide", "exponential", "uniform", "constant"],
)
def test_fit_recovers_the_one_way_model_a_simulated_trace_was_drawn_from(
    model: dict[str, Any], tolerance: float
) -> None:
    result = _simulated({"latency": model})
    fitted = fit_latency(result, dist=model["dist"], by_op=False)
    assert set(fitted) == {"latency"}
    got = fitted["latency"]
    assert got["dist"] == model["dist"]
    replay = f"replay: simulate({ {**_CLEAN, 'storage': {'latency': model}} }, seed=1)"
    for key, value in model.items():
        if key == "dist":
            continue
        assert got[key] == pytest.approx(value, rel=tolerance, abs=1e-5), (key, got, replay)


def test_fit_separates_reads_from_writes_and_the_fit_runs_in_the_simulator() -> None:
    read = {"dist": "lognormal", "median_s": 0.0005, "sigma": 0.3}
    write = {"dist": "lognormal", "median_s": 0.003, "sigma": 0.5}
    result = _simulated({"latency": write, "latency_by_op": {"get": read}})
    fitted = fit_latency([result])
    by_op = fitted["latency_by_op"]
    assert by_op["get"]["median_s"] == pytest.approx(0.0005, rel=0.08)
    assert by_op["update"]["median_s"] == pytest.approx(0.003, rel=0.08)
    assert by_op["get"]["sigma"] == pytest.approx(0.3, rel=0.15)
    assert by_op["update"]["sigma"] == pytest.approx(0.5, rel=0.15)
    # The fitted mapping is a storage spec the scenario format takes; a run with it has
    # round trips like the original's.
    again = _simulated(fitted, seed=2)
    for op in ("get", "update"):
        before = sorted(round_trips(result)[op])
        after = sorted(round_trips(again)[op])
        assert after[len(after) // 2] == pytest.approx(before[len(before) // 2], rel=0.1), op


def test_fit_ignores_operations_slowed_by_a_fault() -> None:
    model = {"dist": "lognormal", "median_s": 0.002, "sigma": 0.4}
    slowed = _simulated(
        {"latency": model},
        faults=[{"at": 50, "kind": "slow", "target": "all", "latency_s": 0.5, "duration": 100}],
    )
    fitted = fit_latency(slowed, by_op=False)["latency"]
    # A third of the run is 0.5 s slower per op; counting it would move the median 100x.
    assert fitted["median_s"] == pytest.approx(0.002, rel=0.1)


def test_fit_of_several_runs_pools_their_operations() -> None:
    model = {"dist": "exponential", "mean_s": 0.002}
    runs = [_simulated({"latency": model}, seed=s, duration=60) for s in range(4)]
    one = sum(len(v) for v in round_trips(runs[0]).values())
    assert sum(len(v) for v in round_trips(runs).values()) > 3 * one
    fitted = fit_latency(runs, dist="exponential", by_op=False)["latency"]
    assert fitted["mean_s"] == pytest.approx(0.002, rel=0.12)


def test_fit_refuses_an_unknown_dist_and_a_trace_without_operations() -> None:
    result = _simulated({"latency": 0.001})
    with pytest.raises(ConfigError, match=r"unknown dist 'normal'.*allowed.*lognormal"):
        fit_latency(result, dist="normal")
    with pytest.raises(ConfigError, match=r"0 clean storage operations.*at least 20"):
        fit_latency([e for e in result.events if e.kind.value != "storage_op"])


def test_fit_of_a_zero_latency_trace_is_zero_not_nan() -> None:
    fitted = fit_latency(_simulated({"latency": 0.0}), by_op=False)["latency"]
    assert fitted["median_s"] == 0.0
    assert not math.isnan(fitted["sigma"])


@pytest.mark.parametrize(
    ("lateness", "mean"),
    [
        (0.002, 0.002),
        ({"dist": "exponential", "mean_s": 0.003}, 0.003),
        ({"dist": "uniform", "low_s": 0.0, "high_s": 0.004}, 0.002),
    ],
    ids=["constant", "exponential", "uniform"],
)
def test_fit_timers_recovers_the_mean_lateness_a_simulated_trace_was_drawn_from(
    lateness: Any, mean: float
) -> None:
    result = _simulated({"latency": 0.001}, timers={"lateness": lateness})
    fitted = fit_timers(result, 2.0)["lateness"]
    assert fitted["dist"] == "constant"
    # ~450 rounds: the mean of as many draws is within a few standard errors.
    assert fitted["value_s"] == pytest.approx(mean, rel=0.15), fitted


def test_fit_timers_of_a_simulation_without_lateness_is_zero() -> None:
    # Simulated members compute in no time: beyond I, a round is its storage trips only.
    assert fit_timers(_simulated({"latency": 0.002}), 2.0) == {
        "lateness": {"dist": "constant", "value_s": 0.0}
    }


def test_a_fitted_lateness_spaces_the_simulated_rounds_as_measured() -> None:
    # What moves a member's phase over a run is how its rounds are spaced.
    slow = _simulated({"latency": 0.001}, timers={"lateness": 0.0015})
    starts = [e.true_time for e in slow.events if (e.kind.value, e.node) == ("renew_started", "n2")]
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    # I + 1.5 ms + a read and a write (4 one-way draws of 1 ms).
    assert gaps[len(gaps) // 2] == pytest.approx(2.0 + 0.0015 + 0.004, abs=1e-6)


def test_fit_timers_refuses_a_bad_interval_and_a_trace_without_rounds() -> None:
    result = _simulated({"latency": 0.001})
    with pytest.raises(ConfigError, match=r"renew_interval must be > 0"):
        fit_timers(result, 0)
    with pytest.raises(ConfigError, match=r"0 clean renew rounds.*at least 20"):
        fit_timers([e for e in result.events if e.kind.value != "renew_started"], 2.0)


# ---------------------------------------------------------------------------- compare

#: ``leader-crash`` at a fifth of its size (crash at 12 s, restart at 18 s) with I = 0.25 s
#: and D = 1.5 s set after scaling (L = 10 s * 0.2 = 2 s); 19 s of real time per run (the
#: failover is over by 15 s; the restart stays in the run).
CRASH = {
    "scale": 0.2,
    "config.renew_interval": 0.25,
    "config.renew_deadline": 1.5,
    "duration": 19,
}
#: Runs (lab) and seeds (simulator) of the crash comparison. Where the leader's renew
#: phase stands at the crash is, in both worlds, as good as uniform over I (members'
#: phases drift with every round's latency), and the failover moves with it by up to I =
#: 12 % of L: the median of 5 runs then has a standard deviation of ~2.4 % per world, so
#: two such medians differ by more than 5 % about one time in seven without any modelling
#: error. 15 runs bring it to ~1.6 % per world.
CRASH_RUNS = 15
#: ``leader-pause-longer-than-lease`` at a tenth: L = 1 s, I = 0.2 s, D = 0.8 s; the
#: leader is stopped (SIGSTOP) at 6 s for 2 s; 15 s of real time per run.
PAUSE = {"scale": 0.1, "duration": 15}


def _compare(name: str, settings: dict[str, Any], **options: Any) -> Any:
    from leadersim import compare

    comparison = compare(name, **{**settings, **options})
    print(comparison.table())  # every compared figure with its spread, in the test log
    print(json.dumps(comparison.to_dict()["fitted_latency"]))
    return comparison


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_simulated_failover_after_a_leader_crash_is_close_to_the_labs() -> None:
    comparison = _compare("leader-crash", CRASH, runs=CRASH_RUNS)
    lab, sim = comparison.lab.to_dict(), comparison.sim.to_dict()
    assert lab["runs"] == sim["runs"] == CRASH_RUNS
    # One failover per run in each world (the crash), none of them overlapping.
    assert lab["failovers"] == sim["failovers"] == CRASH_RUNS, (lab, sim)
    assert lab["overlap_max_s"] == sim["overlap_max_s"] == 0
    # A failover takes about a lease (2 s) after the last renewal the followers saw.
    assert 1.5 < lab["failover_median_s"] < 3.0, lab
    difference = comparison.relative_difference("failover_median_s")
    assert difference is not None
    # Measured sim - lab: -2.4 % and -1.0 % (15 runs) and -0.9 % (6) with the fitted timer
    # lateness (before it,
    # -1.8, -4.6, -5.2 and -8.9 %: the simulated members' phases drifted less than the
    # real ones, so the crash found their rounds elsewhere).
    assert abs(difference) <= 0.05, comparison.table()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_simulated_overlap_after_a_pause_longer_than_the_lease_is_within_10_percent() -> None:
    comparison = _compare("leader-pause-longer-than-lease", PAUSE, runs=5)
    lab, sim = comparison.lab.to_dict(), comparison.sim.to_dict()
    # The paused leader acts again for a while after it wakes, beside its successor: an
    # overlap of about a second in each world. (Not in every lab run: on a loaded host a
    # follower's round can come late enough that nobody takes over within the 2-s pause;
    # seen once in 5 runs while other test runs shared the 2 cores.)
    assert lab["overlap_median_s"] > 0.5, lab
    assert sim["overlap_min_s"] > 0.5, sim
    difference = comparison.relative_difference("overlap_median_s")
    assert difference is not None
    assert abs(difference) <= 0.10, comparison.table()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compare_cli_prints_one_json_object_with_both_worlds(tmp_path: Path) -> None:
    # leader-crash at a twentieth: L = 0.5 s, crash at 3 s; two 6-s real runs.
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "leadersim",
            "compare",
            "leader-crash",
            "--scale",
            "0.05",
            "--set",
            "duration=6",
            "--runs",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["scenario"] == "leader-crash"
    assert report["runs"] == 2
    for world in ("lab", "sim"):
        figures = report[world]
        assert figures["runs"] == 2
        assert figures["failovers"] == 2, figures
        for key in ("failover", "no_leader", "overlap"):
            assert figures[f"{key}_min_s"] <= figures[f"{key}_median_s"] <= figures[f"{key}_max_s"]
        assert figures["stale_writes_median"] == 0
    assert report["fitted_latency"]["latency"]["dist"] == "lognormal"
    # Progress on stderr, one line per run of each world.
    assert child.stderr.count("lab run ") == 2
    assert child.stderr.count("sim seed ") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "0"], "argument --runs: give at least 1 run, got 0"),
        (["--scale", "0"], "leadersim compare: scale must be a finite number > 0, got 0.0"),
        (["--set", "nodes=0"], "leadersim compare: nodes must be >= 1, got 0"),
        (
            ["--set", 'faults=[{"at": 1, "kind": "clock_drift", "target": "n1", "ppm": 500}]'],
            "kind 'clock_drift' cannot run in the real lab: a real clock's rate cannot be changed",
        ),
    ],
    ids=["runs", "scale", "override", "not-real"],
)
def test_compare_cli_refuses_bad_input_in_one_line_before_running_anything(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from leadersim.cli import EXIT_USAGE, main

    try:
        code = main(["compare", "leader-crash", *args])
    except SystemExit as exc:  # argparse's own refusal (with its usage lines)
        code = exc.code  # type: ignore[assignment]
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err, err
    assert "lab run" not in err
    assert "Traceback" not in err


def test_compare_refuses_a_run_count_below_one() -> None:
    from leadersim import compare

    with pytest.raises(ConfigError, match=r"runs must be a whole number >= 1, got 0"):
        compare("leader-crash", runs=0)


def test_world_figures_pool_failovers_and_spread_per_run() -> None:
    from leadersim.comparison import WorldFigures

    results = [simulate("leader-crash", seed=s) for s in (0, 1, 2)]
    figures = WorldFigures.of(results, [0, 1, 2]).to_dict()
    failovers = [f for r in results for f in r.verdict.failover_s]
    assert figures["failovers"] == len(failovers) == 3
    assert figures["failover_median_s"] == sorted(failovers)[1]
    assert figures["failover_min_s"] == min(failovers)
    assert figures["no_leader_all_s"] == [r.verdict.no_leader_s for r in results]
    assert figures["overlap_max_s"] == 0
    assert figures["seeds"] == [0, 1, 2]
    json.dumps(figures)  # JSON-ready
