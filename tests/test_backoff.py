"""The retry backoff is the reference's "decorrelated jitter", draw for draw in distribution.

The pure formula (``retry_delay_ms``) is checked over many seeded draws against its
exact distribution, computed here by summing over every value the two uniform draws can
take; the elector's wiring is checked in the simulator (deterministic, so no real time).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from fractions import Fraction

import pytest

from leadersim import EventKind, simulate
from leadersim.elector import backoff_limits_ms, retry_delay_ms

DRAWS = 20_000


def exact_mean_ms(attempt: int, base: int, cap: int) -> Fraction:
    """E[delay] of retry ``attempt``, by summing over the two uniform whole-ms draws.

    ``temp`` = max(1, trunc(min(cap, base*2^attempt)/2)); ``k`` uniform in 0..temp-1 gives
    ``sleep = 3(temp + k)``; ``j`` uniform in 0..sleep-1 gives ``min(cap, base + j)``.
    For one ``sleep`` the ``m`` values of ``j`` below ``cap - base`` give ``base + j`` and
    the rest give ``cap``: a closed-form inner sum.
    """
    temp = max(1, int(min(cap, base * 2**attempt) / 2))
    total = Fraction(0)
    for k in range(temp):
        sleep = 3 * (temp + k)
        m = min(max(cap - base, 0), sleep)
        inner = m * base + m * (m - 1) // 2 + (sleep - m) * cap
        total += Fraction(inner, sleep)
    return total / temp


@pytest.mark.parametrize(
    ("interval", "deadline", "attempt"),
    [
        (0.25, 1.5, 1),  # the calibration config: 125-750 ms
        (0.25, 1.5, 2),
        (0.25, 1.5, 4),
        (2.0, 8.0, 1),  # catalogue defaults: 1-4 s
        (2.0, 8.0, 2),
        (2.0, 8.0, 3),
        (0.1, 0.9, 5),  # the reference tests' config
    ],
)
def test_retry_delay_has_the_reference_range_and_mean_per_attempt(
    interval: float, deadline: float, attempt: int
) -> None:
    base, cap = backoff_limits_ms(interval, deadline, deadline)
    seed = 1000 * attempt + int(interval * 1000)
    rng = random.Random(seed)
    draws = [retry_delay_ms(attempt, base, cap, rng) for _ in range(DRAWS)]
    replay = f"replay: random.Random({seed}), retry_delay_ms({attempt}, {base}, {cap}, rng)"
    assert all(isinstance(d, int) for d in draws), replay
    assert base <= min(draws), (min(draws), replay)
    assert max(draws) <= cap, (max(draws), replay)
    # The whole range is reached: the lowest draws sit at the base, the highest at the cap
    # (each has a probability of a few per mille or more per draw, so 20 000 draws hit it).
    assert min(draws) <= base + (cap - base) // 50, replay
    assert max(draws) == cap, replay
    expected = float(exact_mean_ms(attempt, base, cap))
    error = 4 * statistics.stdev(draws) / math.sqrt(DRAWS)  # 4 standard errors
    assert abs(statistics.fmean(draws) - expected) < error, (
        statistics.fmean(draws),
        expected,
        replay,
    )


def test_first_retry_at_quarter_second_interval_waits_125_to_750_ms_not_125_to_250() -> None:
    base, cap = backoff_limits_ms(0.25, 1.5, 1.5)
    assert (base, cap) == (125, 750)
    rng = random.Random(7)
    draws = [retry_delay_ms(1, base, cap, rng) for _ in range(DRAWS)]
    # The port it replaces waited 125-250 ms here (mean 187.5); the reference waits
    # longer most of the time: its mean is 403.8 ms, and P(delay > 250 ms) = 0.766
    # (exact, from the two uniform draws; +-0.012 is 4 standard errors at 20 000 draws).
    assert float(exact_mean_ms(1, 125, 750)) == pytest.approx(403.85, abs=0.01)
    assert sum(d > 250 for d in draws) / DRAWS == pytest.approx(0.766, abs=0.012)


def test_same_seed_same_delays_and_different_seeds_differ() -> None:
    def delays(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [retry_delay_ms(a, 125, 750, rng) for a in range(1, 30)]

    assert delays(3) == delays(3)
    assert delays(3) != delays(4)


def test_limits_are_whole_ms_halves_with_the_cap_limited_by_the_time_left_and_defaults() -> None:
    # A renew: the deadline is D itself, so its half is the cap (a real clock has used a
    # few microseconds by then, which truncates to 749 ms as in the reference).
    assert backoff_limits_ms(0.25, 1.5, 1.5) == (125, 750)
    assert backoff_limits_ms(0.25, 1.5, 1.4999) == (125, 749)
    # A release (5 s timeout) under the catalogue defaults: cap min(4000, 2500).
    assert backoff_limits_ms(2.0, 8.0, 5.0) == (1000, 2500)
    assert backoff_limits_ms(2.0, 8.0, None) == (1000, 4000)
    # Durations go through whole nanoseconds, so 0.29 s is 290 ms (not 289.99...).
    assert backoff_limits_ms(0.29, 0.58, None) == (145, 290)
    # Values that truncate to 0 fall back to the retry package's defaults, 10 / 100 ms.
    assert backoff_limits_ms(0.001, 0.001, None) == (10, 100)


def test_cap_below_base_waits_the_cap() -> None:
    rng = random.Random(1)
    assert {retry_delay_ms(a, 500, 300, rng) for a in range(1, 50)} == {300}


def test_very_late_retry_numbers_do_not_overflow() -> None:
    delay = retry_delay_ms(5000, 125, 750, random.Random(0))
    assert 125 <= delay <= 750


def test_simulated_elector_retries_with_whole_ms_waits_spanning_base_to_cap() -> None:
    # n2's storage fails for 40 s: each renew round of n2 retries until D runs out.
    scenario = {
        "name": "backoff",
        "config": {"lease_duration": 2.0, "renew_interval": 0.25, "renew_deadline": 1.5},
        "faults": [{"at": 5, "kind": "error", "target": "n2", "after_s": 0, "duration": 40}],
        "duration": 50,
    }
    result = simulate(scenario, seed=11)
    errors = [
        e for e in result.events if e.kind == EventKind.STORAGE_ERROR.value and e.node == "n2"
    ]
    waits = [
        round((b.true_time - a.true_time) * 1000, 6)
        for a, b in itertools.pairwise(errors)
        if int(b.details["attempt"] or 0) == int(a.details["attempt"] or 0) + 1
        and int(a.details["attempt"] or 0) == 1
    ]
    replay = "replay: simulate(scenario, seed=11)"
    assert len(waits) >= 20, (len(waits), replay)
    # Wait = backoff + the failing op's round trip, which this fault makes instant, so each
    # wait is a whole number of ms between the base and the cap.
    assert all(w == int(w) for w in waits), (waits, replay)
    assert all(125 <= w <= 750 for w in waits), (waits, replay)
    assert max(waits) > 250, (waits, replay)  # beyond the old 125-250 ms range
    assert simulate(scenario, seed=11).to_jsonl() == result.to_jsonl()
