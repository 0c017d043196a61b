"""Fault records and schedules, as data.

A fault is ``{at, kind, target, ...}``: at simulated second ``at``, apply ``kind`` to
``target`` (a node id, a list of ids, ``"leader"`` — the node whose callback is running
when the fault begins — ``"all"``, or ``"fault:N"``, the nodes an earlier fault hit). The
other keys depend on the kind (see :data:`FAULT_KINDS`). Schedules are lists of faults,
written by hand or generated from a seed by :func:`random_schedule`.

``start`` is the one kind that may name a new id (a node joins the run). ``restart``
brings back a member that is down: crashed, or whose election has ended (a ``cancel``, a
stop after a failed renewal); a member still stopping after a ``cancel`` comes back once
it has stopped, and a running one is left as it is.

Every number must be finite; durations, latencies and delays are seconds >= 0, a
``rate`` is a probability in [0, 1], a ``ppm`` drift is above -1e6 (a clock that runs
at all). :func:`check_schedule` checks a schedule against its scenario: targets that
exist, references to earlier faults, start times before the run's end.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from leadersim.errors import ConfigError

__all__ = [
    "CUT_MODES",
    "FAULT_KINDS",
    "SPECIAL_TARGETS",
    "Fault",
    "check_schedule",
    "finite_number",
    "parse_faults",
    "random_schedule",
]

#: For each fault kind: its required keys and its optional keys (besides at/kind/target).
FAULT_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "crash": ((), ()),
    "restart": ((), ()),
    "start": ((), ()),
    "pause": (("duration",), ()),
    "cancel": ((), ()),
    "resign": ((), ("resign_duration",)),
    "cut": (("duration",), ("mode",)),
    "slow": (("latency_s", "duration"), ()),
    "error": (("after_s", "duration"), ()),
    "ambiguous": ((), ("delay_s",)),
    "clock_drift": (("ppm",), ("duration",)),
    "clock_step": (("seconds",), ()),
    "conflicts": (("rate", "duration"), ()),
    "busy": (("rate", "duration"), ()),
}

#: Modes of a ``cut``: requests lost, replies lost, both, or writes refused (reads work).
CUT_MODES = ("request", "reply", "both", "writes")
#: Targets that are not node ids (besides ``fault:N``); no node may be named like them.
SPECIAL_TARGETS = ("leader", "all")
_COMMON = ("at", "kind", "target")
_REFERENCE = "fault:"
#: Parameters that are probabilities.
_PROBABILITIES = ("rate",)
#: Parameters that may be negative (a drift, a wall-clock step back).
_SIGNED = ("ppm", "seconds")
#: A drift of -1e6 ppm stops the clock; below it the clock would run backwards.
MIN_DRIFT_PPM = -1e6
_TARGET_FORMS = "a node id, a list of node ids, 'leader', 'all' or 'fault:N'"


def finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (not a bool) other than NaN or infinity."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def reference_index(target: str) -> int | None:
    """``N`` of a ``"fault:N"`` target, or ``None`` for any other target."""
    if not target.startswith(_REFERENCE):
        return None
    digits = target.removeprefix(_REFERENCE)
    return int(digits) if digits.isdigit() and digits.isascii() else -1


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault.

    Attributes:
        at: Simulated second at which it starts.
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
    def duration(self) -> float | None:
        """How long the fault lasts, for kinds that end (else ``None``)."""
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
        if kind not in FAULT_KINDS:
            raise ConfigError(
                f"{where}: unknown fault kind {kind!r}; allowed: {sorted(FAULT_KINDS)}"
            )
        required, optional = FAULT_KINDS[kind]
        allowed = set(_COMMON) | set(required) | set(optional)
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown} for a {kind!r} fault; "
                f"allowed: {sorted(allowed)}"
            )
        missing = [key for key in ("at", "target", *required) if key not in spec]
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
        params: dict[str, Any] = {}
        for key in (*required, *optional):
            if key not in spec:
                continue
            value = spec[key]
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
                raise ConfigError(
                    f"{where}: {key!r} is a probability; allowed: 0 to 1, got {value!r}"
                )
            elif key == "ppm" and value <= MIN_DRIFT_PPM:
                raise ConfigError(
                    f"{where}: 'ppm' must be > {MIN_DRIFT_PPM:g} (at -1e6 the clock stops), "
                    f"got {value!r}"
                )
            elif key not in _SIGNED and value < 0:
                raise ConfigError(f"{where}: {key!r} must be seconds >= 0, got {value!r}")
            params[key] = value
        if kind == "cut":
            params.setdefault("mode", "request")
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
        duration: The run's length in simulated seconds.

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
