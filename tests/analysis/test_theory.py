"""The timing theory: slack, the safe condition, boundaries, failover estimates."""

from __future__ import annotations

import numpy as np
import pytest

from leadersim.analysis import theory
from leadersim.experiment import simulate


def test_the_reference_defaults_have_zero_slack_and_any_delay_makes_them_unsafe() -> None:
    assert theory.slack(10, 2, 8) == 0
    assert theory.slack(15, 2, 8) == 5
    assert not theory.is_safe(10, 2, 8)
    assert not theory.is_safe(10, 2, 8, stop_latency=0.1)
    assert theory.is_safe(15, 2, 8, delta_resp=0.01, stop_latency=0.1, rho=5e-4)


def test_the_margin_subtracts_every_bound_from_the_slack() -> None:
    margin = theory.margin(15, 2, 8, delta_resp=0.5, stop_latency=1.0, pause=2.0, rho=0.01)
    assert margin == pytest.approx(5 - (0.5 + 1.0 + 2.0 + 0.01 * 25))
    bounds = theory.FaultBounds(delta_resp=0.5, stop_latency=1.0, pause=2.0, rho=0.01)
    assert theory.margin(15, 2, 8, bounds=bounds) == pytest.approx(margin)
    # a pause beyond the slack leaves an overlap of the excess at worst
    assert theory.worst_overlap(15, 2, 8, pause=7.0) == pytest.approx(2.0)
    assert theory.worst_overlap(15, 2, 8, pause=3.0) == 0


def test_the_theory_works_elementwise_on_a_lease_by_deadline_grid() -> None:
    lease, deadline = np.meshgrid([10.0, 12.0, 14.0], [4.0, 8.0])
    safe = theory.is_safe(lease, 2.0, deadline, stop_latency=3.0)
    assert safe.tolist() == [[True, True, True], [False, False, True]]
    overlap = theory.worst_overlap(lease, 2.0, deadline, stop_latency=3.0)
    assert overlap.tolist() == [[0.0, 0.0, 0.0], [3.0, 1.0, 0.0]]


def test_on_the_predicted_boundary_the_margin_is_zero() -> None:
    bounds = theory.FaultBounds(delta_resp=0.02, stop_latency=0.5, pause=1.0, rho=1e-3)
    leases = np.array([10.0, 13.0, 30.0])
    deadlines = theory.boundary_deadline(leases, 2.0, bounds=bounds)
    assert theory.margin(leases, 2.0, deadlines, bounds=bounds) == pytest.approx(0.0, abs=1e-12)
    assert theory.boundary_lease(deadlines, 2.0, bounds=bounds) == pytest.approx(leases)
    # and just inside the boundary is safe, just outside is not
    assert theory.is_safe(leases, 2.0, deadlines - 0.01, bounds=bounds).all()
    assert not theory.is_safe(leases, 2.0, deadlines + 0.01, bounds=bounds).any()


def test_failover_estimates_follow_the_cases_of_the_spec() -> None:
    assert tuple(theory.failover_time("crash", 10, 2, 8)) == (8, 10, 12)  # "8-12 s"
    low, _, high = theory.failover_time("release", 10, 2, 8)
    assert (low, high) == (0, 2)  # "≤ about I"
    assert tuple(theory.failover_time("new_ids", 10, 2)) == (10, 11, 12)
    assert theory.failover_time("crash", 10, 2, round_trip=0.05).high == pytest.approx(12.05)
    gap = theory.handover_gap(10, 2, 8, stop_latency=2.0)
    assert (gap.low, gap.high) == (-2.0, 0.0)  # negative: an overlap of up to C - S
    with pytest.raises(ValueError, match="cases: crash, pause, storage, release, new_ids"):
        theory.failover_time("meteor", 10, 2, 8)


@pytest.mark.parametrize("seed", range(5))
def test_a_simulated_crash_fails_over_within_the_predicted_range(seed: int) -> None:
    result = simulate("leader-crash", seed=seed)
    estimate = theory.failover_time("crash", 10.0, 2.0, 8.0, round_trip=0.5)

    [failover] = result.failovers().to_dict("records")
    assert failover["cause"] == "crash"
    assert estimate.low <= failover["failover_s"] <= estimate.high


def test_breaking_threshold_of_a_pause_at_the_reference_defaults_is_inside_a_round() -> None:
    # 10/2/8 leaves no slack: a pause inside a renew round breaks safety once it outlasts
    # D - w, w the first retry's backoff (I/2 = 1 s up to D/2 = 4 s): 4..7 s, not L - I.
    rule = theory.breaking_threshold("pause", "duration", 10, 2, 8, stop_latency=0.1)
    assert rule.predicted == pytest.approx(4.0)
    assert rule.predicted_range == pytest.approx((4.0, 7.0))
    assert rule.formula is not None
    assert rule.formula.startswith("P > D - w")
    # With slack to spare, only a pause between rounds that outlasts the take-over does.
    roomy = theory.breaking_threshold("pause", "duration", 20, 2, 8, stop_latency=0.1)
    assert roomy.predicted == pytest.approx(18.0)
    assert roomy.predicted_range is None


def test_breaking_threshold_of_cuts_drift_and_slow_stops_follows_the_slack() -> None:
    assert theory.breaking_threshold("cut", "duration", 10, 2, 8, stop_latency=0.1).predicted == 0
    assert theory.breaking_threshold("cut", "duration", 20, 2, 8).predicted is None
    drift = theory.breaking_threshold("clock_drift", "ppm", 30, 2, 8, stop_latency=0.1)
    assert drift.predicted == pytest.approx(1e6 * 19.9 / 40)
    stop = theory.breaking_threshold("callback", "stop_latency", 30, 2, 8)
    assert stop.predicted == pytest.approx(20.0)
    assert theory.breaking_threshold("slow", "latency_s", 10, 2, 8).formula is None
