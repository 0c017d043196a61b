"""The scenario format: a simulated run written only as data.

See ``simulate()`` for the entry point. A scenario mapping (or YAML/TOML file) holds::

    name: my-pause
    nodes: 3                      # or a list of ids; n1 starts at t=0, the rest at t=1
    start_stagger: 1              # ... plus a seeded phase drawn from [0, start_jitter)
    start_jitter: 2
    config: {lease_duration: 10, renew_interval: 2, renew_deadline: 8}
    nodes_config: {n2: {lease_duration: 15}}
    callback: {stop_latency: 0.1, writes_per_s: 1, prepare_s: 1.0}
    fencing: false
    storage: {latency: {dist: lognormal, median_s: 0.005}}
    clocks: {n2: {drift_ppm: 500}}
    faults:
      - {at: 60, kind: pause, target: leader, duration: 20}
    duration: 300

Unknown keys are errors that name the allowed ones.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from leadersim.config import Config
from leadersim.errors import ConfigError
from leadersim.sim.faults import Fault, parse_faults
from leadersim.sim.latency import Latency

__all__ = ["CallbackSpec", "Scenario", "StorageSpec", "load_scenario_file"]

_CONFIG_KEYS = (
    "lease_duration",
    "renew_interval",
    "renew_deadline",
    "exit_on_renew_fail",
    "stop_before_release",
    "callback_failure_backoff",
)
_CLOCK_KEYS = ("drift_ppm", "wall_offset")


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {given!r}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _number(where: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{where} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackSpec:
    """The built-in leader workload.

    Attributes:
        stop_latency: Seconds the work goes on after its cancel (C); it keeps writing,
            without checking leadership, until it notices.
        writes_per_s: Leader-guarded writes per second (0: an idle leader).
        prepare_s: Seconds between the ``is_leader()`` check and the write.
        raise_after_s: If set, the callback raises this long after each start.
        raise_on: Nodes on which it raises (all when empty).
    """

    stop_latency: float = 0.1
    writes_per_s: float = 1.0
    prepare_s: float = 1.0
    raise_after_s: float | None = None
    raise_on: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> CallbackSpec:
        """Validate a ``callback`` mapping."""
        if spec is None:
            return cls()
        fields = tuple(f.name for f in dataclasses.fields(cls))
        _check_keys("callback", spec, fields)
        values: dict[str, Any] = {}
        for key, value in spec.items():
            if key == "raise_on":
                values[key] = tuple([value] if isinstance(value, str) else value)
            elif key == "raise_after_s" and value is None:
                values[key] = None
            else:
                values[key] = _number(f"callback.{key}", value)
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class StorageSpec:
    """Latency of the simulated storage server (one way), per node and per op."""

    latency: Latency = dataclasses.field(default_factory=Latency)
    latency_by_op: tuple[tuple[str, Latency], ...] = ()
    latency_by_node: tuple[tuple[str, Latency], ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> StorageSpec:
        """Validate a ``storage`` mapping."""
        if spec is None:
            return cls()
        _check_keys("storage", spec, ("latency", "latency_by_op", "latency_by_node"))
        by_op = spec.get("latency_by_op") or {}
        by_node = spec.get("latency_by_node") or {}
        _check_keys("storage.latency_by_op", by_op, ("get", "update", "txn"))
        return cls(
            Latency.parse(spec.get("latency")),
            tuple(sorted((k, Latency.parse(v)) for k, v in by_op.items())),
            tuple(sorted((str(k), Latency.parse(v)) for k, v in by_node.items())),
        )


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A simulated run as data (see the module docstring for the mapping form)."""

    name: str = "adhoc"
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    nodes_config: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    callback: CallbackSpec | Callable[[], Any] = dataclasses.field(default_factory=CallbackSpec)
    fencing: bool = False
    storage: StorageSpec = dataclasses.field(default_factory=StorageSpec)
    clocks: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    duration: float = 300.0
    start_stagger: float = 1.0
    start_jitter: float = 2.0
    description: str = ""

    KEYS = (
        "name",
        "nodes",
        "config",
        "nodes_config",
        "callback",
        "fencing",
        "storage",
        "clocks",
        "faults",
        "duration",
        "start_stagger",
        "start_jitter",
        "description",
    )

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> Scenario:
        """Validate a scenario mapping; errors name the key and what is allowed.

        Raises:
            ConfigError: an unknown key, a bad value, or an invalid elector config.
        """
        _check_keys("scenario", spec, cls.KEYS)
        nodes_spec = spec.get("nodes", 3)
        if isinstance(nodes_spec, int) and not isinstance(nodes_spec, bool):
            if nodes_spec < 1:
                raise ConfigError(f"nodes must be >= 1, got {nodes_spec}")
            nodes = tuple(f"n{i}" for i in range(1, nodes_spec + 1))
        elif isinstance(nodes_spec, list | tuple) and nodes_spec:
            nodes = tuple(str(n) for n in nodes_spec)
            if len(set(nodes)) != len(nodes) or not all(nodes):
                raise ConfigError(f"nodes must be distinct, non-empty ids, got {nodes_spec!r}")
        else:
            raise ConfigError(f"nodes must be a count or a list of ids, got {nodes_spec!r}")
        config = dict(spec.get("config") or {})
        _check_keys("config", config, _CONFIG_KEYS)
        nodes_config = {str(k): dict(v) for k, v in (spec.get("nodes_config") or {}).items()}
        for node, overrides in nodes_config.items():
            _check_keys(f"nodes_config.{node}", overrides, _CONFIG_KEYS)
        clocks = {str(k): dict(v) for k, v in (spec.get("clocks") or {}).items()}
        for node, clock in clocks.items():
            _check_keys(f"clocks.{node}", clock, _CLOCK_KEYS)
        callback_spec = spec.get("callback")
        callback: CallbackSpec | Callable[[], Any]
        callback = callback_spec if callable(callback_spec) else CallbackSpec.parse(callback_spec)
        fencing = spec.get("fencing", False)
        if not isinstance(fencing, bool):
            raise ConfigError(f"fencing must be true or false, got {fencing!r}")
        scenario = cls(
            name=str(spec.get("name", "adhoc")),
            nodes=nodes,
            config=config,
            nodes_config=nodes_config,
            callback=callback,
            fencing=fencing,
            storage=StorageSpec.parse(spec.get("storage")),
            clocks=clocks,
            faults=parse_faults(spec.get("faults")),
            duration=_number("duration", spec.get("duration", 300.0)),
            start_stagger=_number("start_stagger", spec.get("start_stagger", 1.0)),
            start_jitter=_number("start_jitter", spec.get("start_jitter", 2.0)),
            description=str(spec.get("description", "")),
        )
        for node in scenario.nodes:
            scenario.config_for(node)  # validates durations early, naming the node
        return scenario

    def config_for(self, node: str) -> dict[str, Any]:
        """The elector config fields of ``node`` (scenario config + its overrides)."""
        merged = {**self.config, **self.nodes_config.get(node, {})}
        probe = Config(node, storage=object(), leader_callback=_noop, **merged)  # type: ignore[arg-type]
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe.adjust_and_validate()
        except ConfigError as exc:
            raise ConfigError(f"config of node {node!r}: {exc}") from exc
        return merged

    def replace(self, **changes: Any) -> Scenario:
        """A copy with top-level keys replaced (mappings as in the scenario format)."""
        spec = self.to_mapping()
        spec.update(changes)
        return Scenario.from_mapping(spec)

    def to_mapping(self) -> dict[str, Any]:
        """The mapping form of this scenario."""
        callback: Any = self.callback
        if isinstance(callback, CallbackSpec):
            callback = {
                f.name: getattr(callback, f.name)
                for f in dataclasses.fields(CallbackSpec)
                if getattr(callback, f.name) != f.default
            }
            if "raise_on" in callback:
                callback["raise_on"] = list(callback["raise_on"])
        return {
            "name": self.name,
            "nodes": list(self.nodes),
            "config": dict(self.config),
            "nodes_config": {k: dict(v) for k, v in self.nodes_config.items()},
            "callback": callback,
            "fencing": self.fencing,
            "storage": {
                "latency": dataclasses.asdict(self.storage.latency),
                "latency_by_op": {k: dataclasses.asdict(v) for k, v in self.storage.latency_by_op},
                "latency_by_node": {
                    k: dataclasses.asdict(v) for k, v in self.storage.latency_by_node
                },
            },
            "clocks": {k: dict(v) for k, v in self.clocks.items()},
            "faults": [f.to_dict() for f in self.faults],
            "duration": self.duration,
            "start_stagger": self.start_stagger,
            "start_jitter": self.start_jitter,
            "description": self.description,
        }


async def _noop() -> None:
    return None


def load_scenario_file(path: str | Path) -> Scenario:
    """Read a scenario from a YAML (``.yaml``/``.yml``), TOML or JSON file.

    Raises:
        ConfigError: the file cannot be parsed or holds an invalid scenario; the message
            names the file.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()  # scenario.YAML is a YAML file too
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ConfigError(
                    f"{path}: reading YAML needs PyYAML (pip install pyyaml)"
                ) from exc
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: unknown scenario file type; use .yaml, .toml or .json")
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: cannot parse scenario file: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a scenario file must hold a mapping")
    try:
        return Scenario.from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
