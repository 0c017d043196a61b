"""Fit the simulator's storage latency model to measured storage operations.

A traced storage operation (``storage_op``) carries ``sent_at``, ``arrived_at`` and
``replied_at`` on the run's true clock; a lab member traces every operation it makes
through its fault wrapper, and the simulator traces its own. The simulated server draws
one latency for the request and one for the reply and executes the operation at once, so
an operation's round trip (``replied_at - sent_at``) is the sum of two independent
draws of the one-way model. :func:`fit_latency` picks the one-way model whose two-draw
sum matches the measured round trips, per operation type, and returns it as the
``storage`` mapping of the scenario format (seconds throughout).

Only clean operations count: answered (``ok`` or ``conflict``, as seen by the caller and
as happened at the storage) and not overlapping any injected fault, whose slowness or
pause would be measured as latency. Quantiles, not moments, drive the fit, so a few
stalls (a garbage collection, an fsync) do not inflate it.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from leadersim.analysis.result import Result
from leadersim.errors import ConfigError
from leadersim.trace import EventKind, TraceEvent

__all__ = ["DISTS", "fit_latency", "fit_timers", "round_trips", "round_overheads"]

#: The one-way distributions :func:`fit_latency` can fit (the scenario format's).
DISTS = ("lognormal", "exponential", "uniform", "constant")
#: Fewest clean operations of one type for a fit of its own (``latency_by_op``).
MIN_OPS = 20
_OPS = ("get", "update", "txn")
#: Median of the sum of two unit exponentials (a gamma of shape 2): the root of
#: ``1 - e^-x (1 + x) = 1/2``.
_GAMMA2_MEDIAN = 1.6783469900166608
#: Fixed standard-normal pairs for the lognormal fit (seeded: a fit is reproducible).
_PAIRS = 4000
_LOW_Q, _HIGH_Q = 0.10, 0.90


TraceSource = Result | Sequence[TraceEvent] | str | Path


def _events(source: TraceSource | Iterable[TraceSource]) -> list[list[TraceEvent]]:
    """The traces of ``source``: a Result, a trace, a trace directory, or several."""
    if isinstance(source, Result):
        return [list(source.events)]
    if isinstance(source, str | Path):
        return [list(Result.from_trace_dir(source).events)]
    items = list(source)
    if all(isinstance(item, TraceEvent) for item in items):
        return [items]  # type: ignore[list-item]
    traces: list[list[TraceEvent]] = []
    for item in items:
        if isinstance(item, TraceEvent):
            raise ConfigError("fit_latency: a list mixes trace events with Results or traces")
        traces.extend(_events(item))
    return traces


def _fault_windows(events: Sequence[TraceEvent]) -> list[tuple[float, float]]:
    """``[start, end]`` of every injected fault on any node.

    A fault with no end event (an instant one: a crash, a restart) is a point: it
    excludes only the operations in flight at that instant.
    """
    starts: dict[tuple[object, str], float] = {}
    windows: list[tuple[float, float]] = []
    for event in events:
        key = (event.details.get("fault"), event.node)
        if event.kind is EventKind.FAULT_START:
            starts[key] = event.true_time
        elif event.kind is EventKind.FAULT_END and key in starts:
            windows.append((starts.pop(key), event.true_time))
    windows.extend((started, started) for started in starts.values())
    return windows


def round_trips(
    source: TraceSource | Iterable[TraceSource],
) -> dict[str, list[float]]:
    """Round-trip seconds of the clean storage operations of one or more traces, per op.

    Args:
        source: A :class:`~leadersim.analysis.result.Result`, a trace (a sequence of
            events), a trace directory, or a list of those.

    Returns:
        ``{"get": [...], "update": [...], ...}``: ``replied_at - sent_at`` of every
        operation answered ``ok`` or ``conflict`` outside any injected fault.
    """
    trips: dict[str, list[float]] = {}
    for events in _events(source):
        windows = _fault_windows(events)
        for event in events:
            if event.kind is not EventKind.STORAGE_OP:
                continue
            details = event.details
            seen, outcome = details.get("seen"), details.get("outcome")
            sent, replied = details.get("sent_at"), details.get("replied_at")
            if seen not in ("ok", "conflict") or outcome != seen:
                continue
            if not isinstance(sent, int | float) or not isinstance(replied, int | float):
                continue
            if any(start <= replied and sent <= end for start, end in windows):
                continue
            trips.setdefault(str(details.get("op")), []).append(float(replied) - float(sent))
    return trips


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values (linear interpolation between ranks)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _lognormal_pair_sum_shape(sigma: float, pairs: Sequence[tuple[float, float]]) -> list[float]:
    """Sorted ``e^(sigma z1) + e^(sigma z2)`` over fixed normal pairs.

    That is the two-draw sum of a unit-median lognormal (any median scales it).
    """
    return sorted(math.exp(sigma * a) + math.exp(sigma * b) for a, b in pairs)


def _fit_lognormal(trips: Sequence[float]) -> dict[str, Any]:
    """Median and sigma whose two-draw sum has the trips' median and 10-90 % spread."""
    ordered = sorted(trips)
    median = statistics.median(ordered)
    low, high = _quantile(ordered, _LOW_Q), _quantile(ordered, _HIGH_Q)
    if median <= 0 or low <= 0:
        return {"dist": "lognormal", "median_s": max(median, 0.0) / 2, "sigma": 0.0}
    target = high / low
    rng = random.Random(0)
    pairs = [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(_PAIRS)]

    def spread(sigma: float) -> float:
        shape = _lognormal_pair_sum_shape(sigma, pairs)
        return _quantile(shape, _HIGH_Q) / _quantile(shape, _LOW_Q)

    # The spread grows with sigma from 1 (sigma 0); bisect on it. Beyond sigma 4 a
    # "latency" is noise over five orders of magnitude: not a model worth fitting.
    lo, hi = 0.0, 4.0
    if spread(hi) <= target:
        lo = hi
    else:
        for _ in range(50):
            mid = (lo + hi) / 2
            if spread(mid) < target:
                lo = mid
            else:
                hi = mid
    sigma = (lo + hi) / 2 if lo != hi else lo
    scale = statistics.median(_lognormal_pair_sum_shape(sigma, pairs))
    return {"dist": "lognormal", "median_s": median / scale, "sigma": sigma}


def _fit_uniform(trips: Sequence[float]) -> dict[str, Any]:
    """Bounds whose two-draw sum has the trips' 10 and 90 % quantiles.

    The sum of two uniform draws on ``[low, high]`` is a triangle on ``[2 low, 2 high]``.
    """
    ordered = sorted(trips)
    q_low, q_high = _quantile(ordered, _LOW_Q), _quantile(ordered, _HIGH_Q)
    # A symmetric triangle of width w puts its q (< 1/2) quantile w * sqrt(q / 2) above
    # its lower end.
    offset = math.sqrt(_LOW_Q / 2)
    width = max(q_high - q_low, 0.0) / (1 - 2 * offset)
    bottom = max(q_low - width * offset, 0.0)
    return {"dist": "uniform", "low_s": bottom / 2, "high_s": (bottom + width) / 2}


def _fit(dist: str, trips: Sequence[float]) -> dict[str, Any]:
    if dist == "lognormal":
        return _fit_lognormal(trips)
    if dist == "exponential":
        return {"dist": "exponential", "mean_s": statistics.median(trips) / _GAMMA2_MEDIAN}
    if dist == "uniform":
        return _fit_uniform(trips)
    return {"dist": "constant", "value_s": statistics.median(trips) / 2}


def _rounded(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters to 4 significant digits: a fit is not more precise than that."""
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in spec.items()}


def fit_latency(
    source: TraceSource | Iterable[TraceSource],
    *,
    dist: str = "lognormal",
    by_op: bool = True,
) -> dict[str, Any]:
    """The simulator's one-way storage latency, fitted to measured storage operations.

    Each clean operation's round trip (see :func:`round_trips`) counts as the sum of two
    independent one-way draws, as in the simulated server. The fit matches the
    distribution of that sum to the measured one by quantiles: the median, and for two-
    parameter models the 10-90 % spread.

    Args:
        source: What was measured: a :class:`~leadersim.analysis.result.Result` (e.g. of
            ``leadersim.lab.run_scenario``), a trace, a trace directory, or a list of them.
        dist: The one-way model: ``lognormal`` (median and sigma), ``exponential``
            (mean), ``uniform`` (low and high) or ``constant`` (value).
        by_op: Also fit each operation type with at least :data:`MIN_OPS` clean
            operations on its own (``latency_by_op``); reads and writes differ in a real
            database.

    Returns:
        The scenario format's ``storage`` mapping, seconds: ``{"latency": {...}}`` from all
        clean operations, plus ``"latency_by_op": {"get": {...}, "update": {...}}`` if
        ``by_op``. Pass it as a scenario's ``storage`` (or ``storage=`` to ``simulate``).

    Raises:
        ConfigError: an unknown ``dist``, or fewer than :data:`MIN_OPS` clean operations.
    """
    if dist not in DISTS:
        raise ConfigError(f"fit_latency: unknown dist {dist!r}; allowed: {list(DISTS)}")
    trips = round_trips(source)
    pooled = [t for op in sorted(trips) for t in trips[op]]
    if len(pooled) < MIN_OPS:
        raise ConfigError(
            f"fit_latency: {len(pooled)} clean storage operations (storage_op events "
            f"answered ok or conflict outside any fault); at least {MIN_OPS} are needed"
        )
    storage: dict[str, Any] = {"latency": _rounded(_fit(dist, pooled))}
    if by_op:
        per_op = {
            op: _rounded(_fit(dist, trips[op])) for op in _OPS if len(trips.get(op, ())) >= MIN_OPS
        }
        if per_op:
            storage["latency_by_op"] = per_op
    return storage


#: Kinds that make a renew round unclean for :func:`round_overheads` (a retry's backoff
#: is the elector's own wait, not the process's lateness).
_RETRIED = frozenset({EventKind.CAS_CONFLICT, EventKind.STORAGE_ERROR, EventKind.RENEW_FAILED})


def round_overheads(
    source: TraceSource | Iterable[TraceSource], renew_interval: float
) -> list[float]:
    """Seconds each clean renew round of a member took beyond I and its storage trips.

    For each pair of consecutive ``renew_started`` of one member whose first round
    succeeded at its first try, outside any injected fault: the time between the two,
    minus ``renew_interval``, minus the round trips of the round's storage operations.
    What is left is the process's own time: its timer firing late, the elector's work
    between operations, tracing, a busy event loop. The simulator spends none (its
    members compute in no time), unless the scenario's ``timers.lateness`` says so.

    Args:
        source: As :func:`round_trips` (a Result, a trace, a trace directory, or several).
        renew_interval: The members' I, seconds.
    """
    overheads: list[float] = []
    for events in _events(source):
        windows = _fault_windows(events)
        rounds: dict[str, dict[str, Any]] = {}
        for event in events:
            node, kind = event.node, event.kind
            if kind is EventKind.RENEW_STARTED:
                done = rounds.get(node)
                if done is not None and done["ok"] and not done["retried"]:
                    start, end = done["start"], event.true_time
                    if not any(a <= end and start <= b for a, b in windows):
                        overheads.append(end - start - renew_interval - done["trips"])
                rounds[node] = {
                    "start": event.true_time,
                    "trips": 0.0,
                    "ok": False,
                    "retried": False,
                }
                continue
            current = rounds.get(node)
            if current is None:
                continue
            if kind is EventKind.STORAGE_OP:
                sent, replied = event.details.get("sent_at"), event.details.get("replied_at")
                if isinstance(sent, int | float) and isinstance(replied, int | float):
                    current["trips"] += float(replied) - float(sent)
                else:
                    current["retried"] = True  # unanswered: not a clean round
            elif kind is EventKind.RENEW_OK:
                current["ok"] = True
            elif kind in _RETRIED:
                current["retried"] = True
    return overheads


def fit_timers(
    source: TraceSource | Iterable[TraceSource], renew_interval: float
) -> dict[str, Any]:
    """The simulator's ``timers`` mapping, fitted to measured renew rounds.

    A constant lateness: the mean of :func:`round_overheads` (at least 0). The mean,
    because what a run's figures depend on is where a member's rounds stand when a fault
    strikes, and a member's phase drifts by the sum of its rounds' overheads: a member
    renewing every 0.25 s that spends 1.5 ms more per round than the simulated one is
    70 ms further along its interval after 12 s.

    Returns:
        ``{"lateness": {"dist": "constant", "value_s": ...}}``: pass it as a scenario's
        ``timers`` (or ``timers=`` to ``simulate``).

    Raises:
        ConfigError: fewer than :data:`MIN_OPS` clean rounds, or a bad ``renew_interval``.
    """
    if isinstance(renew_interval, bool) or not isinstance(renew_interval, int | float):
        raise ConfigError(f"fit_timers: renew_interval must be seconds, got {renew_interval!r}")
    if not renew_interval > 0:
        raise ConfigError(f"fit_timers: renew_interval must be > 0, got {renew_interval!r}")
    overheads = round_overheads(source, float(renew_interval))
    if len(overheads) < MIN_OPS:
        raise ConfigError(
            f"fit_timers: {len(overheads)} clean renew rounds (started, renewed at the first "
            f"try, outside any fault, followed by another round); at least {MIN_OPS} are needed"
        )
    mean = max(0.0, statistics.fmean(overheads))
    return {"lateness": _rounded({"dist": "constant", "value_s": mean})}
