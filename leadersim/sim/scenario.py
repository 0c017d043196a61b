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
    timers: {lateness: {dist: constant, value_s: 0.001}}   # how late members' timers fire
    faults:
      - {at: 60, kind: pause, target: leader, duration: 20}
    duration: 300

Unknown keys are errors that name the allowed ones. Every number must be finite (no NaN,
no infinity); durations and latencies are seconds >= 0 and ``duration`` is > 0. Node ids
named anywhere (``nodes_config``, ``clocks``, ``storage.latency_by_node``,
``callback.raise_on``, fault targets) must be members: the ``nodes``, or ids that a
``start`` fault adds. A fault must start before ``duration``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from leadersim.config import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RENEW_INTERVAL,
    Config,
)
from leadersim.errors import ConfigError
from leadersim.faults import FAULT_KINDS
from leadersim.sim.faults import (
    MIN_DRIFT_PPM,
    SPECIAL_TARGETS,
    Fault,
    check_schedule,
    finite_number,
    parse_faults,
)
from leadersim.sim.latency import Latency

__all__ = [
    "FILE_TYPES",
    "CallbackSpec",
    "Scenario",
    "StorageSpec",
    "apply_dotted",
    "load_scenario_file",
    "read_data_file",
]

_CONFIG_KEYS = (
    "lease_duration",
    "renew_interval",
    "renew_deadline",
    "exit_on_renew_fail",
    "stop_before_release",
    "callback_failure_backoff",
)
_CLOCK_KEYS = ("drift_ppm", "wall_offset")
#: Elector config keys that are seconds (what :meth:`Scenario.scaled` multiplies), with
#: the elector's default for a key a scenario leaves out.
_CONFIG_TIMES = {
    "lease_duration": DEFAULT_LEASE_DURATION,
    "renew_interval": DEFAULT_RENEW_INTERVAL,
    "renew_deadline": DEFAULT_RENEW_DEADLINE,
    "callback_failure_backoff": 0.0,
}
#: Latency fields that are seconds (``sigma`` and ``tail_p`` are shapes, not times).
_LATENCY_TIMES = (
    "value_s",
    "low_s",
    "high_s",
    "mean_s",
    "median_s",
    "tail_min_s",
    "tail_max_s",
)
#: Callback fields that are seconds (``writes_per_s`` is a rate: divided instead).
_CALLBACK_TIMES = ("stop_latency", "prepare_s", "raise_after_s")


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {given!r}")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _mapping(where: str, given: Any) -> Mapping[Any, Any]:
    """``given`` as a mapping (``None``: empty); anything else is an error."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {given!r}")
    return given


def _number(where: str, value: Any, *, positive: bool = False, unit: str = "seconds") -> float:
    """A finite number >= 0 (> 0 if ``positive``) of ``unit``."""
    if not finite_number(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{where} must be a finite number of {unit} {bound}, got {value!r}")
    return float(value)


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _node_ids(spec: Any) -> tuple[str, ...]:
    """The ids of a ``nodes`` value: a count (n1..nN) or a list of distinct ids."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ConfigError(f"nodes must be >= 1, got {spec}")
        return tuple(f"n{i}" for i in range(1, spec + 1))
    if not isinstance(spec, list | tuple) or not spec:
        raise ConfigError(f"nodes must be a count or a non-empty list of ids, got {spec!r}")
    bad = [n for n in spec if isinstance(n, bool) or not isinstance(n, str | int) or n == ""]
    if bad:
        raise ConfigError(f"nodes: ids must be non-empty strings (or integers), got {bad!r}")
    nodes = tuple(str(n) for n in spec)
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"nodes must be distinct ids, got {list(spec)!r}")
    special = [n for n in nodes if n in SPECIAL_TARGETS or n.startswith("fault:")]
    if special:
        raise ConfigError(
            f"nodes: {special} would read as a fault target; a node id must not be "
            f"{list(SPECIAL_TARGETS)} nor start with 'fault:'"
        )
    return nodes


def _per_node(
    where: str, given: Any, members: tuple[str, ...], keys: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """A mapping of node id to settings; every id must be a member of the run."""
    entries: dict[str, dict[str, Any]] = {}
    for raw, settings in _mapping(where, given).items():
        node = str(raw)
        if node not in members:
            raise ConfigError(
                f"{where}: {node!r} is not a node of this scenario; allowed: {list(members)}"
            )
        _check_keys(f"{where}.{node}", settings, keys)
        entries[node] = dict(settings)
    return entries


def _check_clock(where: str, clock: Mapping[str, Any]) -> None:
    for key, value in clock.items():
        if not finite_number(value):
            raise ConfigError(f"{where}.{key} must be a finite number, got {value!r}")
    drift = clock.get("drift_ppm", 0.0)
    if drift <= MIN_DRIFT_PPM:
        raise ConfigError(
            f"{where}.drift_ppm must be > {MIN_DRIFT_PPM:g} (at -1e6 the clock stops), "
            f"got {drift!r}"
        )


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
                ids = [value] if isinstance(value, str) else value
                if not isinstance(ids, list | tuple) or not all(
                    isinstance(n, str) and n for n in ids
                ):
                    raise ConfigError(
                        f"callback.raise_on must be a node id or a list of ids, got {value!r}"
                    )
                values[key] = tuple(ids)
            elif key == "raise_after_s" and value is None:
                values[key] = None
            else:
                unit = "writes per second" if key == "writes_per_s" else "seconds"
                values[key] = _number(f"callback.{key}", value, unit=unit)
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
        by_op = _mapping("storage.latency_by_op", spec.get("latency_by_op"))
        by_node = _mapping("storage.latency_by_node", spec.get("latency_by_node"))
        _check_keys("storage.latency_by_op", by_op, ("get", "update", "txn"))
        return cls(
            Latency.parse(spec.get("latency"), "storage.latency"),
            tuple(
                sorted(
                    (k, Latency.parse(v, f"storage.latency_by_op.{k}")) for k, v in by_op.items()
                )
            ),
            tuple(
                sorted(
                    (str(k), Latency.parse(v, f"storage.latency_by_node.{k}"))
                    for k, v in by_node.items()
                )
            ),
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
    #: How late every timer of a member fires (a latency model, seconds; ``None``: on
    #: time). A real process wakes late and spends time of its own in each round, so its
    #: rounds are spaced a little more than I apart; fitted by
    #: :func:`leadersim.analysis.fit_timers`.
    timer_lateness: Latency | None = None
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
        "timers",
        "faults",
        "duration",
        "start_stagger",
        "start_jitter",
        "description",
    )

    @classmethod
    def from_mapping(
        cls, spec: Mapping[str, Any], *, drop_faults_after_end: bool = False
    ) -> Scenario:
        """Validate a scenario mapping; errors name the key and what is allowed.

        Args:
            spec: The scenario in its mapping form.
            drop_faults_after_end: Leave out the faults that start at or after
                ``duration`` instead of refusing them: for a run deliberately shortened
                (an override of ``duration``), which keeps the schedule's beginning.

        Raises:
            ConfigError: an unknown key, a bad value, a node id that is not a member, a
                fault after the end, or an invalid elector config.
        """
        _check_keys("scenario", spec, cls.KEYS)
        nodes = _node_ids(spec.get("nodes", 3))
        duration = _number("duration", spec.get("duration", 300.0), positive=True)
        faults = parse_faults(spec.get("faults"))
        if drop_faults_after_end:
            # Faults are in time order and refer only to earlier ones: the kept ones are
            # a prefix, with every reference intact.
            faults = tuple(f for f in faults if f.at < duration)
        members = check_schedule(faults, nodes, duration)
        config = dict(_mapping("config", spec.get("config")))
        _check_keys("config", config, _CONFIG_KEYS)
        nodes_config = _per_node("nodes_config", spec.get("nodes_config"), members, _CONFIG_KEYS)
        clocks = _per_node("clocks", spec.get("clocks"), members, _CLOCK_KEYS)
        for node, clock in clocks.items():
            _check_clock(f"clocks.{node}", clock)
        callback_spec = spec.get("callback")
        callback: CallbackSpec | Callable[[], Any]
        callback = callback_spec if callable(callback_spec) else CallbackSpec.parse(callback_spec)
        if isinstance(callback, CallbackSpec):
            strangers = [n for n in callback.raise_on if n not in members]
            if strangers:
                raise ConfigError(
                    f"callback.raise_on: {strangers} not node(s) of this scenario; "
                    f"allowed: {list(members)}"
                )
        fencing = spec.get("fencing", False)
        if not isinstance(fencing, bool):
            raise ConfigError(f"fencing must be true or false, got {fencing!r}")
        storage = StorageSpec.parse(spec.get("storage"))
        strangers = [n for n, _ in storage.latency_by_node if n not in members]
        if strangers:
            raise ConfigError(
                f"storage.latency_by_node: {strangers} not node(s) of this scenario; "
                f"allowed: {list(members)}"
            )
        timers = _mapping("timers", spec.get("timers"))
        _check_keys("timers", timers, ("lateness",))
        lateness = timers.get("lateness")
        scenario = cls(
            name=_text("name", spec.get("name", "adhoc")),
            nodes=nodes,
            config=config,
            nodes_config=nodes_config,
            callback=callback,
            fencing=fencing,
            storage=storage,
            clocks=clocks,
            timer_lateness=None if lateness is None else Latency.parse(lateness, "timers.lateness"),
            faults=faults,
            duration=duration,
            start_stagger=_number("start_stagger", spec.get("start_stagger", 1.0)),
            start_jitter=_number("start_jitter", spec.get("start_jitter", 2.0)),
            description=_text("description", spec.get("description", "")),
        )
        for node in members:
            scenario.config_for(node)  # validates durations early, naming the node
        return scenario

    def scaled(self, factor: float) -> Scenario:
        """This scenario with every time multiplied by ``factor`` (so it runs in less time).

        Multiplied: each fault's ``at`` and its parameters that are seconds (duration,
        latency, error delay, ambiguous delay, resign duration, clock step), the run's
        ``duration``, ``start_stagger`` and ``start_jitter``, the timers' lateness, the
        elector's lease, renew
        interval, renew deadline and callback backoff (in ``config`` and every
        ``nodes_config``; a lease, interval or deadline the scenario leaves to the
        elector's default is written out, scaled), the storage latencies, and the
        callback's stop latency, preparation and raise delay; ``writes_per_s`` is divided,
        so a leader makes as many writes per lease as before. Rates (``ppm``, ``rate``,
        ``sigma``, ``tail_p``), modes and counts stay. A Python callback is kept as it is.

        Args:
            factor: The multiplier, a finite number > 0 (0.1 runs a 300-s scenario in
                30 s).

        Returns:
            The scaled scenario (``self`` when ``factor`` is 1).

        Raises:
            ConfigError: ``factor`` is not a finite number > 0.
        """
        if not finite_number(factor) or factor <= 0:
            raise ConfigError(f"scale must be a finite number > 0, got {factor!r}")
        if factor == 1:
            return self
        spec = self.to_mapping()

        def times(mapping: Mapping[str, Any], keys: Any) -> dict[str, Any]:
            return {
                k: (v * factor if k in keys and finite_number(v) else v) for k, v in mapping.items()
            }

        spec["config"] = times({**_CONFIG_TIMES, **spec["config"]}, _CONFIG_TIMES)
        if not spec["config"]["callback_failure_backoff"]:
            del spec["config"]["callback_failure_backoff"]  # keep the elector's default
        spec["nodes_config"] = {n: times(c, _CONFIG_TIMES) for n, c in spec["nodes_config"].items()}
        spec["clocks"] = {n: times(c, ("wall_offset",)) for n, c in spec["clocks"].items()}
        storage = spec["storage"]
        storage["latency"] = times(storage["latency"], _LATENCY_TIMES)
        for key in ("latency_by_op", "latency_by_node"):
            storage[key] = {k: times(v, _LATENCY_TIMES) for k, v in storage[key].items()}
        if "timers" in spec:
            spec["timers"] = {"lateness": times(spec["timers"]["lateness"], _LATENCY_TIMES)}
        if isinstance(self.callback, CallbackSpec):
            callback = times(spec["callback"], _CALLBACK_TIMES)
            for key in _CALLBACK_TIMES:
                if key not in callback and getattr(self.callback, key) is not None:
                    callback[key] = getattr(self.callback, key) * factor
            callback["writes_per_s"] = self.callback.writes_per_s / factor
            spec["callback"] = callback
        spec["faults"] = [
            {**times(f, FAULT_KINDS[f["kind"]].time_params), "at": f["at"] * factor}
            for f in spec["faults"]
        ]
        for key in ("duration", "start_stagger", "start_jitter"):
            spec[key] = spec[key] * factor
        return Scenario.from_mapping(spec)

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
        """A copy with top-level keys replaced (mappings as in the scenario format).

        A new ``duration`` shortens the run: faults that would start at or after it are
        left out.
        """
        spec = self.to_mapping()
        spec.update(changes)
        return Scenario.from_mapping(spec, drop_faults_after_end="duration" in changes)

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
        mapping: dict[str, Any] = {
            "name": self.name,
            "nodes": list(self.nodes),
            "config": dict(self.config),
            "nodes_config": {k: dict(v) for k, v in self.nodes_config.items()},
            "callback": callback,
            "fencing": self.fencing,
            "storage": {
                "latency": self.storage.latency.to_mapping(),
                "latency_by_op": {k: v.to_mapping() for k, v in self.storage.latency_by_op},
                "latency_by_node": {k: v.to_mapping() for k, v in self.storage.latency_by_node},
            },
            "clocks": {k: dict(v) for k, v in self.clocks.items()},
            "faults": [f.to_dict() for f in self.faults],
            "duration": self.duration,
            "start_stagger": self.start_stagger,
            "start_jitter": self.start_jitter,
            "description": self.description,
        }
        if self.timer_lateness is not None:  # left out when unset: older files read the same
            mapping["timers"] = {"lateness": self.timer_lateness.to_mapping()}
        return mapping


async def _noop() -> None:
    return None


#: Scenario file types, by lower-cased extension.
FILE_TYPES = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}


def apply_dotted(spec: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` (a deep copy) with ``overrides`` applied in order.

    A key replaces its value; a dotted key (``config.lease_duration``) reaches into the
    nested mappings, creating one where there is none. The one rule for overrides: a
    catalogue variant, ``simulate(**overrides)``, ``--set`` and a sweep's grid point.
    """
    result: dict[str, Any] = _deep_copy(spec)
    for key, value in overrides.items():
        parts = key.split(".")
        target = result
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else _deep_copy(child)
            target[part] = child
            target = child
        target[parts[-1]] = _deep_copy(value)
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_scenario_file(path: str | Path) -> Scenario:
    """Read a scenario from a YAML (``.yaml``/``.yml``), TOML or JSON file.

    The extension is matched case-insensitively (``.YAML`` is YAML). A key given twice
    in the same mapping is an error (YAML and JSON parsers would keep the last).

    Raises:
        ConfigError: one line naming the file and the problem: it does not exist or
            cannot be read, has an unknown extension, cannot be parsed (with the line
            and column), or holds an invalid scenario.
    """
    path = Path(path)
    data = read_data_file(path)
    try:
        return Scenario.from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def read_data_file(
    path: str | Path, what: str = "scenario file", *, fast: bool = False
) -> Mapping[str, Any]:
    """The mapping a YAML, TOML or JSON file holds, read as :func:`load_scenario_file` does.

    Also reads the catalogue's entry files (``what`` names the kind of file in errors;
    ``fast`` parses YAML with libyaml when it is installed, about five times faster, its
    parse errors worded a little differently).

    Raises:
        ConfigError: one line naming the file: missing or unreadable, an unknown
            extension, a parse error (with the line and column), a key given twice, or
            data that is not a mapping.
    """
    path = Path(path)
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: unknown {what} type {path.suffix!r}; allowed: "
            f"{', '.join(FILE_TYPES)} (any case)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    data = _parse(path, kind, text, fast=fast)
    if not isinstance(data, Mapping):
        found = "nothing (the file is empty)" if data is None else type(data).__name__
        raise ConfigError(f"{path}: a {what} must hold a mapping of keys, got {found}")
    return data


def _parse(path: Path, kind: str, text: str, *, fast: bool = False) -> Any:
    """The data of a scenario file; a parse error is one line with its position."""
    if kind == "TOML":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
            raise ConfigError(f"{path}: cannot parse TOML: {exc}") from None
    if kind == "JSON":
        try:
            return json.loads(text, object_pairs_hook=_unique_json_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}: cannot parse JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"{path}: cannot parse JSON: {exc}") from None
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml)") from exc
    try:
        return yaml.load(text, Loader=_yaml_loader(fast))  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        at = f" (at line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: cannot parse YAML: {problem}{at}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot parse YAML: {' '.join(str(exc).split())}") from None


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"key {key!r} is given twice in one object")
        result[key] = value
    return result


_YAML_LOADERS: dict[bool, Any] = {}


def _yaml_loader(fast: bool = False) -> Any:
    """A YAML SafeLoader that refuses a key given twice in one mapping (built once each).

    ``fast``: on libyaml's CSafeLoader, if installed (the same documents, parsed in C).
    """
    if fast not in _YAML_LOADERS:
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

        class UniqueKeyLoader(base):  # type: ignore[misc,valid-type]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: set[Any] = set()
                for key_node, _value in node.value:
                    key = self.construct_object(key_node, deep=deep)
                    if isinstance(key, list | dict):
                        continue  # unhashable: SafeLoader reports it
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key!r} is given twice in one mapping",
                            key_node.start_mark,
                        )
                    seen.add(key)
                return super().construct_mapping(node, deep=deep)

        _YAML_LOADERS[fast] = UniqueKeyLoader
    return _YAML_LOADERS[fast]
