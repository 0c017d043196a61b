"""``simulate()``: the user-facing entry point of the simulator.

Resolves a scenario (a catalogue name, a :class:`~leadersim.sim.scenario.Scenario`, a
mapping in the scenario format, or a path to a YAML/TOML/JSON file), applies overrides,
runs it with a seed, and returns a :class:`~leadersim.analysis.result.Result`.

Synchronous and safe to call inside a running event loop (Jupyter): the simulated loop
then runs in a worker thread, never nested in the caller's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from leadersim.analysis.result import Result
from leadersim.errors import ConfigError, SafetyWarning
from leadersim.sim.scenario import (
    FILE_TYPES,
    CallbackSpec,
    Scenario,
    apply_dotted,
    load_scenario_file,
)
from leadersim.sim.world import Run, World

__all__ = [
    "SCENARIO_FILE_SUFFIXES",
    "apply_overrides",
    "dump_scenario",
    "is_scenario_file",
    "prepare_scenario",
    "resolve_scenario",
    "run_result",
    "simulate",
]


#: Suffixes (compared case-insensitively) that make a scenario string a file path.
SCENARIO_FILE_SUFFIXES = tuple(FILE_TYPES)


def is_scenario_file(text: str | Path) -> bool:
    """Whether ``text`` names a scenario file (by its suffix, in any case), not a catalogue name."""
    return Path(text).suffix.lower() in SCENARIO_FILE_SUFFIXES


def resolve_scenario(
    scenario: str | Path | Scenario | Mapping[str, Any], *, variant: str | None = None
) -> Scenario:
    """Turn any accepted scenario form into a :class:`Scenario`.

    Args:
        scenario: A catalogue name (``"NAME"`` runs the entry's default variant,
            ``"NAME[VARIANT]"`` a named one), a :class:`Scenario`, a mapping in the
            scenario format, or a path to a ``.yaml``/``.yml``/``.toml``/``.json`` file (a
            string with one of these suffixes, in any case, is a path).
        variant: A catalogue variant, instead of the ``[VARIANT]`` suffix.

    Raises:
        ConfigError: unknown catalogue name or variant (the message lists what exists), a
            missing or bad file, an invalid scenario, or ``variant`` with a scenario that
            is not a catalogue name.
    """
    if variant is not None and (not isinstance(scenario, str) or is_scenario_file(scenario)):
        raise ConfigError(
            f"variant={variant!r} applies to a catalogue name only, not to {scenario!r}"
        )
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        return Scenario.from_mapping(scenario)
    if isinstance(scenario, Path) or (isinstance(scenario, str) and is_scenario_file(scenario)):
        return load_scenario_file(scenario)
    if isinstance(scenario, str):
        from leadersim.sim.scenarios import catalogue_scenario

        return catalogue_scenario(scenario, variant)
    raise ConfigError(
        f"a scenario must be a name, a path, a Scenario or a mapping, got {scenario!r}"
    )


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML in the scenario format: what ``leadersim simulate FILE`` reads.

    Every key is written out (defaults included), so the file runs exactly like the
    scenario: with the same seed, byte for byte the same trace.

    Raises:
        ConfigError: the leader callback is Python code, which a file cannot hold.
    """
    import yaml

    spec = scenario.to_mapping()
    if callable(spec["callback"]):
        raise ConfigError(
            f"scenario {scenario.name!r} has a Python leader callback; a file can only "
            "hold the built-in workload (a callback mapping)"
        )
    if isinstance(scenario.callback, CallbackSpec):  # every field set, defaults included
        spec["callback"] = {
            f.name: _plain(getattr(scenario.callback, f.name))
            for f in dataclasses.fields(CallbackSpec)
            if getattr(scenario.callback, f.name) not in (None, ())
        }
    storage = spec["storage"]
    storage["latency"] = _short_latency(storage["latency"])
    for key in ("latency_by_op", "latency_by_node"):
        storage[key] = {k: _short_latency(v) for k, v in storage[key].items()}
    # Flow style for collections of scalars: one fault or one config per line.
    text: str = yaml.safe_dump(
        _plain(spec), sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )
    return text


def _short_latency(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A latency mapping without its unused (zero, the default) fields; parsing restores them."""
    from leadersim.sim.latency import Latency

    defaults = dataclasses.asdict(Latency())
    return {k: v for k, v in spec.items() if not (v == 0 and defaults.get(k) == 0)}


def _plain(value: Any) -> Any:
    """Mappings as dicts and tuples as lists, which YAML's safe dumper can write."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def apply_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    """``scenario`` with top-level or dotted-key ``overrides`` applied, validated again.

    A ``duration`` override shortens the run: the faults past its new end are left out.

    Raises:
        ConfigError: an override of an unknown top-level key, or an invalid result.
    """
    if not overrides:
        return scenario
    for key in overrides:
        top = key.split(".")[0]
        if top not in Scenario.KEYS:
            raise ConfigError(
                f"unknown scenario key {top!r} in override {key!r}; "
                f"allowed: {sorted(Scenario.KEYS)}"
            )
    spec = apply_dotted(scenario.to_mapping(), overrides)
    return Scenario.from_mapping(spec, drop_faults_after_end="duration" in overrides)


def prepare_scenario(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    variant: str | None = None,
    scale: float = 1.0,
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """The scenario a run executes: resolved, scaled by ``scale``, then overridden.

    What :func:`simulate` (and the real lab's ``run_scenario``) run; the arguments are
    theirs. Overrides apply after scaling, so a ``config.lease_duration`` given here is
    the lease of the run as it is.

    Raises:
        ConfigError: as :func:`resolve_scenario`, a bad ``scale``, or a bad override.
    """
    resolved = resolve_scenario(scenario, variant=variant).scaled(scale)
    return apply_overrides(resolved, overrides or {})


def run_result(run: Run) -> Result:
    """Wrap a simulated :class:`~leadersim.sim.world.Run` as a :class:`Result`."""
    return Result(
        run.events,
        run.end_time,
        name=run.scenario.name,
        seed=run.seed,
        meta={"scenario": run.scenario, "safety_warnings": run.safety_warnings},
    )


def simulate(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    seed: int = 0,
    variant: str | None = None,
    progress: bool = False,
    scale: float = 1.0,
    **overrides: Any,
) -> Result:
    """Run a scenario in the simulator and return its result.

    Args:
        scenario: A catalogue name (``"leader-pause-longer-than-lease"`` runs the
            entry's default variant, ``"github-2018-partition[C=0.1]"`` a named one), a
            :class:`Scenario`, a mapping in the scenario format, or a file path.
        seed: Drives every random choice; the same seed reproduces the run exactly.
        variant: A catalogue variant, instead of the ``[VARIANT]`` suffix of the name.
        progress: Show a ``tqdm`` progress bar of simulated time (it only watches the
            clock from another thread: the run is the same with or without it).
        scale: Multiply every time of the scenario by this factor
            (:meth:`~leadersim.sim.scenario.Scenario.scaled`) before the overrides
            apply: ``scale=0.1, duration=20`` runs a tenth-size scenario for 20 s.
        **overrides: Top-level scenario keys to replace (``duration=60``,
            ``config={...}``), or dotted keys (``**{"config.lease_duration": 15}``).

    Returns:
        The :class:`~leadersim.analysis.result.Result`: trace, verdict, views, plots.

    Raises:
        ConfigError: an unknown name or variant, a missing or bad file, an invalid
            scenario or override, a ``scale`` that is not a finite number > 0.

    Warns:
        SafetyWarning: once per distinct message when a node's config has no slack.
    """
    resolved = prepare_scenario(scenario, variant=variant, scale=scale, overrides=overrides)
    watched: list[World] = []

    def run_world() -> Run:
        # Built in the thread that runs it: the simulated storage's SQLite is bound to it.
        world = World(resolved, seed)
        watched.append(world)
        return world.run()

    with _progress_bar(resolved, watched, enabled=progress):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            run = run_world()
        else:
            # A loop already runs in this thread (Jupyter): run the simulated loop in a
            # worker thread rather than nesting loops.
            with concurrent.futures.ThreadPoolExecutor(1, "leadersim-simulate") as pool:
                run = pool.submit(run_world).result()
    for message in run.safety_warnings:
        warnings.warn(message, SafetyWarning, stacklevel=2)
    return run_result(run)


#: Seconds of wall time between two looks of the progress bar at the simulated clock.
PROGRESS_POLL_S = 0.2


@contextlib.contextmanager
def _progress_bar(scenario: Scenario, watched: Sequence[World], *, enabled: bool) -> Iterator[None]:
    """While the body runs, show the simulated time of the World in ``watched`` in a bar.

    A thread reads the World's clock every :data:`PROGRESS_POLL_S` seconds (once the
    body has put the World in ``watched``); it schedules nothing in the simulation, so
    a run with a bar is the same as one without.
    """
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    duration = scenario.duration
    bar = tqdm(
        total=duration,
        desc=scenario.name,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} sim s "
        "[{elapsed}<{remaining}]",
    )
    done = threading.Event()

    def show() -> None:
        if watched:
            bar.update(min(duration, watched[0].env.now) - bar.n)

    def watch() -> None:
        while not done.wait(PROGRESS_POLL_S):
            show()

    watcher = threading.Thread(target=watch, name="leadersim-progress", daemon=True)
    watcher.start()
    try:
        yield
        show()
    finally:
        done.set()
        watcher.join()
        bar.close()
