"""Sweeps: a scenario x a parameter grid x seeds → one long DataFrame of verdicts.

:func:`sweep` runs the simulator once per combination of swept values and seed, in
parallel through any :class:`concurrent.futures.Executor` (a process pool by default; a
``dask.distributed`` client's ``client.get_executor()`` works unchanged), and returns one
row per run: the swept values, the seed, and every field of
:meth:`Result.summary() <leadersim.analysis.result.Result.summary>`. Each run is
deterministic given its scenario and seed, and rows come back in grid order, so a
parallel sweep equals the serial one row for row.

Workers get plain data (the scenario mapping with the overrides applied, and a seed)
and send back summary dicts, never traces.

Invalid combinations (e.g. a renew deadline above ``lease - interval``) are found before
anything runs. By default the sweep raises a :class:`~leadersim.ConfigError` naming each
bad combination; with ``invalid="record"`` it keeps going and records them as rows with
an ``error`` message and empty metrics (a heatmap then leaves those cells blank).

Imports of the simulator, pandas and tqdm happen when :func:`sweep` is called, so
``import leadersim`` stays light.
"""

from __future__ import annotations

import concurrent.futures
import io
import itertools
import multiprocessing
import multiprocessing.context
import os
import pickle
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from leadersim.errors import ConfigError, SafetyWarning

if TYPE_CHECKING:
    import pandas as pd

    from leadersim.sim.scenario import Scenario

__all__ = ["check_picklable", "collect_runs", "grid", "process_pool", "run_one", "sweep"]

_SERIAL = "serial"


def grid(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of ``parameters``: lists are swept, anything else is fixed.

    Combinations come in the order of :func:`itertools.product` over the swept keys in
    the mapping's order (the last key varies fastest). Only a ``list`` is swept: to fix
    a key to a sequence value, pass a tuple or wrap it in a one-element list.

    Raises:
        ConfigError: a swept list is empty.
    """
    swept = {k: v for k, v in parameters.items() if isinstance(v, list)}
    for key, values in swept.items():
        if not values:
            raise ConfigError(f"sweep parameter {key!r} has an empty list of values")
    fixed = {k: v for k, v in parameters.items() if not isinstance(v, list)}
    return [
        {**fixed, **dict(zip(swept, values, strict=True))}
        for values in itertools.product(*swept.values())
    ]


def run_one(spec: Mapping[str, Any], seed: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One simulated run in a worker: the summary dict and the SafetyWarning texts."""
    from leadersim.experiment import run_result
    from leadersim.sim.scenario import Scenario
    from leadersim.sim.world import World

    run = World(Scenario.from_mapping(spec), seed).run()
    return run_result(run).summary(), run.safety_warnings


#: What the fork server imports once, so that each worker forked from it starts warm.
_WORKER_PRELOAD = ["leadersim.sweep", "leadersim.experiment", "leadersim.sim.world"]


class _MainFinder(pickle.Pickler):
    """Pickles to nowhere, noting whether anything is pickled by reference to ``__main__``."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO())
        self.uses_main = False

    def reducer_override(self, obj: Any) -> Any:
        if getattr(obj, "__module__", None) == "__main__" and callable(obj):
            self.uses_main = True
        return NotImplemented


def process_pool(
    workers: int | None = None, specs: Sequence[Mapping[str, Any] | None] = ()
) -> concurrent.futures.ProcessPoolExecutor:
    """A process pool for simulated runs: ``workers`` processes (default: one per CPU).

    Workers start from a fork server (a clean single-threaded process), not by forking
    the caller: a process with threads (a Jupyter kernel's, database drivers') can be
    forked while one of them holds a lock, and the child then hangs on it for ever. The
    exception is a scenario of ``specs`` that refers to functions defined in ``__main__``
    (a leader callback written in a notebook cell or a script): only a forked child has
    them, so the pool then forks.
    """
    finder = _MainFinder()
    for spec in specs:
        if spec is not None:
            try:
                finder.dump(spec)
            except Exception:  # what cannot be pickled is check_picklable's to say
                break
    context: multiprocessing.context.BaseContext
    if finder.uses_main:
        context = multiprocessing.get_context("fork")
    else:
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(_WORKER_PRELOAD)
        context = server
    count = workers if workers is not None else max(1, os.cpu_count() or 1)
    return concurrent.futures.ProcessPoolExecutor(count, mp_context=context)


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1 when a count, got {seeds}")
        return list(range(seeds))
    chosen = list(seeds)
    if not chosen or not all(isinstance(s, int) and not isinstance(s, bool) for s in chosen):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {chosen!r}")
    return chosen


def sweep(
    scenario: str | Path | Scenario | Mapping[str, Any],
    parameters: Mapping[str, Any],
    seeds: int | Iterable[int],
    *,
    variant: str | None = None,
    executor: concurrent.futures.Executor | Literal["serial"] | None = None,
    progress: bool = True,
    invalid: Literal["raise", "record"] = "raise",
) -> pd.DataFrame:
    """Run ``scenario`` over every combination of ``parameters`` and every seed.

    Args:
        scenario: A catalogue name (``"NAME"`` or ``"NAME[VARIANT]"``), a
            :class:`~leadersim.Scenario`, a mapping in the scenario format, or a file path
            (as for :func:`leadersim.simulate`).
        parameters: Dotted scenario keys (``"config.lease_duration"``,
            ``"callback.stop_latency"``, ``"duration"``) to a value (fixed) or a list of
            values (swept; the grid is their cartesian product, see :func:`grid`).
        seeds: The seeds of each combination: a list, or a count ``n`` for ``0..n-1``.
        variant: A catalogue variant, instead of the ``[VARIANT]`` suffix of the name.
        executor: Where the runs go: any :class:`concurrent.futures.Executor` (left
            open for the caller to reuse), ``"serial"`` to run in this process, or
            ``None`` for a process pool with one worker per CPU (closed at the end).
        progress: Show a ``tqdm.auto`` progress bar.
        invalid: What an invalid combination does: ``"raise"`` (before any run) or
            ``"record"`` (a row per seed with ``error`` set and empty metrics).

    Returns:
        One row per run, in grid order then seed order: a column per swept key (named
        by the key), ``seed``, every summary field (``safe``, ``overlap_s``,
        ``belief_overlap_s``, ``no_leader_s``, ``failovers``, ``failover_s`` ...), and
        with ``invalid="record"`` an ``error`` column (``None`` for valid runs).

    Raises:
        ConfigError: an invalid combination (naming it and why) with ``invalid="raise"``,
            a bad ``parameters``/``seeds`` argument, or a scenario whose callback cannot
            be sent to worker processes.

    Warns:
        SafetyWarning: once, when some combinations leave no safety slack (it names how
            many and one of the messages).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from leadersim.experiment import apply_overrides, resolve_scenario
    from leadersim.sim.scenario import Scenario

    if invalid not in ("raise", "record"):
        raise ConfigError(f"invalid must be 'raise' or 'record', got {invalid!r}")
    unknown = sorted(k for k in parameters if k.partition(".")[0] not in Scenario.KEYS)
    if unknown:
        raise ConfigError(
            f"unknown sweep parameter(s) {unknown}; a dotted key starts with one of "
            f"{sorted(Scenario.KEYS)}"
        )
    base = resolve_scenario(scenario, variant=variant)
    combinations = grid(parameters)
    swept = [k for k, v in parameters.items() if isinstance(v, list)]
    seed_list = _seed_list(seeds)

    specs: list[dict[str, Any] | None] = []
    errors: list[str | None] = []
    for combination in combinations:
        try:
            specs.append(apply_overrides(base, combination).to_mapping())
            errors.append(None)
        except ConfigError as exc:
            specs.append(None)
            errors.append(str(exc))
    bad = [(c, e) for c, e in zip(combinations, errors, strict=True) if e is not None]
    if bad and invalid == "raise":
        listed = "; ".join(f"{_describe(c, swept)}: {e}" for c, e in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ConfigError(
            f"sweep of {base.name!r}: {len(bad)} of {len(combinations)} parameter "
            f"combinations are invalid: {listed}{more}; drop them from the grid or pass "
            "invalid='record' to record them as rows with an error"
        )

    tasks = [
        (index, seed) for index, spec in enumerate(specs) if spec is not None for seed in seed_list
    ]
    serial = executor == _SERIAL or (executor is None and len(tasks) <= 1)
    if not serial:
        check_picklable(base.name, specs)
    outcomes: dict[tuple[int, int], tuple[dict[str, Any], tuple[str, ...]]] = {}
    bar = tqdm(total=len(tasks), desc=f"sweep {base.name}", unit="run", disable=not progress)
    try:
        if serial:
            for index, seed in tasks:
                spec = specs[index]
                assert spec is not None
                outcomes[(index, seed)] = run_one(spec, seed)
                bar.update()
        elif executor is None:
            workers = max(1, min(len(tasks), os.cpu_count() or 1))
            with process_pool(workers, specs) as pool:
                collect_runs(pool, specs, tasks, outcomes, bar)
        else:
            assert not isinstance(executor, str)
            collect_runs(executor, specs, tasks, outcomes, bar)
    finally:
        bar.close()

    rows: list[dict[str, Any]] = []
    summary_keys: list[str] = []
    messages: dict[str, None] = {}
    unsafe_configs = 0
    for index, combination in enumerate(combinations):
        keys = {key: combination[key] for key in swept}
        if errors[index] is not None:
            for seed in seed_list:
                rows.append({**keys, "seed": seed, "error": errors[index]})
            continue
        warned = False
        for seed in seed_list:
            summary, safety = outcomes[(index, seed)]
            if not summary_keys:
                summary_keys = list(summary)
            row = {**keys, "seed": seed, **summary}
            if invalid == "record":
                row["error"] = None
            rows.append(row)
            for message in safety:
                messages.setdefault(message)
                warned = True
        unsafe_configs += warned
    if messages:
        example = next(iter(messages))
        warnings.warn(
            f"sweep of {base.name!r}: {unsafe_configs} of {len(combinations)} parameter "
            f"combinations leave no safety slack, e.g. {example}",
            SafetyWarning,
            stacklevel=2,
        )
    columns = [*swept, "seed", *summary_keys]
    if invalid == "record":
        columns.append("error")
    return pd.DataFrame(rows, columns=columns)


def collect_runs(
    executor: concurrent.futures.Executor,
    specs: Sequence[dict[str, Any] | None],
    tasks: Sequence[tuple[int, int]],
    outcomes: dict[tuple[int, int], tuple[dict[str, Any], tuple[str, ...]]],
    bar: Any,
) -> None:
    """Submit every task to ``executor``; store results by task as they complete.

    The pool half of :func:`sweep`, shared with :func:`leadersim.explore`: ``tasks`` are
    ``(spec index, seed)`` pairs, each run by :func:`run_one`; ``bar`` is a progress bar.
    """
    futures = {}
    for index, seed in tasks:
        spec = specs[index]
        assert spec is not None
        futures[executor.submit(run_one, spec, seed)] = (index, seed)
    try:
        for future in concurrent.futures.as_completed(futures):
            outcomes[futures[future]] = future.result()
            bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def check_picklable(name: str, specs: Sequence[dict[str, Any] | None]) -> None:
    """Check that the scenario specs can be sent to worker processes (pickled).

    Raises:
        ConfigError: they cannot (e.g. a leader callback defined in a notebook cell).
    """
    spec = next((s for s in specs if s is not None), None)
    if spec is None:
        return
    try:
        pickle.dumps(spec)
    except Exception as exc:
        raise ConfigError(
            f"sweep of {name!r}: the scenario cannot be sent to worker processes ({exc}); "
            "use a module-level leader callback, a callback mapping, or executor='serial'"
        ) from exc


def _describe(combination: Mapping[str, Any], swept: Sequence[str]) -> str:
    shown = {k: combination[k] for k in swept} or dict(combination)
    return "{" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + "}"
