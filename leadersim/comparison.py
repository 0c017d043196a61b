"""One scenario, two worlds: run it for real and in the simulator, and compare.

:func:`compare` runs a scenario ``runs`` times in the real lab (one OS process per member
on one database, ``leadersim.lab.run_scenario``) and over as many seeds in the simulator,
with the same config and schedule (``scale`` applied first, then the overrides: the one
prepared scenario goes to both). By default the simulator's storage latency is first
fitted from the lab runs' traced storage operations
(:func:`leadersim.analysis.fit_latency`), so that the two worlds differ only where the
model does. The :class:`Comparison` shows, side by side, the figures a person tunes a
config by: failover latency, seconds without a leader, acting overlap, stale writes,
each with its spread over the runs.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadersim.analysis import calibration
from leadersim.config import DEFAULT_RENEW_INTERVAL
from leadersim.errors import ConfigError

if TYPE_CHECKING:
    from leadersim.analysis.result import Result
    from leadersim.sim.scenario import Scenario

__all__ = ["Comparison", "WorldFigures", "compare"]

#: The per-run figures compared, as (name, unit, how a run's value is read).
_METRICS: tuple[tuple[str, str], ...] = (
    ("no_leader", "s"),
    ("overlap", "s"),
    ("stale_writes", ""),
)


def _spread(prefix: str, unit: str, values: Sequence[float]) -> dict[str, float | None]:
    """Median, min, max and (with two values or more) standard deviation of ``values``."""
    suffix = f"_{unit}" if unit else ""
    if not values:
        return {f"{prefix}_{k}{suffix}": None for k in ("median", "min", "max", "stdev")}
    return {
        f"{prefix}_median{suffix}": statistics.median(values),
        f"{prefix}_min{suffix}": min(values),
        f"{prefix}_max{suffix}": max(values),
        f"{prefix}_stdev{suffix}": statistics.stdev(values) if len(values) > 1 else None,
    }


@dataclasses.dataclass(frozen=True)
class WorldFigures:
    """One world's figures over its runs.

    Attributes:
        seeds: The seed of each run (lab: its members' jitter seeds start there).
        failover_s: Every failover of every run, seconds from its cause (a fault, or
            the old leader's last renewal) to the new leader's first callback.
        no_leader_s: Seconds without an acting leader, per run.
        overlap_s: Seconds during which two members acted at once, per run.
        stale_writes: Writes a member made while not the committed leader that the
            protected resource accepted, per run.
    """

    seeds: tuple[int, ...]
    failover_s: tuple[float, ...]
    no_leader_s: tuple[float, ...]
    overlap_s: tuple[float, ...]
    stale_writes: tuple[float, ...]

    @classmethod
    def of(cls, results: Sequence[Result], seeds: Sequence[int]) -> WorldFigures:
        """The figures of ``results`` (one per seed)."""
        verdicts = [r.verdict for r in results]
        return cls(
            seeds=tuple(seeds),
            failover_s=tuple(f for v in verdicts for f in v.failover_s),
            no_leader_s=tuple(float(v.no_leader_s) for v in verdicts),
            overlap_s=tuple(float(v.overlap_s) for v in verdicts),
            stale_writes=tuple(float(v.stale_accepted) for v in verdicts),
        )

    @property
    def runs(self) -> int:
        """How many runs the figures are from."""
        return len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """A flat dict of the figures, JSON-ready.

        ``runs``, ``failovers``, ``seeds``; for failover (over all failovers), no-leader,
        overlap and stale writes (over runs): ``*_median``, ``*_min``, ``*_max`` and
        ``*_stdev`` (seconds: ``*_s``), and the raw values (``*_all``).
        """
        figures: dict[str, Any] = {"runs": self.runs, "failovers": len(self.failover_s)}
        figures.update(_spread("failover", "s", self.failover_s))
        for name, unit in _METRICS:
            figures.update(_spread(name, unit, getattr(self, f"{name}_s" if unit else name)))
        figures["failover_all_s"] = list(self.failover_s)
        for name, unit in _METRICS:
            figures[f"{name}_all{'_s' if unit else ''}"] = list(
                getattr(self, f"{name}_s" if unit else name)
            )
        figures["seeds"] = list(self.seeds)
        return figures


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A scenario's figures in the lab and in the simulator, side by side.

    Attributes:
        scenario: The scenario both worlds ran (scaled, overridden), as the lab ran it.
        scale: The factor every time of the named scenario was multiplied by.
        overrides: The overrides applied after scaling.
        lab: The lab's figures.
        sim: The simulator's figures.
        fitted_latency: The simulator's ``storage`` mapping fitted from the lab runs, or
            ``None`` if the simulator kept the scenario's own latency.
        fitted_timers: The simulator's ``timers`` mapping fitted from the lab runs' renew
            rounds (how late real members' timers fire), or ``None`` if not fitted.
        lab_results: The lab runs' results (traces, verdicts, views).
        sim_results: The simulated runs' results.
    """

    scenario: Scenario
    scale: float
    overrides: Mapping[str, Any]
    lab: WorldFigures
    sim: WorldFigures
    fitted_latency: Mapping[str, Any] | None
    fitted_timers: Mapping[str, Any] | None = None
    lab_results: tuple[Result, ...] = dataclasses.field(repr=False, default=())
    sim_results: tuple[Result, ...] = dataclasses.field(repr=False, default=())

    def relative_difference(self, figure: str) -> float | None:
        """``(sim - lab) / lab`` of one figure of :meth:`WorldFigures.to_dict`.

        Args:
            figure: E.g. ``failover_median_s``.

        Returns:
            The relative difference, or ``None`` if either is missing or the lab's is 0.
        """
        lab, sim = self.lab.to_dict().get(figure), self.sim.to_dict().get(figure)
        if not isinstance(lab, int | float) or not isinstance(sim, int | float) or lab == 0:
            return None
        return (sim - lab) / lab

    def to_dict(self) -> dict[str, Any]:
        """The comparison as one JSON-ready object: ``{"lab": {...}, "sim": {...}, ...}``."""
        return {
            "scenario": self.scenario.name,
            "scale": self.scale,
            "overrides": dict(self.overrides),
            "runs": self.lab.runs,
            "fitted_latency": None if self.fitted_latency is None else dict(self.fitted_latency),
            "fitted_timers": None if self.fitted_timers is None else dict(self.fitted_timers),
            "lab": self.lab.to_dict(),
            "sim": self.sim.to_dict(),
        }

    def table(self) -> str:
        """A readable side-by-side table: median [min-max] per world, and sim vs lab."""
        lab, sim = self.lab.to_dict(), self.sim.to_dict()
        rows = [("failover", "failover", "s"), *((n, n, u) for n, u in _METRICS)]
        label = {
            "failover": "failover latency (s)",
            "no_leader": "no leader (s)",
            "overlap": "acting overlap (s)",
            "stale_writes": "stale writes",
        }
        lines = [
            f"{self.scenario.name} (scale {self.scale:g}): {self.lab.runs} lab runs, "
            f"{self.sim.runs} simulated seeds",
            f"simulator latency: {_describe_latency(self.fitted_latency)}",
            f"simulator timers: {_describe_timers(self.fitted_timers)}",
            f"{'':22} {'lab median [min-max]':>26} {'sim median [min-max]':>26} {'sim-lab':>9}",
        ]
        for name, prefix, unit in rows:
            suffix = f"_{unit}" if unit else ""
            cells = [_cell(figs, prefix, suffix) for figs in (lab, sim)]
            diff = self.relative_difference(f"{prefix}_median{suffix}")
            shown = "" if diff is None else f"{diff:+.1%}"
            lines.append(f"{label[name]:22} {cells[0]:>26} {cells[1]:>26} {shown:>9}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _cell(figures: Mapping[str, Any], prefix: str, suffix: str) -> str:
    median = figures[f"{prefix}_median{suffix}"]
    if median is None:
        return "-"
    low, high = figures[f"{prefix}_min{suffix}"], figures[f"{prefix}_max{suffix}"]
    return f"{median:.3f} [{low:.3f}-{high:.3f}]"


def _describe_latency(storage: Mapping[str, Any] | None) -> str:
    if storage is None:
        return "the scenario's own"
    parts = []
    for op, spec in [("all", storage["latency"]), *storage.get("latency_by_op", {}).items()]:
        params = ", ".join(f"{k}={v:g}" for k, v in spec.items() if k != "dist")
        parts.append(f"{op}: {spec['dist']}({params})")
    return "fitted from the lab, one way, " + "; ".join(parts)


def _describe_timers(timers: Mapping[str, Any] | None) -> str:
    if timers is None:
        return "the scenario's own"
    late = timers["lateness"]
    return f"fitted from the lab: each fires {1000 * late['value_s']:.2f} ms late"


def _progress_printer(enabled: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if enabled:
            print(line, file=sys.stderr, flush=True)

    return say


def compare(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    runs: int = 5,
    seed: int = 0,
    scale: float = 1.0,
    fit_latency: bool = True,
    url: str | None = None,
    variant: str | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Comparison:
    """Run a scenario ``runs`` times for real and over ``runs`` seeds simulated; compare.

    The scenario is prepared once (resolved, scaled by ``scale``, then overridden) and
    that same scenario runs in both worlds: run ``i`` uses seed ``seed + i`` in each.
    The lab runs first (real time: each takes the scenario's ``duration``).

    Args:
        scenario: A catalogue name (``NAME[VARIANT]``), a scenario file, a mapping or a
            :class:`~leadersim.sim.scenario.Scenario`.
        runs: How many lab runs, and simulated seeds (>= 1).
        seed: The first seed.
        scale: Multiply every time of the scenario by this before the overrides (so a
            catalogue entry written for minutes runs in seconds).
        fit_latency: Fit the simulator's storage latency from the lab runs' storage
            operations (:func:`leadersim.analysis.fit_latency`), and its members' timer
            lateness from their renew rounds (:func:`leadersim.analysis.fit_timers`),
            and simulate with them, instead of the scenario's own ``storage`` and
            ``timers``.
        url: A server database URL for the lab (PostgreSQL, MariaDB); default: a fresh
            SQLite file per run.
        variant: A catalogue variant, instead of the ``[VARIANT]`` suffix of the name.
        progress: Print a line per finished run on stderr.
        **overrides: Scenario keys to replace after scaling, as :func:`simulate`'s
            (``duration=25``, ``**{"config.renew_interval": 0.25}``).

    Returns:
        The :class:`Comparison`.

    Raises:
        ConfigError: ``runs`` < 1, or anything :func:`simulate` or the lab refuses (an
            unknown scenario, a bad override, a fault kind a real run cannot inflict).
    """
    from leadersim.experiment import prepare_scenario, simulate
    from leadersim.lab import run_scenario

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"compare: runs must be a whole number >= 1, got {runs!r}")
    say = _progress_printer(progress)
    prepared = prepare_scenario(scenario, variant=variant, scale=scale, overrides=overrides)
    seeds = [seed + i for i in range(runs)]
    lab_results = []
    for i, run_seed in enumerate(seeds, 1):
        result = run_scenario(prepared, seed=run_seed, url=url)
        lab_results.append(result)
        say(f"lab run {i}/{runs} (seed {run_seed}): {result.verdict.line()}")
    fitted = timers = None
    sim_overrides: dict[str, Any] = {}
    if fit_latency:
        fitted = calibration.fit_latency(lab_results)
        interval = prepared.config_for(prepared.nodes[0]).get(
            "renew_interval", DEFAULT_RENEW_INTERVAL
        )
        timers = calibration.fit_timers(lab_results, interval)
        sim_overrides = {"storage": fitted, "timers": timers}
    sim_results = []
    with warnings.catch_warnings():
        # The lab run of the same scenario has already said so (or the caller has).
        warnings.simplefilter("ignore")
        for i, run_seed in enumerate(seeds, 1):
            result = simulate(prepared, seed=run_seed, **sim_overrides)
            sim_results.append(result)
            say(f"sim seed {run_seed} ({i}/{runs}): {result.verdict.line()}")
    return Comparison(
        scenario=prepared,
        scale=scale,
        overrides=dict(overrides),
        lab=WorldFigures.of(lab_results, seeds),
        sim=WorldFigures.of(sim_results, seeds),
        fitted_latency=fitted,
        fitted_timers=timers,
        lab_results=tuple(lab_results),
        sim_results=tuple(sim_results),
    )
