"""Find the smallest fault schedule that breaks a property, and its threshold.

:func:`explore` answers the operator's question the other way round from
:func:`~leadersim.simulate`: given a configuration (the *base* scenario) and a *budget* of
what the environment may do (pauses up to 30 s, cuts, slow replies, clock drift, a slow
callback stop, a node count), can a property break — two leaders acting at once by
default — and what is the smallest schedule that breaks it?

It works in three steps, every run deterministic (a scenario mapping and a seed):

1. **Search**: random schedules within the budget, schedule ``i`` drawn from a generator
   seeded by ``(seed, i)``, run in batches through any :class:`concurrent.futures.Executor`
   with the sweep's worker function (:func:`leadersim.sweep.sweep` runs the same one); the
   first failing schedule in index order wins, so a parallel search gives the serial
   answer.
2. **Shrink** the failing schedule, each step re-run and kept only if the property still
   breaks: drop faults, lower the node count, shorten the run, move each lasting fault's
   start later with the same end, and lower every magnitude (durations, latencies,
   drift, the callback's stop time) by bisection.
3. **Threshold**: for the remaining fault, the smallest value of its main parameter (a
   pause's duration, a slow link's latency, a drift's ppm ...) that still breaks the
   property, by bisection to a stated precision, set beside what the timing theory
   (:mod:`leadersim.analysis.theory`) predicts.

The answer (:class:`Exploration`) holds the shrunken scenario as a mapping that
:func:`~leadersim.simulate` runs (and :meth:`Exploration.to_yaml` as a file), the seed, a
one-line replay command, the timeline, and a readable summary.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from leadersim.config import DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RENEW_INTERVAL
from leadersim.errors import ConfigError
from leadersim.faults import (
    CUT_MODES,
    FAULT_KINDS,
    MIN_DRIFT_PPM,
    PROBABILITY_PARAMS,
    SIGNED_PARAMS,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from leadersim.analysis.result import Result
    from leadersim.sim.scenario import Scenario

__all__ = ["PROPERTIES", "Exploration", "explore", "parse_budget", "parse_property"]

#: Schedules run per batch of the search: a fixed size, so that which schedule is "the
#: first failure" never depends on the executor or its number of workers.
BATCH_SIZE = 32
#: Default precision of a threshold in seconds (ppm and probabilities: see ``_precision``).
DEFAULT_PRECISION_S = 0.01
#: The properties: what counts as broken, from a run's summary (``Result.summary()``).
PROPERTIES = {
    "overlap": "two leader callbacks acted at once (overlap_s > 0)",
    "harmful": "a stale write was accepted (stale_accepted > 0)",
    "no_leader>X": "no node acted for more than X seconds in total (no_leader_s > X)",
    "failover>Y": "a failover took more than Y seconds (max of failover_all_s > Y)",
}
#: Budget keys that are not fault kinds.
_GLOBAL_KEYS = ("callback", "nodes", "max_faults", "window")
#: Fault kinds a budget may not name: a ``start`` needs a new node id, a ``restart`` is
#: drawn with its crash (``crash: {max_down_s: ...}``).
_UNBUDGETED_KINDS = ("start", "restart")


# ---------------------------------------------------------------------- fault table access
# The only place that reads the fault table (leadersim.faults): when its form changes, fix here.


def _fault_kinds() -> list[str]:
    """Every fault kind a budget may name."""
    return [k for k in FAULT_KINDS if k not in _UNBUDGETED_KINDS]


def _fault_params(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The kind's (required, optional) parameters, besides at/kind/target."""
    row = FAULT_KINDS[kind]
    return row.required, row.optional


def _numeric_params(kind: str) -> tuple[str, ...]:
    """The kind's number-valued parameters, required ones first (``mode`` is not one)."""
    required, optional = _fault_params(kind)
    return tuple(p for p in (*required, *optional) if p != "mode")


def _signed(param: str) -> bool:
    """Whether a parameter may be negative (a drift, a step back)."""
    return param in SIGNED_PARAMS


def _probability(param: str) -> bool:
    """Whether a parameter is a probability in [0, 1]."""
    return param in PROBABILITY_PARAMS


def _cut_modes() -> tuple[str, ...]:
    return tuple(CUT_MODES)


def _max_abs_drift_ppm() -> float:
    """A drift's magnitude must stay below this (at -1e6 ppm a clock stops)."""
    return -MIN_DRIFT_PPM


def _main_param(kind: str) -> str | None:
    """The parameter a threshold is searched on: the fault's magnitude.

    The first required parameter other than ``duration`` (a slow link's latency, a
    drift's ppm), else ``duration`` (a pause, a cut), else the first optional number.
    """
    required, optional = _fault_params(kind)
    numeric = [p for p in required if p != "mode"]
    for param in numeric:
        if param != "duration":
            return param
    if numeric:
        return numeric[0]
    rest = [p for p in optional if p != "mode"]
    return rest[0] if rest else None


def _unit(param: str) -> str:
    if param == "ppm":
        return "ppm"
    if _probability(param):
        return "probability"
    return "s"


def _precision(param: str, seconds: float) -> float:
    """The bisection precision of ``param``: ``seconds`` for times, 1 ppm, 0.001 for rates."""
    if param == "ppm":
        return 1.0
    if _probability(param):
        return 0.001
    return seconds


# ---------------------------------------------------------------------- budget and property


@dataclasses.dataclass(frozen=True, slots=True)
class KindBudget:
    """What the search may inject of one fault kind.

    Attributes:
        kind: The fault kind.
        max_count: At most this many per schedule.
        maxima: Each numeric parameter's largest value (seconds, ppm or probability);
            signed ones are drawn from ``[-max, max]``, the others from ``[0, max]``.
        targets: Targets to draw from (node ids, ``"leader"``, ``"all"``); empty: every
            node and ``"leader"``.
        modes: A cut's modes to draw from.
        max_down_s: For a crash: if set, a restart follows within this many seconds.
    """

    kind: str
    max_count: int = 1
    maxima: tuple[tuple[str, float], ...] = ()
    targets: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    max_down_s: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """A validated budget (see :func:`parse_budget`)."""

    kinds: tuple[KindBudget, ...]
    max_faults: int
    max_stop_latency: float | None = None
    nodes: tuple[int, int] | None = None
    window: tuple[float, float] | None = None

    def describe(self) -> str:
        """What the budget covers, in one line."""
        parts = []
        for k in self.kinds:
            bounds = ", ".join(f"{p} <= {v:g} {_unit(p)}" for p, v in k.maxima)
            extra = f" ({bounds})" if bounds else ""
            parts.append(f"{k.kind} x{k.max_count}{extra}")
        if self.max_stop_latency is not None:
            parts.append(f"callback stop <= {self.max_stop_latency:g} s")
        if self.nodes is not None:
            parts.append(f"nodes {self.nodes[0]}-{self.nodes[1]}")
        return f"{'; '.join(parts)}; up to {self.max_faults} fault(s) per schedule"


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be an integer >= 1, got {value!r}")
    return value


def _bound(where: str, value: Any, *, probability: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number >= 0, got {value!r}")
    if value < 0 or (probability and value > 1):
        allowed = "0 to 1" if probability else ">= 0"
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")
    return float(value)


def _check_keys(where: str, given: Any, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {given!r}")
    unknown = sorted(str(k) for k in set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return given


def parse_budget(budget: Mapping[str, Any]) -> Budget:
    """Validate a budget mapping; errors are one line naming the allowed keys.

    A budget maps fault kinds to their bounds, plus four optional keys::

        {
            "pause": {"max_duration": 30, "max_count": 3},
            "cut": {"max_duration": 20, "modes": ["request", "both"]},
            "slow": {"max_latency_s": 2, "max_duration": 20},
            "clock_drift": {"max_ppm": 500, "targets": ["n2"]},
            "crash": {"max_down_s": 15},            # a restart within 15 s
            "callback": {"max_stop_latency": 5},    # callback.stop_latency in [0, 5] s
            "nodes": {"min": 2, "max": 5},          # node count (base nodes n1..nK)
            "max_faults": 3,                        # per schedule (default: the counts' sum)
            "window": [10, 50],                     # fault start times, seconds
        }

    A kind's keys: ``max_count`` (default 1), ``max_<param>`` for each of its numeric
    parameters (required ones must be bounded; an unbounded optional one is left out),
    ``targets``, and ``modes`` (cut) or ``max_down_s`` (crash).

    Raises:
        ConfigError: an unknown key or kind, a missing bound, a bad value.
    """
    kinds_allowed = _fault_kinds()
    _check_keys("budget", budget, [*kinds_allowed, *_GLOBAL_KEYS])
    kinds: list[KindBudget] = []
    for kind in kinds_allowed:  # the table's order: schedules do not depend on the dict's
        if kind not in budget:
            continue
        spec = budget[kind]
        if spec is None:
            spec = {}
        required, _optional = _fault_params(kind)
        numeric = _numeric_params(kind)
        allowed = ["max_count", "targets", *(f"max_{p}" for p in numeric)]
        if kind == "cut":
            allowed.append("modes")
        if kind == "crash":
            allowed.append("max_down_s")
        spec = _check_keys(f"budget.{kind}", spec, allowed)
        missing = [f"max_{p}" for p in required if p != "mode" and f"max_{p}" not in spec]
        if missing:
            raise ConfigError(f"budget.{kind} needs {missing} (the bounds of its parameters)")
        maxima = tuple(
            (p, _bound(f"budget.{kind}.max_{p}", spec[f"max_{p}"], probability=_probability(p)))
            for p in numeric
            if f"max_{p}" in spec
        )
        too_fast = [p for p, v in maxima if p == "ppm" and v >= _max_abs_drift_ppm()]
        if too_fast:
            raise ConfigError(
                f"budget.{kind}.max_ppm must be below {_max_abs_drift_ppm():g} "
                "(a drift of -1e6 ppm stops the clock)"
            )
        targets = spec.get("targets", ())
        if isinstance(targets, str):
            targets = (targets,)
        if not isinstance(targets, list | tuple) or not all(
            isinstance(t, str) and t for t in targets
        ):
            raise ConfigError(
                f"budget.{kind}.targets must be a list of node ids, 'leader' or 'all', "
                f"got {targets!r}"
            )
        modes = tuple(spec.get("modes", _cut_modes() if kind == "cut" else ()))
        bad_modes = [m for m in modes if m not in _cut_modes()]
        if bad_modes or (kind == "cut" and not modes):
            raise ConfigError(
                f"budget.cut.modes: unknown mode(s) {bad_modes or modes!r}; "
                f"allowed: {list(_cut_modes())}"
            )
        down = spec.get("max_down_s")
        kinds.append(
            KindBudget(
                kind,
                _positive_int(f"budget.{kind}.max_count", spec.get("max_count", 1)),
                maxima,
                tuple(targets),
                modes,
                None if down is None else _bound(f"budget.{kind}.max_down_s", down),
            )
        )
    if not kinds and "callback" not in budget:
        raise ConfigError(
            f"budget names no fault kind nor a callback bound; allowed kinds: {kinds_allowed}"
        )
    total = sum(k.max_count for k in kinds)
    max_faults = _positive_int("budget.max_faults", budget.get("max_faults", max(total, 1)))
    stop = None
    if "callback" in budget:
        callback = _check_keys("budget.callback", budget["callback"], ["max_stop_latency"])
        if "max_stop_latency" not in callback:
            raise ConfigError("budget.callback needs ['max_stop_latency'] (seconds)")
        stop = _bound("budget.callback.max_stop_latency", callback["max_stop_latency"])
    nodes = None
    if "nodes" in budget:
        spec = _check_keys("budget.nodes", budget["nodes"], ["min", "max"])
        if "max" not in spec:
            raise ConfigError("budget.nodes needs ['max'] (and optionally 'min', default 2)")
        high = _positive_int("budget.nodes.max", spec["max"])
        low = _positive_int("budget.nodes.min", spec.get("min", min(2, high)))
        if low > high:
            raise ConfigError(f"budget.nodes: min {low} is above max {high}")
        nodes = (low, high)
    window = None
    if "window" in budget:
        given = budget["window"]
        if not isinstance(given, list | tuple) or len(given) != 2:
            raise ConfigError(f"budget.window must be [start, end] in seconds, got {given!r}")
        start = _bound("budget.window[0]", given[0])
        end = _bound("budget.window[1]", given[1])
        if end <= start:
            raise ConfigError(f"budget.window: end {end:g} must be after start {start:g}")
        window = (start, end)
    return Budget(tuple(kinds), max_faults, stop, nodes, window)


@dataclasses.dataclass(frozen=True, slots=True)
class Property:
    """A property to break: its name and limit (seconds, for ``no_leader``/``failover``)."""

    name: str
    limit: float | None = None

    def broken(self, summary: Mapping[str, Any]) -> bool:
        """Whether a run's summary breaks the property."""
        if self.name == "overlap":
            return float(summary["overlap_s"]) > 0
        if self.name == "harmful":
            return int(summary["stale_accepted"]) > 0
        assert self.limit is not None
        if self.name == "no_leader":
            return float(summary["no_leader_s"]) > self.limit
        return max(summary["failover_all_s"], default=0.0) > self.limit

    def __str__(self) -> str:
        return self.name if self.limit is None else f"{self.name}>{self.limit:g}"


def parse_property(prop: str | Property) -> Property:
    """``"overlap"``, ``"harmful"``, ``"no_leader>X"`` or ``"failover>Y"`` (seconds).

    Raises:
        ConfigError: anything else (the message lists the forms).
    """
    if isinstance(prop, Property):
        return prop
    allowed = f"allowed: {', '.join(PROPERTIES)} (X, Y in seconds)"
    if not isinstance(prop, str):
        raise ConfigError(f"prop must be a string, got {prop!r}; {allowed}")
    text = prop.replace(" ", "")
    if text in ("overlap", "harmful"):
        return Property(text)
    name, sep, value = text.partition(">")
    if sep and name in ("no_leader", "failover"):
        try:
            limit = float(value)
        except ValueError:
            limit = math.nan
        if math.isfinite(limit) and limit >= 0:
            return Property(name, limit)
    raise ConfigError(f"unknown property {prop!r}; {allowed}")


# ---------------------------------------------------------------------- schedules


def _timing(scenario: Scenario) -> tuple[float, float, float]:
    """``(L, I, D)`` of the scenario's first node (zero or missing: the default)."""
    config = scenario.config_for(scenario.nodes[0])
    return (
        float(config.get("lease_duration") or DEFAULT_LEASE_DURATION),
        float(config.get("renew_interval") or DEFAULT_RENEW_INTERVAL),
        float(config.get("renew_deadline") or DEFAULT_RENEW_DEADLINE),
    )


def _stop_latency(spec: Mapping[str, Any]) -> float:
    from leadersim.sim.scenario import CallbackSpec

    callback = spec.get("callback")
    if isinstance(callback, Mapping):
        return float(callback.get("stop_latency", CallbackSpec().stop_latency))
    return float(CallbackSpec().stop_latency)


def _counted_nodes(nodes: Sequence[str]) -> bool:
    """Whether the ids are ``n1 .. nK`` (what a count makes), so the count can change."""
    return list(nodes) == [f"n{i}" for i in range(1, len(nodes) + 1)]


def _window(base: Scenario, budget: Budget) -> tuple[float, float]:
    """Where faults may start (seconds).

    The budget's window, else from when the members have met to where a take-over (a
    lease and a round) still fits in the run.
    """
    if budget.window is not None:
        start, end = budget.window
    else:
        lease, interval, _ = _timing(base)
        start = base.start_stagger + base.start_jitter + 2 * interval
        end = base.duration - lease - interval
    end = min(end, base.duration)
    if end <= start:
        raise ConfigError(
            f"base scenario {base.name!r}: its duration {base.duration:g} s leaves no room "
            f"for faults (window {start:g}-{end:g} s); lengthen it or give budget.window"
        )
    return start, end


def _draw(rng: random.Random, low: float, high: float, digits: int = 3) -> float:
    return round(rng.uniform(low, high), digits)


def _schedule(
    rng: random.Random, base: Mapping[str, Any], budget: Budget, window: tuple[float, float]
) -> dict[str, Any]:
    """One random scenario mapping within the budget (the base with drawn faults)."""
    spec = copy.deepcopy(dict(base))
    if budget.nodes is not None:
        spec["nodes"] = [f"n{i}" for i in range(1, rng.randint(*budget.nodes) + 1)]
    nodes: list[str] = list(spec["nodes"])
    if budget.max_stop_latency is not None:
        spec["callback"] = {
            **(spec.get("callback") or {}),
            "stop_latency": _draw(rng, 0.0, budget.max_stop_latency),
        }
    left = {k.kind: k.max_count for k in budget.kinds}
    drawn: list[tuple[dict[str, Any], int | None]] = []  # (fault, index of its crash)
    count = rng.randint(1, budget.max_faults) if budget.kinds else 0
    for _ in range(count):
        choices = [k for k in budget.kinds if left[k.kind] > 0]
        if not choices:
            break
        kind = rng.choice(choices)
        left[kind.kind] -= 1
        targets = list(kind.targets) or [*nodes, "leader"]
        if kind.kind == "crash":  # a node id, so that its restart brings back the same one
            targets = [t for t in targets if t not in ("leader", "all")] or nodes
        fault: dict[str, Any] = {
            "at": _draw(rng, *window),
            "kind": kind.kind,
            "target": rng.choice(targets),
        }
        for param, high in kind.maxima:
            low = -high if _signed(param) else 0.0
            fault[param] = _draw(rng, low, high, 6 if _probability(param) else 3)
        if kind.modes:
            fault["mode"] = rng.choice(list(kind.modes))
        drawn.append((fault, None))
        if kind.max_down_s is not None:
            at = _draw(rng, fault["at"], fault["at"] + kind.max_down_s)
            back: dict[str, Any] = {"at": at, "kind": "restart", "target": ""}
            drawn.append((back, len(drawn) - 1))
    order = sorted(range(len(drawn)), key=lambda i: drawn[i][0]["at"])
    position = {old: new for new, old in enumerate(order)}
    faults = []
    for old in order:
        fault, crash = drawn[old]
        if crash is not None:
            fault["target"] = f"fault:{position[crash]}"
        faults.append(fault)
    spec["faults"] = faults
    return spec


# ---------------------------------------------------------------------- running


def _canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario format's own mapping of ``spec`` (validated; raises ConfigError)."""
    from leadersim.sim.scenario import Scenario

    return Scenario.from_mapping(spec).to_mapping()


class _Runner:
    """Runs (spec, seed) pairs in this process, through the sweep's worker; caches them."""

    def __init__(self, prop: Property, seed: int, bar: Any) -> None:
        self.prop = prop
        self.seed = seed
        self.runs = 0
        self.bar = bar
        self._cache: dict[str, bool] = {}

    def fails(self, spec: Mapping[str, Any]) -> bool:
        from leadersim.sweep import run_one

        key = json.dumps(spec, sort_keys=True)
        if key not in self._cache:
            try:
                summary, _warnings = run_one(spec, self.seed)
            except ConfigError:
                broken = False  # a step that makes the scenario invalid is not kept
            else:
                broken = self.prop.broken(summary)
            self.runs += 1
            self.bar.update()
            self._cache[key] = broken
        return self._cache[key]


def _search(
    base: Mapping[str, Any],
    budget: Budget,
    window: tuple[float, float],
    prop: Property,
    *,
    runs: int,
    seed: int,
    executor: concurrent.futures.Executor | Literal["serial"] | None,
    progress: bool,
    name: str,
) -> tuple[int, dict[str, Any] | None, int | None]:
    """Try up to ``runs`` schedules; ``(tried, failing spec, its seed)`` of the first one.

    ``tried`` counts the schedules up to and including the first failure, in index order
    (a parallel batch may have run a few more, which are not counted).
    """
    from tqdm.auto import tqdm

    from leadersim.sweep import check_picklable, collect_runs, process_pool, run_one

    def task(index: int) -> tuple[dict[str, Any], int]:
        rng = random.Random(f"leadersim.explore:{seed}:{index}")
        sim_seed = rng.randrange(2**31)
        return _schedule(rng, base, budget, window), sim_seed

    serial = executor == "serial" or (executor is None and runs <= 1)
    pool: concurrent.futures.Executor | None = None
    if not serial:
        check_picklable(name, [dict(base)])
        if executor is None:
            pool = process_pool(None, [dict(base)])
    bar = tqdm(total=runs, desc=f"explore {name}", unit="run", disable=not progress)
    try:
        for first in range(0, runs, BATCH_SIZE):
            indices = range(first, min(runs, first + BATCH_SIZE))
            batch = [task(i) for i in indices]
            outcomes: dict[tuple[int, int], tuple[dict[str, Any], tuple[str, ...]]] = {}
            if serial:
                for j, (spec, sim_seed) in enumerate(batch):
                    outcomes[(j, sim_seed)] = run_one(spec, sim_seed)
                    bar.update()
                    if prop.broken(outcomes[(j, sim_seed)][0]):
                        break  # nothing after it in index order can be the answer
            else:
                target = pool if pool is not None else executor
                assert isinstance(target, concurrent.futures.Executor)
                specs = [spec for spec, _ in batch]
                tasks = [(j, sim_seed) for j, (_, sim_seed) in enumerate(batch)]
                collect_runs(target, specs, tasks, outcomes, bar)
            for j, (spec, sim_seed) in enumerate(batch):
                outcome = outcomes.get((j, sim_seed))
                if outcome is not None and prop.broken(outcome[0]):
                    return indices[j] + 1, spec, sim_seed
        return runs, None, None
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------------- shrinking


def _size(spec: Mapping[str, Any]) -> tuple[int, int, float]:
    """How large a schedule is: faults, nodes, then the sum of its magnitudes."""
    magnitude = sum(
        abs(float(v))
        for f in spec["faults"]
        for k, v in f.items()
        if k not in ("at", "kind", "target", "mode") and isinstance(v, int | float)
    )
    return len(spec["faults"]), len(spec["nodes"]), magnitude + _stop_latency(spec)


def _without(spec: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``spec`` without fault ``index`` and the faults that target it (``fault:N``)."""
    faults: list[dict[str, Any]] = [dict(f) for f in spec["faults"]]
    dropped = {index}
    for i, fault in enumerate(faults):
        target = fault["target"]
        referenced = isinstance(target, str) and target.startswith("fault:")
        if referenced and int(target.removeprefix("fault:")) in dropped:
            dropped.add(i)
    kept_old = [i for i in range(len(faults)) if i not in dropped]
    renumber = {old: new for new, old in enumerate(kept_old)}
    kept = []
    for old in kept_old:
        fault = faults[old]
        target = fault["target"]
        if isinstance(target, str) and target.startswith("fault:"):
            fault["target"] = f"fault:{renumber[int(target.removeprefix('fault:'))]}"
        kept.append(fault)
    return {**spec, "faults": kept}


def _with_fault(spec: Mapping[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    faults = [dict(f) for f in spec["faults"]]
    faults[index].update(changes)
    return {**spec, "faults": faults}


def _bisect(
    fails: Callable[[float], bool], passing: float, failing: float, precision: float
) -> tuple[float, float]:
    """Narrow ``passing``..``failing`` to ``precision``: ``(last passing, first failing)``.

    ``failing`` is known to fail; ``passing`` is taken to pass without a run (the value
    without the fault's effect, or one shown to pass). Either may be the larger. The
    property need not be monotone, so the answer is one boundary between a passing and
    a failing value.
    """
    while abs(failing - passing) > precision:
        middle = (passing + failing) / 2
        if middle in (passing, failing):
            break
        if fails(middle):
            failing = middle
        else:
            passing = middle
    return passing, failing


def _shrink(spec: dict[str, Any], runner: _Runner, precision: float) -> dict[str, Any]:
    """Shrink a failing ``spec``: every accepted step still fails and is no larger."""
    # 1. Drop faults, until no single one can go.
    changed = True
    while changed:
        changed = False
        for index in range(len(spec["faults"])):
            candidate = _without(spec, index)
            if runner.fails(candidate):
                spec, changed = candidate, True
                break
    # 2. Fewer nodes (only a count's n1..nK can lose its last ones).
    while len(spec["nodes"]) > 2 and _counted_nodes(spec["nodes"]):
        candidate = {**spec, "nodes": spec["nodes"][:-1]}
        if not runner.fails(candidate):
            break
        spec = candidate
    # 3. A shorter run: the last fault's end, then two leases and rounds to see its effect.
    lease, interval, _ = _timing_of(spec)
    ends = [f["at"] + float(f.get("duration", 0.0)) for f in spec["faults"]]
    short = math.ceil(max(ends, default=0.0) + 2 * (lease + interval))
    if short < spec["duration"]:
        candidate = {**spec, "duration": float(short)}
        if runner.fails(candidate):
            spec = candidate
    # 4. Move each lasting fault's start later, keeping its end: a shorter fault.
    for index in range(len(spec["faults"])):
        spec = _slide(spec, runner, precision, index)
    # 5. Move each lasting fault into one of its target's renew rounds: a fault that
    #    lands between a round's read and its write can be far shorter (the round fails
    #    at its deadline) than one between rounds (it must outlast a take-over).
    for index in range(len(spec["faults"])):
        spec = _into_rounds(spec, runner, precision, index)
    # 6. Lower every magnitude, the threshold's own parameter last (see _threshold).
    for index in range(len(spec["faults"])):
        kind = spec["faults"][index]["kind"]
        main = _main_param(kind)
        for param in _numeric_params(kind):
            value = spec["faults"][index].get(param)
            if param == main or not isinstance(value, int | float) or value == 0:
                continue
            spec = _lower(spec, runner, precision, index, param)
    if "stop_latency" in (spec.get("callback") or {}) and spec["faults"]:
        spec = _lower_stop(spec, runner, precision)
    return spec


#: Where in a renew round (fractions of its length) step 5 of the shrink tries a start.
_ROUND_POINTS = (0.25, 0.5, 0.75)


def _into_rounds(
    spec: dict[str, Any], runner: _Runner, precision: float, index: int
) -> dict[str, Any]:
    """Try fault ``index`` started inside each renew round of its target near it.

    Keeps the shortest failing one, its length bisected.
    """
    import warnings

    from leadersim.errors import SafetyWarning
    from leadersim.experiment import simulate
    from leadersim.trace import EventKind

    fault = spec["faults"][index]
    if "duration" not in fault or fault["kind"] == "clock_drift":
        return spec
    _, interval, deadline = _timing_of(spec)
    at, duration = float(fault["at"]), float(fault["duration"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafetyWarning)
        events = simulate(spec, seed=runner.seed).events
    hit = {
        e.node
        for e in events
        if e.kind is EventKind.FAULT_START and e.details.get("fault") == index
    }
    ends = (EventKind.RENEW_OK, EventKind.CAS_CONFLICT, EventKind.RENEW_FAILED)
    starts: list[float] = []
    for i, event in enumerate(events):
        if event.node not in hit or event.kind is not EventKind.RENEW_STARTED:
            continue
        if not at - interval - deadline <= event.true_time < at + duration:
            continue
        close = next((e for e in events[i + 1 :] if e.node == event.node and e.kind in ends), None)
        span = (close.true_time - event.true_time) if close is not None else 0.0
        starts += [event.true_time + f * span for f in _ROUND_POINTS]
    best = spec
    for start in sorted(set(round(t, 6) for t in starts)):
        if start >= spec["duration"] or abs(start - at) < precision:
            continue
        # One run per start: only one that beats the best so far is bisected further.
        shorter = float(best["faults"][index]["duration"]) - precision
        if shorter <= 0:
            break
        candidate = _with_fault(spec, index, at=start, duration=shorter)
        if _without_order_change(spec, candidate) and runner.fails(candidate):
            best = _lower(candidate, runner, precision, index, "duration")
    return best


def _without_order_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether moving a fault kept the schedule in time order (``fault:N`` numbering)."""
    times = [f["at"] for f in new["faults"]]
    return times == sorted(times) or len(old["faults"]) == 1


def _timing_of(spec: Mapping[str, Any]) -> tuple[float, float, float]:
    from leadersim.sim.scenario import Scenario

    return _timing(Scenario.from_mapping(spec))


def _slide(spec: dict[str, Any], runner: _Runner, precision: float, index: int) -> dict[str, Any]:
    """Start fault ``index`` as late as it still fails, keeping its end: a shorter fault."""
    fault = spec["faults"][index]
    if "duration" not in fault or fault["kind"] == "clock_drift":
        return spec
    at, duration = float(fault["at"]), float(fault["duration"])

    def later(shift: float) -> dict[str, Any]:
        return _with_fault(spec, index, at=at + shift, duration=duration - shift)

    # The fault with no length left is taken to pass: dropping it did (step 1).
    _, shift = _bisect(lambda s: runner.fails(later(s)), duration, 0.0, precision)
    candidate = later(shift)
    return candidate if shift > 0 and _without_order_change(spec, candidate) else spec


def _bisected(
    spec: dict[str, Any], runner: _Runner, step: float, index: int, param: str
) -> tuple[dict[str, Any], float, float]:
    """Bisect ``param`` of fault ``index`` toward 0, keeping its sign.

    Returns:
        The spec at the smallest failing value, that value and the largest passing one.
    """
    value = float(spec["faults"][index][param])
    sign = -1.0 if value < 0 else 1.0

    def at(magnitude: float) -> dict[str, Any]:
        return _with_fault(spec, index, **{param: sign * magnitude})

    low, high = _bisect(lambda m: runner.fails(at(m)), 0.0, abs(value), step)
    return at(high), sign * high, sign * low


def _lower(
    spec: dict[str, Any], runner: _Runner, precision: float, index: int, param: str
) -> dict[str, Any]:
    """Bisect ``param`` of fault ``index`` toward 0 (keeping its sign)."""
    return _bisected(spec, runner, _precision(param, precision), index, param)[0]


def _lower_stop(spec: dict[str, Any], runner: _Runner, precision: float) -> dict[str, Any]:
    """Bisect the callback's stop latency toward 0."""

    def at(value: float) -> dict[str, Any]:
        return {**spec, "callback": {**spec["callback"], "stop_latency": value}}

    _, high = _bisect(lambda v: runner.fails(at(v)), 0.0, _stop_latency(spec), precision)
    return at(high)


def _threshold(
    spec: dict[str, Any], runner: _Runner, precision: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Bisect the main parameter of the first remaining fault (or the callback's stop)."""
    for index, fault in enumerate(spec["faults"]):
        param = _main_param(fault["kind"])
        if param is None or not isinstance(fault.get(param), int | float):
            continue
        step = _precision(param, precision)
        lowest, high, low = _bisected(spec, runner, step, index, param)
        found = {
            "kind": fault["kind"],
            "param": param,
            "value": high,
            "passes_at": low,
            "precision": step,
            "unit": _unit(param),
            "fault": index,
            "target": fault["target"],
        }
        return lowest, found
    if "stop_latency" in (spec.get("callback") or {}):
        low, high = _bisect(
            lambda v: runner.fails({**spec, "callback": {**spec["callback"], "stop_latency": v}}),
            0.0,
            _stop_latency(spec),
            precision,
        )
        found = {
            "kind": "callback",
            "param": "stop_latency",
            "value": high,
            "passes_at": low,
            "precision": precision,
            "unit": "s",
            "fault": None,
            "target": "all",
        }
        return {**spec, "callback": {**spec["callback"], "stop_latency": high}}, found
    return spec, None


# ---------------------------------------------------------------------- theory


def _theory(
    spec: Mapping[str, Any], threshold: Mapping[str, Any] | None, prop: Property
) -> dict[str, Any]:
    """The timing theory's numbers for this config, and its prediction of the threshold."""
    from leadersim.analysis import theory

    lease, interval, deadline = _timing_of(spec)
    stop = _stop_latency(spec)
    answer: dict[str, Any] = {
        "lease_duration": lease,
        "renew_interval": interval,
        "renew_deadline": deadline,
        "stop_latency": stop,
        "slack_s": theory.slack(lease, interval, deadline),
        "failover_s": {
            case: tuple(theory.failover_time(case, lease, interval))
            for case in ("crash", "pause", "storage")
        },
        "predicted": None,
        "formula": None,
    }
    if threshold is None:
        return answer
    if prop.name not in ("overlap", "harmful"):
        return answer  # the theory predicts safety thresholds only
    rule = theory.breaking_threshold(
        threshold["kind"], threshold["param"], lease, interval, deadline, stop_latency=stop
    )
    answer["predicted"], answer["formula"] = rule.predicted, rule.formula
    if rule.predicted_range is not None:
        answer["predicted_range"] = rule.predicted_range
    return answer


# ---------------------------------------------------------------------- the answer


@dataclasses.dataclass(frozen=True)
class Exploration:
    """What :func:`explore` found.

    Attributes:
        found: Whether some schedule within the budget broke the property.
        runs: Schedules tried by the search, up to and including the first failure.
        scenario: The shrunken failing scenario, a mapping :func:`~leadersim.simulate`
            runs (with :attr:`seed`), or ``None`` when nothing was found.
        seed: The seed that replays :attr:`scenario` (``None`` when nothing was found).
        threshold: ``{"kind", "param", "value", ...}`` for the remaining fault: the
            smallest value (in ``unit``: s, ppm or probability) that still breaks the
            property, ``passes_at`` a value that does not, within ``precision``; ``None``
            when nothing was found or no parameter was left to bisect.
        found_scenario: The failing scenario as the search drew it, before shrinking.
        prop: The property, as text (``"overlap"``, ``"no_leader>30"`` ...).
        budget: The budget as given.
        covered: What the search covered, in one line (kinds, bounds, window, runs).
        theory: The timing theory beside the answer: ``slack_s``, ``failover_s`` per
            case, ``predicted`` (the theory's threshold, or ``None``) and ``formula``.
        shrink_runs: Simulations the shrink and the threshold search ran.
        elapsed_s: Wall-clock seconds of the whole exploration.
        base_seed: The ``seed`` argument of :func:`explore`.
    """

    found: bool
    runs: int
    scenario: dict[str, Any] | None
    seed: int | None
    threshold: dict[str, Any] | None
    found_scenario: dict[str, Any] | None
    prop: str
    budget: Mapping[str, Any]
    covered: str
    theory: dict[str, Any]
    shrink_runs: int
    elapsed_s: float
    base_seed: int

    def replay(self, path: str | Path = "explored.yaml") -> str:
        """The shell command that replays the answer from its file at ``path``.

        Empty when nothing was found.
        """
        if self.scenario is None:
            return ""
        return f"leadersim simulate {path} --seed {self.seed}"

    def to_yaml(self) -> str:
        """The shrunken scenario as a scenario file (YAML) for ``leadersim simulate``.

        Raises:
            ConfigError: nothing was found, or the scenario has a Python callback.
        """
        from leadersim.experiment import dump_scenario
        from leadersim.sim.scenario import Scenario

        if self.scenario is None:
            raise ConfigError("nothing was found: there is no scenario to write")
        return dump_scenario(Scenario.from_mapping(self.scenario))

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    @cached_property
    def result(self) -> Result | None:
        """The shrunken scenario simulated with its seed (``None`` when nothing was found)."""
        if self.scenario is None:
            return None
        import warnings

        from leadersim.errors import SafetyWarning
        from leadersim.experiment import simulate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SafetyWarning)  # the summary states the slack
            return simulate(self.scenario, seed=self.seed or 0)

    def plot_timeline(self, ax: Axes | None = None, **options: Any) -> Axes:
        """The shrunken run's timeline (see :meth:`leadersim.Result.plot_timeline`).

        Raises:
            ConfigError: nothing was found.
        """
        result = self.result
        if result is None:
            raise ConfigError("nothing was found: there is no timeline to draw")
        return result.plot_timeline(ax=ax, **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what ``leadersim explore --json`` prints)."""
        return {
            "found": self.found,
            "runs": self.runs,
            "prop": self.prop,
            "seed": self.seed,
            "threshold": self.threshold,
            "theory": self.theory,
            "covered": self.covered,
            "shrink_runs": self.shrink_runs,
            "elapsed_s": self.elapsed_s,
            "scenario": self.scenario,
            "found_scenario": self.found_scenario,
        }

    def summary(self, path: str | Path = "explored.yaml") -> str:
        """A few readable lines: what broke, the schedule, the threshold, the replay.

        ``path`` is where the scenario file is, or will be, for the replay command.
        """
        t = self.theory
        config = (
            f"L/I/D {t['lease_duration']:g}/{t['renew_interval']:g}/{t['renew_deadline']:g} "
            f"(slack {t['slack_s']:g} s, stop {t['stop_latency']:g} s)"
        )
        if not self.found or self.scenario is None:
            return (
                f"nothing breaks {self.prop} in {self.runs} runs with {config}\n"
                f"covered: {self.covered}"
            )
        lines = [
            f"{self.prop} broken after {self.runs} run(s) with {config}; shrunk in "
            f"{self.shrink_runs} runs to:"
        ]
        for fault in self.scenario["faults"]:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in fault.items()}
            lines.append("  " + json.dumps(shown))
        if not self.scenario["faults"]:
            lines.append(f"  no fault: callback stop {_stop_latency(self.scenario):g} s")
        if self.threshold is not None:
            th = self.threshold
            lines.append(
                f"threshold: {th['kind']}.{th['param']} = {th['value']:.3f} {th['unit']} "
                f"(passes at {th['passes_at']:.3f}, precision {th['precision']:g})"
            )
        if t["predicted"] is not None:
            measured = ""
            if self.threshold is not None:
                measured = f", measured {self.threshold['value'] - t['predicted']:+.3f} s from it"
            lines.append(f"theory: {t['predicted']:g} at the worst phase{measured}: {t['formula']}")
        elif t["formula"]:
            lines.append(f"theory: {t['formula']}")
        lines.append(f"replay: {self.replay(path)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def explore(
    base: str | Path | Scenario | Mapping[str, Any],
    budget: Mapping[str, Any],
    *,
    runs: int,
    seed: int = 0,
    prop: str = "overlap",
    executor: concurrent.futures.Executor | Literal["serial"] | None = None,
    precision: float = DEFAULT_PRECISION_S,
    shrink: bool = True,
    progress: bool = True,
) -> Exploration:
    """Search schedules within ``budget`` for one that breaks ``prop``; shrink it.

    Args:
        base: The configuration to attack: anything :func:`~leadersim.simulate` accepts
            (its own faults are replaced by the drawn ones).
        budget: What may be injected, see :func:`parse_budget`, e.g.
            ``{"pause": {"max_duration": 30, "max_count": 3}}``.
        runs: At most this many schedules are tried.
        seed: Seeds the search: schedule ``i`` (and its run's seed) come from
            ``(seed, i)``, so the same call gives the same answer.
        prop: What counts as broken: ``"overlap"`` (two callbacks acting at once),
            ``"harmful"`` (a stale write accepted), ``"no_leader>X"`` (more than X s
            with no acting leader in total) or ``"failover>Y"`` (a failover slower than
            Y s).
        executor: Where the search runs: any :class:`concurrent.futures.Executor` (left
            open), ``"serial"`` (this process), or ``None`` for a process pool with one
            worker per CPU. The answer is the same for all. Shrinking runs in this
            process (each step depends on the last).
        precision: Of the threshold and the shrink's bisections, in seconds (a drift: 1
            ppm, a rate: 0.001).
        shrink: Shrink the found schedule and search its threshold (else report it as
            found).
        progress: Show ``tqdm`` progress bars (search, then shrink).

    Returns:
        The :class:`Exploration`.

    Raises:
        ConfigError: a bad budget, property, ``runs`` or ``precision``, an invalid base
            scenario, or one too short for faults.
    """
    from tqdm.auto import tqdm

    from leadersim.experiment import resolve_scenario

    started = time.perf_counter()
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"runs must be an integer >= 1, got {runs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(precision, int | float) and math.isfinite(precision) and precision > 0):
        raise ConfigError(f"precision must be a number of seconds > 0, got {precision!r}")
    chosen = parse_property(prop)
    parsed = parse_budget(budget)
    scenario = resolve_scenario(base)
    if parsed.nodes is not None and not _counted_nodes(scenario.nodes):
        raise ConfigError(
            f"budget.nodes changes the node count, but the base's nodes are ids "
            f"{list(scenario.nodes)}; give the base 'nodes' as a count"
        )
    most = parsed.nodes[1] if parsed.nodes is not None else len(scenario.nodes)
    members = scenario.nodes if parsed.nodes is None else [f"n{i}" for i in range(1, most + 1)]
    for kind in parsed.kinds:
        strangers = [t for t in kind.targets if t not in (*members, "leader", "all")]
        if strangers:
            raise ConfigError(
                f"budget.{kind.kind}.targets: {strangers} not node(s) of the base scenario; "
                f"allowed: {[*members, 'leader', 'all']}"
            )
    window = _window(scenario, parsed)
    plain = scenario.to_mapping()
    plain["faults"] = []
    if callable(plain["callback"]) and executor != "serial":
        raise ConfigError(
            f"explore of {scenario.name!r}: a Python leader callback cannot be sent to "
            "worker processes; use a callback mapping or executor='serial'"
        )
    tried, failing, sim_seed = _search(
        plain,
        parsed,
        window,
        chosen,
        runs=runs,
        seed=seed,
        executor=executor,
        progress=progress,
        name=scenario.name,
    )
    covered = f"{tried} schedules from seed {seed}: {parsed.describe()}; faults start in "
    covered += f"[{window[0]:g}, {window[1]:g}) s"
    shrunk: dict[str, Any] | None = None
    threshold = None
    shrink_runs = 0
    if failing is not None and sim_seed is not None:
        found_spec = _canonical(failing)
        shrunk = found_spec
        if shrink:
            bar = tqdm(desc=f"shrink {scenario.name}", unit="run", disable=not progress)
            try:
                runner = _Runner(chosen, sim_seed, bar)
                shrunk = _shrink(found_spec, runner, float(precision))
                shrunk, threshold = _threshold(shrunk, runner, float(precision))
                shrink_runs = runner.runs
            finally:
                bar.close()
        shrunk = _canonical(shrunk)
        failing = found_spec
    return Exploration(
        found=failing is not None,
        runs=tried,
        scenario=shrunk,
        seed=sim_seed,
        threshold=threshold,
        found_scenario=failing,
        prop=str(chosen),
        budget=budget,
        covered=covered,
        theory=_theory(shrunk if shrunk is not None else plain, threshold, chosen),
        shrink_runs=shrink_runs,
        elapsed_s=time.perf_counter() - started,
        base_seed=seed,
    )
