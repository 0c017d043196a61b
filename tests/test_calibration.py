"""Calibration: the simulator's latency model fitted from traces, and sim vs lab compared.

The fit is checked on simulated traces of known latency (it must recover the model it was
drawn from). The comparisons run a scenario for real (``leadersim.lab.run_scenario``: one
OS process per member on one SQLite file) and in the simulator, with the same config and
schedule, and hold the simulator to the lab's figures.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

from leadersim import simulate
from leadersim.analysis import fit_latency
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
