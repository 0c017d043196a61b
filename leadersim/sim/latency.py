"""Latency distributions of simulated storage operations (one direction each)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import Any

from leadersim.errors import ConfigError

__all__ = ["Latency"]

_DISTS = ("constant", "uniform", "exponential", "lognormal")
_KEYS = {
    "dist",
    "value_s",
    "low_s",
    "high_s",
    "mean_s",
    "median_s",
    "sigma",
    "tail_p",
    "tail_min_s",
    "tail_max_s",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """A one-way latency distribution, in seconds.

    The default is the catalogue's baseline: lognormal with a 5 ms median.

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
    def parse(cls, spec: Latency | Mapping[str, Any] | float | None) -> Latency:
        """Build from a mapping (``{"dist": "lognormal", "median_s": 0.005}``) or seconds.

        Raises:
            ConfigError: an unknown distribution or key, or a negative value.
        """
        if spec is None:
            return cls()
        if isinstance(spec, Latency):
            return spec
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            return cls(dist="constant", value_s=float(spec))
        if not isinstance(spec, Mapping):
            raise ConfigError(f"latency must be a mapping or seconds, got {spec!r}")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ConfigError(f"unknown latency key(s) {unknown}; allowed: {sorted(_KEYS)}")
        dist = spec.get("dist", "lognormal")
        if dist not in _DISTS:
            raise ConfigError(f"unknown latency dist {dist!r}; allowed: {list(_DISTS)}")
        values: dict[str, Any] = {"dist": dist}
        for key in _KEYS - {"dist"}:
            if key in spec:
                value = spec[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"latency {key} must be a number >= 0, got {value!r}")
                values[key] = float(value)
        return cls(**values)

    def sample(self, rng: random.Random) -> float:
        """Draw one latency in seconds."""
        if self.tail_p and rng.random() < self.tail_p:
            return rng.uniform(self.tail_min_s, self.tail_max_s)
        if self.dist == "constant":
            return self.value_s
        if self.dist == "uniform":
            return rng.uniform(self.low_s, self.high_s)
        if self.dist == "exponential":
            return rng.expovariate(1.0 / self.mean_s) if self.mean_s > 0 else 0.0
        return rng.lognormvariate(math.log(self.median_s), self.sigma) if self.median_s else 0.0
