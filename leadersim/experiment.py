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
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leadersim.analysis.result import Result
from leadersim.errors import ConfigError, SafetyWarning
from leadersim.sim.scenario import FILE_TYPES, Scenario, load_scenario_file
from leadersim.sim.world import Run, World

__all__ = ["resolve_scenario", "run_result", "simulate"]


def resolve_scenario(scenario: str | Path | Scenario | Mapping[str, Any]) -> Scenario:
    """Turn any accepted scenario form into a :class:`Scenario`.

    Raises:
        ConfigError: unknown catalogue name (the message lists the names), bad file or
            invalid scenario.
    """
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        return Scenario.from_mapping(scenario)
    if isinstance(scenario, Path) or (
        isinstance(scenario, str) and scenario.lower().endswith(tuple(FILE_TYPES))
    ):
        return load_scenario_file(scenario)
    if isinstance(scenario, str):
        from leadersim.sim.scenarios import CATALOGUE

        entry = CATALOGUE.get(scenario)
        if entry is None:
            raise ConfigError(
                f"unknown scenario {scenario!r}; catalogue names: {sorted(CATALOGUE)}"
            )
        return entry.scenario()
    raise ConfigError(
        f"a scenario must be a name, a path, a Scenario or a mapping, got {scenario!r}"
    )


def _apply_overrides(scenario: Scenario, overrides: Mapping[str, Any]) -> Scenario:
    if not overrides:
        return scenario
    spec = scenario.to_mapping()
    for key, value in overrides.items():
        parts = key.split(".")
        if parts[0] not in Scenario.KEYS:
            raise ConfigError(
                f"unknown scenario key {parts[0]!r} in override {key!r}; "
                f"allowed: {sorted(Scenario.KEYS)}"
            )
        target = spec
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else dict(child)
            target[part] = child
            target = child
        target[parts[-1]] = value
    # A duration override shortens the run: the faults past its new end are left out.
    return Scenario.from_mapping(spec, drop_faults_after_end="duration" in overrides)


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
    **overrides: Any,
) -> Result:
    """Run a scenario in the simulator and return its result.

    Args:
        scenario: A catalogue name (``"leader-pause-longer-than-lease"``), a
            :class:`Scenario`, a mapping in the scenario format, or a file path.
        seed: Drives every random choice; the same seed reproduces the run exactly.
        **overrides: Top-level scenario keys to replace (``duration=60``,
            ``config={...}``), or dotted keys (``**{"config.lease_duration": 15}``).

    Returns:
        The :class:`~leadersim.analysis.result.Result`: trace, verdict, views, plots.

    Warns:
        SafetyWarning: once per distinct message when a node's config has no slack.
    """
    resolved = _apply_overrides(resolve_scenario(scenario), overrides)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run = World(resolved, seed).run()
    else:
        # A loop already runs in this thread (Jupyter): run the simulated loop in a
        # worker thread rather than nesting loops.
        with concurrent.futures.ThreadPoolExecutor(1, "leadersim-simulate") as pool:
            run = pool.submit(lambda: World(resolved, seed).run()).result()
    for message in run.safety_warnings:
        warnings.warn(message, SafetyWarning, stacklevel=2)
    return run_result(run)
