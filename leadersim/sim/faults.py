"""Fault records and schedules, as data.

A fault is ``{at, kind, target, ...}``: at simulated second ``at``, apply ``kind`` to
``target`` (a node id, a list of ids, ``"leader"`` — the node whose callback is running
when the fault begins — or ``"all"``). The other keys depend on the kind (see
:data:`FAULT_KINDS`). Schedules are lists of faults, written by hand or generated from a
seed by :func:`random_schedule`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from leadersim.errors import ConfigError

__all__ = ["CUT_MODES", "FAULT_KINDS", "Fault", "parse_faults", "random_schedule"]

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
_COMMON = ("at", "kind", "target")


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
            return spec
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
        if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
            raise ConfigError(f"{where}: 'at' must be seconds >= 0, got {at!r}")
        target = spec["target"]
        if isinstance(target, list | tuple):
            if not target or not all(isinstance(t, str) and t for t in target):
                raise ConfigError(f"{where}: target list must hold node ids, got {target!r}")
            target = tuple(target)
        elif not isinstance(target, str) or not target:
            raise ConfigError(
                f"{where}: target must be a node id, a list of ids, 'leader' or 'all', "
                f"got {target!r}"
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
                pass
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}: {key!r} must be a number, got {value!r}")
            elif key not in ("ppm", "seconds") and value < 0:
                raise ConfigError(f"{where}: {key!r} must be >= 0, got {value!r}")
            params[key] = value
        if kind == "cut":
            params.setdefault("mode", "request")
        return cls(float(at), kind, target, tuple(sorted(params.items())))


def parse_faults(specs: Iterable[Fault | Mapping[str, Any]] | None) -> tuple[Fault, ...]:
    """Validate a schedule; faults are kept in time order (stable for equal times)."""
    if specs is None:
        return ()
    if isinstance(specs, Mapping | str):
        raise ConfigError(f"faults must be a list of fault mappings, got {specs!r}")
    faults = [Fault.parse(spec, where=f"faults[{i}]") for i, spec in enumerate(specs)]
    return tuple(sorted(faults, key=lambda f: f.at))


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
