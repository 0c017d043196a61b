"""The fault kinds, as one table, and fault schedules, as data.

:data:`FAULT_KINDS` is the one place a fault kind is described: its parameters, which of
them are seconds, what it acts on (``scope``), how it ends, whether a real run can
inflict it, and the short label plots and frames show. The simulator
(:mod:`leadersim.sim.world`), the real fault wrapper
(:class:`~leadersim.storage.FaultyStorage`), the lab and the analysis all read it; each
world has one executor per kind (and the storage kinds share one pipeline,
:mod:`leadersim.storage.faultplan`).

A fault is ``{at, kind, target, ...}``: at second ``at`` of the run, apply ``kind`` to
``target`` (a node id, a list of ids, ``"leader"`` — the node whose callback is running
when the fault begins — ``"all"``, or ``"fault:N"``, the nodes an earlier fault hit). The
other keys depend on the kind (see :data:`FAULT_KINDS`). Schedules are lists of faults,
written by hand or generated from a seed by :func:`random_schedule`.

``start`` is the one kind that may name a new id (a node joins the run). ``restart``
brings back a member that is down: crashed, or whose election has ended (a ``cancel``, a
stop after a failed renewal); a member still stopping after a ``cancel`` comes back once
it has stopped, and a running one is left as it is.

Faults of one kind that overlap on one node compose: cuts are counted per mode (a mode
heals when its last cut ends), pauses are counted (the node runs again when the last one
ends), ``slow`` latencies and ``clock_drift`` ppm add up, ``conflicts``, ``busy`` and
``loss`` rates compose as independent chances (``1 - prod(1 - rate)``), and of several
``error`` faults the smallest ``after_s`` applies.

Every number must be finite; durations, latencies and delays are seconds >= 0, a
``rate`` is a probability in [0, 1], a ``ppm`` drift is above -1e6 (a clock that runs
at all). :func:`check_schedule` checks a schedule against its scenario: targets that
exist, references to earlier faults, start times before the run's end.

Pure stdlib: importable by the simulator, the storages, the lab and the analysis alike.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal

from leadersim.errors import ConfigError

__all__ = [
    "CUT_MODES",
    "FAULT_KINDS",
    "MIN_DRIFT_PPM",
    "SPECIAL_TARGETS",
    "Fault",
    "FaultKind",
    "check_params",
    "check_schedule",
    "finite_number",
    "parse_faults",
    "random_schedule",
    "reference_index",
]

#: What a fault kind acts on.
Scope = Literal["node", "storage", "clock", "membership"]
#: How a fault kind ends: after its ``duration`` (when given), or at once.
Ends = Literal["duration", "instant"]

#: Modes of a ``cut``: requests lost, replies lost, both, or writes refused (reads work).
CUT_MODES: Final = ("request", "reply", "both", "writes")
#: Targets that are not node ids (besides ``fault:N``); no node may be named like them.
SPECIAL_TARGETS: Final = ("leader", "all")
#: A drift of -1e6 ppm stops the clock; below it the clock would run backwards.
MIN_DRIFT_PPM: Final = -1e6

_COMMON = ("at", "kind", "target")
_REFERENCE = "fault:"
#: Parameters that are probabilities.
_PROBABILITIES = ("rate",)
#: Parameters that may be negative (a drift, a wall-clock step back).
_SIGNED = ("ppm", "seconds")
_TARGET_FORMS = "a node id, a list of node ids, 'leader', 'all' or 'fault:N'"


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (not a bool) other than NaN or infinity."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def reference_index(target: str) -> int | None:
    """``N`` of a ``"fault:N"`` target, ``-1`` for a malformed one, else ``None``."""
    if not target.startswith(_REFERENCE):
        return None
    digits = target.removeprefix(_REFERENCE)
    return int(digits) if digits.isdigit() and digits.isascii() else -1


# ---------------------------------------------------------------------- the table


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and finite_number(value) else math.nan


def _plain(kind: str) -> Callable[[Mapping[str, object]], str]:
    return lambda params: kind


@dataclasses.dataclass(frozen=True, slots=True)
class FaultKind:
    """One kind of fault: its parameters, what it acts on, how it ends, its label.

    Attributes:
        name: The kind, as a schedule names it (``"pause"``).
        required: Parameters a fault of this kind must have (besides at/kind/target).
        optional: Parameters it may have.
        time_params: The parameters that are seconds (what scaling a scenario in time
            multiplies): ``duration``, ``latency_s``, ``after_s``, ``delay_s``,
            ``resign_duration``, ``seconds``; not ``ppm``, ``rate`` or ``mode``.
        scope: What it acts on: ``"node"`` (the member's process), ``"storage"`` (the
            member's link to its storage: executed by the storage-fault pipeline),
            ``"clock"`` (the member's clock) or ``"membership"`` (members joining or
            coming back).
        ends: ``"duration"``: it lasts its ``duration`` parameter (for ``clock_drift``,
            whose duration is optional, until the run's end without one); ``"instant"``:
            it happens at once (``ambiguous`` arms a one-shot that the next committed
            update uses).
        real: ``None`` when a real run (the lab) can inflict it; else the one-line reason
            it cannot exist for real.
        summary: One line saying what it does.
        describe: Builds the label (without the duration suffix) from the parameters.
    """

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    time_params: tuple[str, ...]
    scope: Scope
    ends: Ends
    real: str | None
    summary: str
    describe: Callable[[Mapping[str, object]], str] = dataclasses.field(repr=False)

    @property
    def params(self) -> tuple[str, ...]:
        """Every parameter of the kind: the required ones, then the optional ones."""
        return (*self.required, *self.optional)

    def label(self, params: Mapping[str, object]) -> str:
        """The short text plots and frames show for a fault of this kind.

        Args:
            params: The fault's parameters (extra keys are ignored).

        Returns:
            E.g. ``"pause (20s)"``, ``"cut reply (8s)"``, ``"wall -30s"``: the kind's own
            text, then the duration in seconds when the kind lasts one and it is given.
        """
        text = self.describe(params)
        duration = params.get("duration")
        if self.ends == "duration" and finite_number(duration):
            text += f" ({duration:g}s)"
        return text


def _kind(
    name: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    scope: Scope,
    summary: str,
    *,
    describe: Callable[[Mapping[str, object]], str] | None = None,
    real: str | None = None,
) -> FaultKind:
    params = (*required, *optional)
    time_params = tuple(
        p for p in params if p in ("duration", "resign_duration", "seconds") or p.endswith("_s")
    )
    return FaultKind(
        name=name,
        required=required,
        optional=optional,
        time_params=time_params,
        scope=scope,
        ends="duration" if "duration" in params else "instant",
        real=real,
        summary=summary,
        describe=describe or _plain(name),
    )


_ROWS = (
    _kind("crash", (), (), "node", "the member's process dies at once (SIGKILL)"),
    _kind(
        "restart",
        (),
        (),
        "membership",
        "a member that is down (crashed, or its election ended) starts again",
    ),
    _kind("start", (), (), "membership", "a member starts (may name a new id: it joins)"),
    _kind(
        "pause",
        ("duration",),
        (),
        "node",
        "the member's process is frozen for duration s (SIGSTOP, then SIGCONT)",
    ),
    _kind("cancel", (), (), "node", "the member's election is cancelled (SIGTERM)"),
    _kind(
        "resign",
        (),
        ("resign_duration",),
        "node",
        "the member resigns leadership, staying out for resign_duration s",
        describe=lambda p: f"resign {p.get('resign_duration', 0)}s",
    ),
    _kind(
        "cut",
        ("duration",),
        ("mode",),
        "storage",
        "requests, replies, both, or writes to storage are lost or refused",
        describe=lambda p: f"cut {p.get('mode', 'request')}",
    ),
    _kind(
        "slow",
        ("latency_s", "duration"),
        (),
        "storage",
        "each storage operation takes latency_s more (half each way)",
        describe=lambda p: f"slow {p.get('latency_s')}s",
    ),
    _kind(
        "error",
        ("after_s", "duration"),
        (),
        "storage",
        "each storage operation fails after after_s, never reaching the storage",
        describe=lambda p: f"error after {p.get('after_s')}s",
    ),
    _kind(
        "ambiguous",
        (),
        ("delay_s",),
        "storage",
        "the next committed update's reply comes delay_s late (lost without delay_s)",
    ),
    _kind(
        "clock_drift",
        ("ppm",),
        ("duration",),
        "clock",
        "the member's clock runs ppm parts per million fast (negative: slow)",
        describe=lambda p: f"drift {p.get('ppm')}ppm",
        real="a real clock's rate cannot be changed",
    ),
    _kind(
        "clock_step",
        ("seconds",),
        (),
        "clock",
        "the member's wall clock jumps by seconds (its monotonic clock does not)",
        describe=lambda p: f"wall {_number(p.get('seconds')):+g}s",
        real="stepping the wall clock would step every member on the machine (and needs root)",
    ),
    _kind(
        "conflicts",
        ("rate", "duration"),
        (),
        "storage",
        "each write is refused as a version conflict with probability rate",
    ),
    _kind(
        "busy",
        ("rate", "duration"),
        (),
        "storage",
        "each operation fails as 'database busy' with probability rate",
    ),
)

#: Every fault kind by name (read-only).
FAULT_KINDS: Final[Mapping[str, FaultKind]] = MappingProxyType({row.name: row for row in _ROWS})


# ---------------------------------------------------------------------- faults


def check_params(kind: str, params: Mapping[str, Any], where: str = "fault") -> dict[str, Any]:
    """Validate the parameters of a fault of ``kind`` (not at/kind/target).

    Args:
        kind: One of :data:`FAULT_KINDS`.
        params: The fault's own keys.
        where: Names the fault in error messages.

    Returns:
        The parameters, checked, in the table's order (``cut`` gets ``mode`` "request"
        when none is given).

    Raises:
        ConfigError: an unknown kind or key, a missing key, or a bad value.
    """
    row = FAULT_KINDS.get(kind)
    if row is None:
        raise ConfigError(f"{where}: unknown fault kind {kind!r}; allowed: {sorted(FAULT_KINDS)}")
    unknown = sorted(set(params) - set(row.params))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for a {kind!r} fault; allowed: {sorted(row.params)}"
        )
    missing = [key for key in row.required if key not in params]
    if missing:
        raise ConfigError(f"{where}: a {kind!r} fault needs {missing}")
    checked: dict[str, Any] = {}
    for key in row.params:
        if key not in params:
            continue
        value = params[key]
        if key == "mode":
            if value not in CUT_MODES:
                raise ConfigError(
                    f"{where}: unknown cut mode {value!r}; allowed: {list(CUT_MODES)}"
                )
        elif key == "delay_s" and value is None:
            pass  # the reply is lost
        elif not finite_number(value):
            raise ConfigError(f"{where}: {key!r} must be a finite number, got {value!r}")
        elif key in _PROBABILITIES and not 0 <= value <= 1:
            raise ConfigError(f"{where}: {key!r} is a probability; allowed: 0 to 1, got {value!r}")
        elif key == "ppm" and value <= MIN_DRIFT_PPM:
            raise ConfigError(
                f"{where}: 'ppm' must be > {MIN_DRIFT_PPM:g} (at -1e6 the clock stops), "
                f"got {value!r}"
            )
        elif key not in _SIGNED and value < 0:
            raise ConfigError(f"{where}: {key!r} must be seconds >= 0, got {value!r}")
        checked[key] = value
    if kind == "cut":
        checked.setdefault("mode", "request")
    return checked


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault.

    Attributes:
        at: Second of the run at which it starts.
        kind: One of :data:`FAULT_KINDS`.
        target: A node id, a tuple of ids, ``"leader"``, ``"all"``, or ``"fault:N"`` (the
            nodes that fault number ``N`` of the schedule hit, e.g. to restart them).
        params: The kind's own keys (e.g. ``duration``, ``mode``), sorted by key.
    """

    at: float
    kind: str
    target: str | tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        """A parameter of this fault, or ``default``."""
        for name, value in self.params:
            if name == key:
                return value
        return default

    @property
    def spec(self) -> FaultKind:
        """This fault's row of :data:`FAULT_KINDS`."""
        return FAULT_KINDS[self.kind]

    @property
    def duration(self) -> float | None:
        """How long the fault lasts in seconds, for kinds that end (else ``None``)."""
        value = self.get("duration")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """The mapping form (what a scenario file holds)."""
        target: Any = list(self.target) if isinstance(self.target, tuple) else self.target
        return {"at": self.at, "kind": self.kind, "target": target, **dict(self.params)}

    @classmethod
    def parse(cls, spec: Fault | Mapping[str, Any], where: str = "fault") -> Fault:
        """Validate one fault mapping; errors name the key and what is allowed.

        Raises:
            ConfigError: unknown kind or key, missing key, or a bad value.
        """
        if isinstance(spec, Fault):
            # Built in code (e.g. by random_schedule): held to the same rules as data.
            spec = spec.to_dict()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: a fault must be a mapping, got {spec!r}")
        kind = spec.get("kind")
        row = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
        if row is None:
            raise ConfigError(
                f"{where}: unknown fault kind {kind!r}; allowed: {sorted(FAULT_KINDS)}"
            )
        kind = row.name
        allowed = {*_COMMON, *row.params}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown} for a {kind!r} fault; "
                f"allowed: {sorted(allowed)}"
            )
        missing = [key for key in ("at", "target", *row.required) if key not in spec]
        if missing:
            raise ConfigError(f"{where}: a {kind!r} fault needs {missing}")
        at = spec["at"]
        if not finite_number(at) or at < 0:
            raise ConfigError(f"{where}: 'at' must be a finite number of seconds >= 0, got {at!r}")
        target = spec["target"]
        if isinstance(target, list | tuple):
            special = [t for t in target if t in SPECIAL_TARGETS or str(t).startswith(_REFERENCE)]
            if not target or not all(isinstance(t, str) and t for t in target) or special:
                raise ConfigError(
                    f"{where}: a target list must hold node ids only, got {list(target)!r}; "
                    f"allowed: {_TARGET_FORMS}"
                )
            if len(set(target)) != len(target):
                raise ConfigError(f"{where}: a target list names a node twice: {list(target)!r}")
            target = tuple(target)
        elif not isinstance(target, str) or not target:
            raise ConfigError(f"{where}: target must be {_TARGET_FORMS}, got {target!r}")
        elif reference_index(target) == -1:
            raise ConfigError(
                f"{where}: target {target!r} is not a fault reference; allowed: 'fault:N' "
                "with N the number of an earlier fault (0 for the first)"
            )
        params = check_params(kind, {k: v for k, v in spec.items() if k not in _COMMON}, where)
        return cls(float(at), kind, target, tuple(sorted(params.items())))


def parse_faults(specs: Iterable[Fault | Mapping[str, Any]] | None) -> tuple[Fault, ...]:
    """Validate a schedule; faults are kept in time order (stable for equal times).

    Faults are numbered in that order (``fault:N`` targets and the trace's ``fault``
    numbers), so a schedule that uses ``fault:N`` must be listed in time order.

    Raises:
        ConfigError: a bad fault, or ``fault:N`` in a schedule not listed in time order.
    """
    if specs is None:
        return ()
    if not isinstance(specs, list | tuple):
        raise ConfigError(f"faults must be a list of fault mappings, got {specs!r}")
    faults = [Fault.parse(spec, where=f"faults[{i}]") for i, spec in enumerate(specs)]
    ordered = sorted(faults, key=lambda f: f.at)
    if ordered != faults and any(
        isinstance(f.target, str) and reference_index(f.target) is not None for f in faults
    ):
        raise ConfigError(
            "faults that use 'fault:N' targets must be listed in time order ('at' not "
            "decreasing): N counts the faults in that order"
        )
    return tuple(ordered)


def check_schedule(
    faults: Sequence[Fault], nodes: Sequence[str], duration: float
) -> tuple[str, ...]:
    """Check a time-ordered schedule against its scenario's nodes and duration.

    Args:
        faults: The schedule, as :func:`parse_faults` returns it.
        nodes: The scenario's initial members.
        duration: The run's length in seconds.

    Returns:
        Every node id the run can have: ``nodes``, then the ids ``start`` faults add.

    Raises:
        ConfigError: a fault that starts at or after the end; a target naming a node that
            does not exist at that point (only ``start`` adds one); a ``fault:N`` that is
            not an earlier fault; a node named like a special target.
    """
    known = list(nodes)
    for index, fault in enumerate(faults):
        where = f"faults[{index}] ({fault.kind} at t={fault.at:g})"
        if fault.at >= duration:
            raise ConfigError(
                f"{where}: starts at or after the run's end (duration {duration:g} s); "
                f"allowed: 0 <= at < {duration:g}"
            )
        target = fault.target
        if isinstance(target, str):
            ref = reference_index(target)
            if ref is not None and ref >= index:
                earlier = f"fault:0 to fault:{index - 1}" if index else "none (it is the first)"
                raise ConfigError(
                    f"{where}: target {target!r} names no earlier fault; allowed: {earlier} "
                    "(faults are numbered in time order from 0)"
                )
            if ref is not None or target in SPECIAL_TARGETS:
                continue
            target = (target,)
        for node in target:
            if node in known:
                continue
            if fault.kind == "start":
                known.append(node)  # a new member joins
                continue
            hint = " (a new node joins with a 'start' fault)" if fault.kind == "restart" else ""
            raise ConfigError(
                f"{where}: target {node!r} is not a node of this scenario{hint}; allowed: "
                f"{_TARGET_FORMS}, with nodes {known}"
            )
    return tuple(known)


def random_schedule(
    rng: random.Random,
    nodes: Sequence[str],
    *,
    start: float,
    end: float,
    count: int,
    max_pause_s: float,
    max_cut_s: float,
    max_slow_s: float = 0.0,
    kinds: Sequence[str] = ("cut", "pause", "crash", "restart", "slow"),
) -> list[Fault]:
    """A random schedule of ``count`` faults in ``[start, end)``, bounded by the maxima.

    Crashed nodes are restarted by a later fault of the same schedule, so the cluster
    heals. Use bounds inside the safety assumptions to check safety properties.

    Args:
        rng: The random source (the schedule depends on it alone).
        nodes: The node ids faults may target (besides ``"leader"``).
        start: First second a fault may start at.
        end: Faults start before this second.
        count: How many faults to draw (restarts of crashes come on top).
        max_pause_s: Longest pause, seconds.
        max_cut_s: Longest cut or slow spell (and longest crash-to-restart), seconds.
        max_slow_s: Largest extra latency of a slow spell, seconds.
        kinds: Kinds to draw from (``restart`` only adds the restarts of crashes).
    """
    faults: list[Fault] = []
    for _ in range(count):
        kind = rng.choice([k for k in kinds if k != "restart"])
        at = round(rng.uniform(start, end), 3)
        # A crash names its node so that the matching restart brings back the same one.
        target: str = rng.choice(list(nodes) if kind == "crash" else [*nodes, "leader"])
        if kind == "pause":
            params: dict[str, Any] = {"duration": round(rng.uniform(0.0, max_pause_s), 3)}
        elif kind == "cut":
            params = {
                "duration": round(rng.uniform(0.0, max_cut_s), 3),
                "mode": rng.choice(CUT_MODES),
            }
        elif kind == "slow":
            params = {
                "latency_s": round(rng.uniform(0.0, max_slow_s), 3),
                "duration": round(rng.uniform(0.0, max_cut_s), 3),
            }
        else:
            params = {}
        faults.append(Fault(at, kind, target, tuple(sorted(params.items()))))
        if kind == "crash" and "restart" in kinds:
            back = round(min(end, at + rng.uniform(0.0, max_cut_s)), 3)
            faults.append(Fault(back, "restart", target))
    return sorted(faults, key=lambda f: f.at)
