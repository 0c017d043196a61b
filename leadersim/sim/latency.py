"""Latency distributions of simulated storage operations (one direction each).

Each distribution takes only its own keys (plus the optional heavy tail): a key of
another distribution would be ignored, so it is an error.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import Any

from leadersim.errors import ConfigError
from leadersim.sim.faults import finite_number

__all__ = ["Latency"]

#: Each distribution's own keys.
_DIST_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("value_s",),
    "uniform": ("low_s", "high_s"),
    "exponential": ("mean_s",),
    "lognormal": ("median_s", "sigma"),
}
_DISTS = tuple(_DIST_KEYS)
_TAIL_KEYS = ("tail_p", "tail_min_s", "tail_max_s")
_KEYS = {"dist", *_TAIL_KEYS, *(k for keys in _DIST_KEYS.values() for k in keys)}


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """A one-way latency distribution, in seconds.

    The default is the catalogue's baseline: lognormal with a 5 ms median. A lognormal
    takes ``median_s`` (default 0.005) and ``sigma`` (default 0.5); the other
    distributions need their keys.

    Attributes:
        dist: ``constant`` (``value_s``), ``uniform`` (``low_s``..``high_s``),
            ``exponential`` (``mean_s``) or ``lognormal`` (``median_s``, ``sigma``).
        tail_p: Probability of a rare heavy-tail sample instead, drawn uniformly from
            ``tail_min_s``..``tail_max_s``.
    """

    dist: str = "lognormal"
    value_s: float = 0.0
    low_s: float = 0.0
    high_s: float = 0.0
    mean_s: float = 0.0
    median_s: float = 0.005
    sigma: float = 0.5
    tail_p: float = 0.0
    tail_min_s: float = 0.0
    tail_max_s: float = 0.0

    @classmethod
    def parse(
        cls, spec: Latency | Mapping[str, Any] | float | None, where: str = "latency"
    ) -> Latency:
        """Build from a mapping (``{"dist": "lognormal", "median_s": 0.005}``) or seconds.

        Args:
            spec: A mapping, a constant in seconds, a Latency, or ``None`` (the default).
            where: Names the value in error messages (e.g. ``storage.latency``).

        Raises:
            ConfigError: an unknown distribution, a key the distribution does not take, a
                value that is not a finite number >= 0, ``tail_p`` outside [0, 1], or a
                range whose low end is above its high end.
        """
        if spec is None:
            return cls()
        if isinstance(spec, Latency):
            return spec
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            if not finite_number(spec) or spec < 0:
                raise ConfigError(f"{where} must be finite seconds >= 0, got {spec!r}")
            return cls(dist="constant", value_s=float(spec))
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a mapping or seconds, got {spec!r}")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
        dist = spec.get("dist", "lognormal")
        if dist not in _DISTS:
            raise ConfigError(f"{where}: unknown dist {dist!r}; allowed: {list(_DISTS)}")
        own = (*_DIST_KEYS[dist], *_TAIL_KEYS)
        foreign = sorted(set(spec) - {"dist", *own})
        if foreign:
            raise ConfigError(
                f"{where}: key(s) {foreign} do not apply to dist {dist!r}; allowed: {list(own)}"
            )
        missing = [k for k in _DIST_KEYS[dist] if k not in spec and dist != "lognormal"]
        if missing:
            raise ConfigError(f"{where}: dist {dist!r} needs {missing}")
        values: dict[str, Any] = {"dist": dist}
        for key in own:
            if key in spec:
                value = spec[key]
                if not finite_number(value) or value < 0:
                    raise ConfigError(f"{where}.{key} must be a finite number >= 0, got {value!r}")
                values[key] = float(value)
        latency = cls(**values)
        if latency.tail_p > 1:
            raise ConfigError(
                f"{where}.tail_p is a probability; allowed: 0 to 1, got {latency.tail_p!r}"
            )
        for low, high in (("low_s", "high_s"), ("tail_min_s", "tail_max_s")):
            if getattr(latency, low) > getattr(latency, high):
                raise ConfigError(
                    f"{where}.{low} ({getattr(latency, low):g}) must not exceed {high} "
                    f"({getattr(latency, high):g})"
                )
        if (
            latency.tail_p == 0
            and {"tail_min_s", "tail_max_s"} & set(spec)
            and (latency.tail_min_s or latency.tail_max_s)
        ):
            raise ConfigError(f"{where}: tail_min_s/tail_max_s need tail_p > 0 to have any effect")
        return latency

    def to_mapping(self) -> dict[str, Any]:
        """The mapping form: the distribution's own keys, and the tail's if it has one."""
        keys = ("dist", *_DIST_KEYS[self.dist])
        if self.tail_p > 0:
            keys += _TAIL_KEYS
        return {key: getattr(self, key) for key in keys}

    def sample(self, rng: random.Random) -> float:
        """Draw one latency in seconds."""
        if self.tail_p and rng.random() < self.tail_p:
            return rng.uniform(self.tail_min_s, self.tail_max_s)
        dist = self.dist
        if dist != "lognormal":  # the baseline's lognormal is tested first: it is the usual
            if dist == "constant":
                return self.value_s
            if dist == "uniform":
                return rng.uniform(self.low_s, self.high_s)
            if dist == "exponential":
                return rng.expovariate(1.0 / self.mean_s) if self.mean_s > 0 else 0.0
        # random's lognormvariate(mu, sigma) is exp(normalvariate(mu, sigma)): the same
        # draws and the same value, one call fewer.
        median = self.median_s
        return math.exp(rng.normalvariate(math.log(median), self.sigma)) if median else 0.0
