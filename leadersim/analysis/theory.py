"""The timing theory beside the measurement (see docs/theory.md).

Symbols, all durations in seconds: ``L`` the lease, ``I`` the renew interval, ``D`` the
renew deadline; the fault bounds ``delta_resp`` (commit of the leader's last good
renewal to the leader handling its reply), ``C`` (callback stop latency), ``P`` (a pause
of the leader inside its stop path) and ``rho`` (the largest clock-rate error, no unit).

- slack ``S = L - I - D``;
- first-order safe condition ``delta_resp + C + P + rho*(L + I + D) < S``;
- margin = ``S - (delta_resp + C + P + rho*(L + I + D))``: positive is safe, its
  negative is the worst-case overlap (:func:`worst_overlap`);
- expected failover time per case (:func:`failover_time`).

Every function is plain arithmetic, so it takes floats or whole numpy arrays / pandas
Series (broadcasting), e.g. a lease x deadline grid for a predicted boundary
(:func:`boundary_deadline`, :func:`boundary_lease`). The bound is the worst case: real
runs get accidental slack (a follower notices a renewal only when its own read returns
and prunes only at its next round), so a measured unsafe region lies inside the
predicted one, near its edge.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

__all__ = [
    "FAILOVER_CASES",
    "FailoverEstimate",
    "FaultBounds",
    "boundary_deadline",
    "boundary_lease",
    "failover_time",
    "handover_gap",
    "is_safe",
    "margin",
    "ThresholdPrediction",
    "breaking_threshold",
    "slack",
    "worst_overlap",
]

#: A float, a numpy array or a pandas Series: anything with arithmetic.
Num = Any


@dataclasses.dataclass(frozen=True, slots=True)
class FaultBounds:
    """Bounds on what can delay the leader's stop (seconds; ``rho`` without unit).

    Attributes:
        delta_resp: Commit of the last good renewal to the leader handling its reply.
        stop_latency: ``C``, cancel to the callback's work really stopped.
        pause: ``P``, a process pause of the leader within its stop path.
        rho: Largest clock-rate error of any node (2e-5 quartz, 5e-4 NTP slew).
    """

    delta_resp: float = 0.0
    stop_latency: float = 0.0
    pause: float = 0.0
    rho: float = 0.0

    def total(self, lease_duration: Num, renew_interval: Num, renew_deadline: Num) -> Num:
        """``delta_resp + C + P + rho*(L + I + D)``: what the slack must exceed."""
        return (
            self.delta_resp
            + self.stop_latency
            + self.pause
            + self.rho * (lease_duration + renew_interval + renew_deadline)
        )


def _bounds(
    bounds: FaultBounds | None,
    delta_resp: float,
    stop_latency: float,
    pause: float,
    rho: float,
) -> FaultBounds:
    if bounds is not None:
        return bounds
    return FaultBounds(delta_resp, stop_latency, pause, rho)


def slack(lease_duration: Num, renew_interval: Num, renew_deadline: Num) -> Num:
    """``S = L - I - D`` in seconds (0 with the 10/2/8 defaults)."""
    return lease_duration - renew_interval - renew_deadline


def margin(
    lease_duration: Num,
    renew_interval: Num,
    renew_deadline: Num,
    *,
    delta_resp: float = 0.0,
    stop_latency: float = 0.0,
    pause: float = 0.0,
    rho: float = 0.0,
    bounds: FaultBounds | None = None,
) -> Num:
    """``S - (delta_resp + C + P + rho*(L + I + D))`` in seconds: > 0 is safe.

    ``bounds`` replaces the four keyword bounds when given.
    """
    b = _bounds(bounds, delta_resp, stop_latency, pause, rho)
    return slack(lease_duration, renew_interval, renew_deadline) - b.total(
        lease_duration, renew_interval, renew_deadline
    )


def is_safe(
    lease_duration: Num,
    renew_interval: Num,
    renew_deadline: Num,
    *,
    delta_resp: float = 0.0,
    stop_latency: float = 0.0,
    pause: float = 0.0,
    rho: float = 0.0,
    bounds: FaultBounds | None = None,
) -> Any:
    """The first-order safe condition ``delta_resp + C + P + rho*(L+I+D) < S``.

    A bool for scalars, a boolean array for arrays.
    """
    b = _bounds(bounds, delta_resp, stop_latency, pause, rho)
    return margin(lease_duration, renew_interval, renew_deadline, bounds=b) > 0


def worst_overlap(
    lease_duration: Num,
    renew_interval: Num,
    renew_deadline: Num,
    *,
    delta_resp: float = 0.0,
    stop_latency: float = 0.0,
    pause: float = 0.0,
    rho: float = 0.0,
    bounds: FaultBounds | None = None,
) -> Num:
    """The largest acting overlap at one hand-over the bound allows: ``max(0, -margin)``."""
    b = _bounds(bounds, delta_resp, stop_latency, pause, rho)
    m = -margin(lease_duration, renew_interval, renew_deadline, bounds=b)
    return m * (m > 0)  # max(0, m) that also works element-wise


def boundary_deadline(
    lease_duration: Num,
    renew_interval: float,
    *,
    delta_resp: float = 0.0,
    stop_latency: float = 0.0,
    pause: float = 0.0,
    rho: float = 0.0,
    bounds: FaultBounds | None = None,
) -> Num:
    """The renew deadline at which the margin is 0, for each lease: safe below it.

    Solves ``L - I - D = delta_resp + C + P + rho*(L + I + D)`` for ``D``.
    """
    b = _bounds(bounds, delta_resp, stop_latency, pause, rho)
    fixed = b.delta_resp + b.stop_latency + b.pause
    return (lease_duration * (1 - b.rho) - renew_interval * (1 + b.rho) - fixed) / (1 + b.rho)


def boundary_lease(
    renew_deadline: Num,
    renew_interval: float,
    *,
    delta_resp: float = 0.0,
    stop_latency: float = 0.0,
    pause: float = 0.0,
    rho: float = 0.0,
    bounds: FaultBounds | None = None,
) -> Num:
    """The lease at which the margin is 0, for each deadline: safe above it."""
    b = _bounds(bounds, delta_resp, stop_latency, pause, rho)
    fixed = b.delta_resp + b.stop_latency + b.pause
    return (renew_deadline * (1 + b.rho) + renew_interval * (1 + b.rho) + fixed) / (1 - b.rho)


class FailoverEstimate(NamedTuple):
    """Expected failover time in seconds: a range and a central value."""

    low: Any
    expected: Any
    high: Any


#: The cases of :func:`failover_time` (docs/theory.md).
FAILOVER_CASES = ("crash", "pause", "storage", "release", "new_ids")


def failover_time(
    case: str,
    lease_duration: Num,
    renew_interval: Num,
    renew_deadline: Num | None = None,
    *,
    round_trip: float = 0.0,
) -> FailoverEstimate:
    """Expected time from the fault to the next callback start on another node.

    Cases (docs/theory.md):

    - ``crash`` (the leader dies without releasing), ``pause`` (it freezes for longer
      than its lease) and ``storage`` (it is alive but cut off from the store): a
      follower takes over once the lease runs out on its own clock, counted from the
      last renewal it saw, which is up to one round old, at its next round:
      ``L ± I`` (8-12 s with 10/2/8);
    - ``release`` (graceful shutdown or resign): the next follower round finds the slot
      empty: ``0 .. I``;
    - ``new_ids`` (every member replaced by one with a new id; counted from the
      newcomers' start): they wait a full lease before pruning the old entries:
      ``L .. L + I``.

    ``round_trip`` (a storage read plus write) is added to every bound: the new leader
    still has to read and write the record. ``renew_deadline`` is accepted for symmetry
    (no case depends on it).

    Raises:
        ValueError: an unknown case (the message lists the cases).
    """
    del renew_deadline
    lease, interval = lease_duration, renew_interval
    if case in ("crash", "pause", "storage"):
        low, expected, high = lease - interval, lease, lease + interval
    elif case == "release":
        zero = 0.0 * lease  # an array of zeros for an array of leases
        low, expected, high = zero, zero + interval / 2, zero + interval
    elif case == "new_ids":
        low, expected, high = lease, lease + interval / 2, lease + interval
    else:
        raise ValueError(f"unknown failover case {case!r}; cases: {', '.join(FAILOVER_CASES)}")
    return FailoverEstimate(low + round_trip, expected + round_trip, high + round_trip)


def handover_gap(
    lease_duration: Num,
    renew_interval: Num,
    renew_deadline: Num,
    *,
    stop_latency: float = 0.0,
    delta_resp: float = 0.0,
) -> FailoverEstimate:
    """No-leader time when the leader is alive but loses the store (seconds).

    The leader stops acting ``delta_resp + I + D + C`` after the commit of its last good
    renewal; a follower starts ``L`` to ``L + I`` after it (it saw that renewal up to one
    round late). So the gap is ``S - C - delta_resp`` plus the follower's phase
    (``0 .. I``); a negative value is an acting overlap of that length.
    """
    base = slack(lease_duration, renew_interval, renew_deadline) - stop_latency - delta_resp
    return FailoverEstimate(base, base + renew_interval / 2, base + renew_interval)


class ThresholdPrediction(NamedTuple):
    """The theory's smallest fault that breaks safety (see :func:`breaking_threshold`).

    Attributes:
        predicted: The threshold in the parameter's unit (seconds, ppm), or ``None`` when
            the theory predicts no break from this fault alone.
        predicted_range: ``(low, high)`` when the threshold depends on a seeded draw (the
            backoff's wait), else ``None``.
        formula: The rule, in words, with its symbols.
    """

    predicted: float | None
    predicted_range: tuple[float, float] | None
    formula: str | None


def breaking_threshold(
    kind: str,
    param: str,
    lease_duration: float,
    renew_interval: float,
    renew_deadline: float,
    *,
    stop_latency: float = 0.0,
) -> ThresholdPrediction:
    """The smallest fault of ``kind`` (its ``param``) that lets two leaders act at once.

    One fault alone, on the leader, at its worst phase:

    - ``pause``/``duration``: a pause between renew rounds must outlast the take-over, at
      the earliest ``L - I`` after it began. With no margin left (``S - C <= 0``), a pause
      inside a renew round can do with less: the leader wakes to a conflict and waits its
      first retry's backoff ``w`` (base ``I/2`` up to cap ``D/2``, the elector's own
      limits); past ``D`` the round fails and the leader stops ``C`` later, after the
      take-over. So ``P > D - w``, from ``D - D/2`` (the unluckiest draw) up.
    - ``cut``/``duration``: any cut when the hand-over gap is negative at the worst phase
      (one lost message stalls a round until ``D``), none otherwise.
    - ``clock_drift``/``ppm``: ``rho (L + I + D) > S - C``.
    - ``callback``/``stop_latency``: ``C > S``.

    Any other pair: no rule (all fields ``None``).
    """
    from leadersim.elector import backoff_limits_ms  # the elector's one backoff rule

    lease, interval, deadline = lease_duration, renew_interval, renew_deadline
    stop = stop_latency
    if (kind, param) == ("pause", "duration"):
        between = failover_time("pause", lease, interval).low
        if margin(lease, interval, deadline, stop_latency=stop) <= 0:
            base_ms, cap_ms = backoff_limits_ms(interval, deadline, deadline)
            inside = deadline - cap_ms / 1000
            if inside < between:
                return ThresholdPrediction(
                    inside,
                    (inside, min(between, deadline - base_ms / 1000)),
                    "P > D - w: paused inside a renew round, the leader wakes to a conflict "
                    "and waits its first retry's backoff w (from the base I/2 up to the cap "
                    "D/2, a seeded draw); when that runs past D the round fails and the "
                    "leader stops C later, which the margin S - C <= 0 puts after the "
                    "take-over. Predicted: the unluckiest draw, w = D/2",
                )
        return ThresholdPrediction(
            between,
            None,
            "P > L - I: a pause between renew rounds must outlast the take-over, at the "
            "earliest L - I after it began (failover 'pause' low bound)",
        )
    if (kind, param) == ("cut", "duration"):
        gap = handover_gap(lease, interval, deadline, stop_latency=stop)
        if gap.low < 0:
            return ThresholdPrediction(
                0.0,
                None,
                "any cut: one lost message stalls the leader's renew round until its "
                "deadline D, and the leader stops C later; with S - C < 0 (handover gap "
                f"{gap.low:g} s at the worst phase) that is after the take-over",
            )
        return ThresholdPrediction(
            None, None, f"no overlap from a cut alone: S - C = {gap.low:g} s >= 0 (handover_gap)"
        )
    if (kind, param) == ("clock_drift", "ppm"):
        return ThresholdPrediction(
            1e6 * max(0.0, slack(lease, interval, deadline) - stop) / (lease + interval + deadline),
            None,
            "rho*(L + I + D) > S - C (rho in ppm x 1e-6)",
        )
    if (kind, param) == ("callback", "stop_latency"):
        return ThresholdPrediction(
            max(0.0, slack(lease, interval, deadline)), None, "C > S = L - I - D"
        )
    return ThresholdPrediction(None, None, None)
