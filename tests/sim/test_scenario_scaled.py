"""Scenario.scaled and simulate(scale=): every time of a scenario multiplied at once."""

from __future__ import annotations

import math
import warnings

import pytest

from leadersim.errors import ConfigError
from leadersim.experiment import prepare_scenario, simulate
from leadersim.sim.scenario import CallbackSpec, Scenario


def rich_scenario() -> Scenario:
    return Scenario.from_mapping(
        {
            "nodes": 3,
            "config": {"lease_duration": 15, "renew_interval": 2, "renew_deadline": 8},
            "nodes_config": {"n2": {"lease_duration": 20, "stop_before_release": True}},
            "callback": {"stop_latency": 2, "writes_per_s": 4, "prepare_s": 0.5},
            "storage": {
                "latency": {"dist": "lognormal", "median_s": 0.01, "sigma": 0.7},
                "latency_by_op": {"txn": {"dist": "uniform", "low_s": 0.002, "high_s": 0.004}},
            },
            "clocks": {"n3": {"drift_ppm": 500, "wall_offset": 10}},
            "faults": [
                {"at": 60, "kind": "pause", "target": "leader", "duration": 20},
                {"at": 70, "kind": "slow", "target": "all", "latency_s": 5, "duration": 10},
                {"at": 80, "kind": "ambiguous", "target": "n1", "delay_s": 3},
                {"at": 90, "kind": "busy", "target": "n2", "rate": 0.5, "duration": 4},
                {"at": 95, "kind": "cut", "target": "n3", "duration": 6, "mode": "reply"},
            ],
            "duration": 300,
            "start_stagger": 1,
            "start_jitter": 2,
        }
    )


def test_scaled_multiplies_every_time_and_divides_the_write_rate() -> None:
    scaled = rich_scenario().scaled(0.1)
    assert scaled.duration == pytest.approx(30)
    assert (scaled.start_stagger, scaled.start_jitter) == pytest.approx((0.1, 0.2))
    assert dict(scaled.config) == pytest.approx(
        {"lease_duration": 1.5, "renew_interval": 0.2, "renew_deadline": 0.8}
    )
    assert scaled.nodes_config["n2"]["lease_duration"] == pytest.approx(2.0)
    assert scaled.nodes_config["n2"]["stop_before_release"] is True
    callback = scaled.callback
    assert isinstance(callback, CallbackSpec)
    assert (callback.stop_latency, callback.prepare_s) == pytest.approx((0.2, 0.05))
    assert callback.writes_per_s == pytest.approx(40)  # as many writes per lease as before
    assert scaled.storage.latency.median_s == pytest.approx(0.001)
    assert scaled.storage.latency.sigma == 0.7  # a shape, not a time
    txn = dict(scaled.storage.latency_by_op)["txn"]
    assert (txn.low_s, txn.high_s) == pytest.approx((0.0002, 0.0004))
    assert scaled.clocks["n3"] == pytest.approx({"drift_ppm": 500, "wall_offset": 1.0})
    faults = [f.to_dict() for f in scaled.faults]
    assert [f["at"] for f in faults] == pytest.approx([6, 7, 8, 9, 9.5])
    assert faults[0]["duration"] == pytest.approx(2)
    assert (faults[1]["latency_s"], faults[1]["duration"]) == pytest.approx((0.5, 1))
    assert faults[2]["delay_s"] == pytest.approx(0.3)
    assert (faults[3]["rate"], faults[3]["duration"]) == pytest.approx((0.5, 0.4))
    assert faults[4]["mode"] == "reply"
    assert [f["target"] for f in faults] == ["leader", "all", "n1", "n2", "n3"]


def test_scaled_writes_out_the_elector_defaults_it_scales() -> None:
    scaled = Scenario.from_mapping({"nodes": 2, "duration": 100}).scaled(0.5)
    assert dict(scaled.config) == pytest.approx(
        {"lease_duration": 5.0, "renew_interval": 1.0, "renew_deadline": 4.0}
    )


@pytest.mark.parametrize("factor", [0, -1, math.nan, math.inf, "0.1", True])
def test_scaled_refuses_a_factor_that_is_not_a_positive_finite_number(factor: object) -> None:
    with pytest.raises(ConfigError, match=r"scale must be a finite number > 0"):
        rich_scenario().scaled(factor)  # type: ignore[arg-type]


def test_scaled_by_one_is_the_same_scenario() -> None:
    scenario = rich_scenario()
    assert scenario.scaled(1.0) is scenario


def test_a_scaled_simulation_shows_the_same_story_in_scaled_time() -> None:
    # Deterministic latencies, so the only difference is the time scale.
    spec = {"storage.latency": {"dist": "constant", "value_s": 0.01}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = simulate("leader-crash", seed=3, **spec).summary()
        tenth = simulate("leader-crash", seed=3, scale=0.1, **spec).summary()
    assert tenth["leader_changes"] == full["leader_changes"] == 1
    assert tenth["overlap_s"] == full["overlap_s"] == 0
    assert isinstance(full["failover_s"], float)
    assert isinstance(tenth["failover_s"], float)
    assert tenth["failover_s"] == pytest.approx(full["failover_s"] / 10, rel=0.05)


def test_overrides_apply_after_scaling() -> None:
    scenario = prepare_scenario(
        "leader-crash", scale=0.1, overrides={"config.renew_deadline": 0.5, "duration": 8}
    )
    assert scenario.config["renew_deadline"] == 0.5  # as given, not scaled
    assert scenario.config["lease_duration"] == pytest.approx(1.0)
    assert scenario.duration == 8
    # The restart at 9 s (90 s scaled) falls after the shortened end: left out.
    assert [f.kind for f in scenario.faults] == ["crash"]


def test_scaled_multiplies_the_timers_lateness() -> None:
    spec = {"timers": {"lateness": {"dist": "uniform", "low_s": 0.001, "high_s": 0.003}}}
    scaled = Scenario.from_mapping(spec).scaled(0.5).to_mapping()["timers"]
    assert scaled == {"lateness": {"dist": "uniform", "low_s": 0.0005, "high_s": 0.0015}}
