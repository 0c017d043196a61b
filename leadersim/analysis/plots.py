"""Plots of runs and sweeps (matplotlib; works under the Agg backend).

Every function draws into ``ax`` when one is given, else into a new figure, and returns
what it drew into: :func:`plot_timeline`, :func:`plot_sweep_heatmap` and
:func:`plot_latency` return the :class:`~matplotlib.axes.Axes`, :func:`plot_clocks` the
:class:`~matplotlib.figure.Figure` (two panels). Repeated marks (bars, ticks, markers,
shaded spans) are drawn as one collection each, not one artist per event, so a long
run renders quickly. pyplot is used only to make a new figure when none is given.

The timeline (:func:`plot_timeline`), from top to bottom, one lane per node then one
for the storage:

- **believed** leadership (``is_leader()`` true): a thin dark bar;
- **acting** leadership (the leader callback runs, until it has actually stopped): a
  thick light bar in the node's colour;
- **renewals**: a short grey tick per successful renew round;
- **lease expiry**: a ``v`` where a leader's own lease (measured on its clock,
  placed in true time) ran out before it renewed it;
- **faults**: the node's lane shaded over the fault, labelled (e.g. ``pause (20s)``);
  an instantaneous fault (crash, restart, cancel, clock step) is a vertical line;
- **split brain**: red bands over all lanes where two or more nodes act at once
  (magenta hatching where two or more only *believe* at once);
- the **storage** lane: whom the committed record names leader, in that node's colour.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from leadersim.analysis import frames
from leadersim.analysis.intervals import Interval, overlap_windows
from leadersim.faults import FAULT_KINDS
from leadersim.trace import EventKind

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from leadersim.analysis.result import Result

__all__ = [
    "ACTING_COLOUR_ALPHA",
    "SPLIT_BRAIN_COLOUR",
    "STORAGE_LANE",
    "TIME_AXIS_LABEL",
    "node_colours",
    "plot_clocks",
    "plot_latency",
    "plot_sweep_heatmap",
    "plot_timeline",
]

#: The time axis of every plot of a run: a Result's times are seconds since the run's
#: start (a real run's host-monotonic stamps moved to its ``run_started``; see Result).
TIME_AXIS_LABEL = "time since the run's start (s)"
#: Label of the timeline's last lane.
STORAGE_LANE = "storage"
#: Colour of the acting split-brain bands.
SPLIT_BRAIN_COLOUR = "red"
#: Opacity of the acting bars.
ACTING_COLOUR_ALPHA = 0.45
_FAULT_COLOUR = "0.55"
#: Renewal ticks closer than 1/_TICKS_PER_LANE of the shown time span are drawn as one.
_TICKS_PER_LANE = 1500
_BELIEF_COLOUR = "#1f1f3a"
_RENEWAL_COLOUR = "0.45"
_EXPIRY_COLOUR = "#8b0000"
_LATENCY_COLOURS = {
    "ok": "tab:blue",
    "conflict": "tab:orange",
    "error": "tab:red",
    "late": "tab:brown",
    "ambiguous": "tab:purple",
    "lost": "black",
}


def _new_axes(figsize: tuple[float, float]) -> Axes:
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _time_range(result: Result) -> tuple[float, float]:
    """From the run's start (0) to its end; from the first event if that is 1 s or later.

    A result's times are since the run's start already; the second case is a trace with no
    known start (no ``run_started``, no ``start_time``), e.g. real stamps of host uptime.
    """
    first = result.events[0].true_time if result.events else 0.0
    first = min(first, 0.0) if first < 1.0 else first
    return first, max(result.end_time, first)


def _natural(node: str) -> tuple[object, ...]:
    """Sort key: ``n2`` before ``n10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", node))


def node_colours(nodes: Sequence[str]) -> dict[str, Any]:
    """A distinct colour per node (the ``tab10`` cycle, then ``tab20``)."""
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if len(nodes) <= 10 else "tab20"]
    return {node: cmap(i % cmap.N) for i, node in enumerate(nodes)}


def _rects(
    ax: Axes,
    spans: Sequence[tuple[float, float, float, float]],
    **style: Any,
) -> Any:
    """One PolyCollection of rectangles ``(x0, x1, y0, y1)`` (nothing if empty)."""
    from matplotlib.collections import PolyCollection

    verts = [((x0, y0), (x0, y1), (x1, y1), (x1, y0)) for x0, x1, y0, y1 in spans]
    collection = PolyCollection(verts, **style)
    ax.add_collection(collection, autolim=False)
    return collection


def _segments(ax: Axes, segments: Any, **style: Any) -> Any:
    """One LineCollection of ``((x0, y0), (x1, y1))`` segments (a list or an array)."""
    from matplotlib.collections import LineCollection

    collection = LineCollection(segments, **style)
    ax.add_collection(collection, autolim=False)
    return collection


# ---------------------------------------------------------------------- timeline


def plot_timeline(
    result: Result,
    ax: Axes | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    renewals: bool = True,
    fault_labels: int = 12,
    legend: bool = True,
    title: bool = True,
) -> Axes:
    """Draw the run's timeline: a lane per node, then the storage's committed leader.

    Args:
        result: The run.
        ax: Axes to draw into; a new figure when ``None``.
        start: First second shown (default the first event: 0 in simulations; real
            traces count from the host's boot).
        end: Last second shown (default the end of the run).
        renewals: Draw a tick per successful renewal.
        fault_labels: Label every fault when there are at most this many; else only the
            first of each kind on each node (the shading is always drawn).
        legend: Add the legend (what each mark means).
        title: Put the run's name and verdict on top.

    Returns:
        The Axes. Lane ``i`` (from the top) is at ``y = i``; the y tick labels are the
        node ids followed by ``"storage"``.
    """
    if ax is None:
        ax = _new_axes((12, 1.2 + 0.55 * (len(result.nodes) + 1)))
    nodes = sorted(result.nodes, key=_natural)
    first, last = _time_range(result)
    lanes = _Lanes(
        ax,
        {node: i for i, node in enumerate(nodes)},
        node_colours(nodes),
        first if start is None else start,
        last if end is None else end,
    )
    # in this order: each layer draws over the one before (split-brain bands at the back)
    acting, belief = result.acting(), result.belief()
    belief_split = _draw_split_brain(lanes, acting, belief)
    _draw_faults(lanes, result, fault_labels)
    _draw_leadership(lanes, acting, belief)
    if renewals:
        _draw_renewals(lanes, result)
    _draw_lease_expiries(lanes, result)
    _draw_storage_lane(lanes, result)
    _finish_axes(lanes, nodes, result, title=title)
    if legend:
        _draw_legend(ax, belief_split=belief_split)
    return ax


@dataclasses.dataclass(frozen=True)
class _Lanes:
    """Where the timeline draws: the axes, each node's lane (y), its colour, the x range."""

    ax: Axes
    lane: dict[str, int]
    colours: dict[str, Any]
    x0: float
    x1: float

    @property
    def storage_y(self) -> int:
        """The storage lane, under the nodes'."""
        return len(self.lane)

    @property
    def top(self) -> float:
        return -0.5

    @property
    def bottom(self) -> float:
        return self.storage_y + 0.5

    def visible(self, a: float, b: float) -> bool:
        """Whether [a, b] meets the shown range."""
        return b >= self.x0 and a <= self.x1


def _draw_split_brain(
    lanes: _Lanes, acting: Sequence[Interval], belief: Sequence[Interval]
) -> bool:
    """Shade acting split brain, hatch belief split brain; whether any belief band shows."""
    top, bottom = lanes.top, lanes.bottom
    bands = [
        (w.start, w.end, top, bottom)
        for w in overlap_windows(acting)
        if lanes.visible(w.start, w.end)
    ]
    _rects(lanes.ax, bands, facecolor=SPLIT_BRAIN_COLOUR, alpha=0.25, edgecolor="none", zorder=0)
    belief_bands = [
        (w.start, w.end, top, bottom)
        for w in overlap_windows(belief)
        if lanes.visible(w.start, w.end)
    ]
    if belief_bands:
        _rects(
            lanes.ax,
            belief_bands,
            facecolor="none",
            edgecolor="magenta",
            hatch="//",
            linewidth=0.0,
            zorder=0,
        )
    return bool(belief_bands)


def _draw_faults(lanes: _Lanes, result: Result, fault_labels: int) -> None:
    """Each fault on its target's lane: a hatched span, or a bar at an instant; labels."""
    ax, lane = lanes.ax, lanes.lane
    fault_rows = [
        row
        for row in frames.fault_records(result.index, result.end_time)
        if row["node"] in lane and lanes.visible(float(row["start"]), float(row["end"]))  # type: ignore[arg-type]
    ]
    spans = []
    instants = []
    for row in fault_rows:
        y = lane[str(row["node"])]
        a, b = float(row["start"]), float(row["end"])  # type: ignore[arg-type]
        if row["instant"] or b <= a:
            instants.append(((a, y - 0.45), (a, y + 0.45)))
        else:
            spans.append((a, b, y - 0.45, y + 0.45))
    _rects(
        ax,
        spans,
        facecolor=_FAULT_COLOUR,
        alpha=0.3,
        hatch="xx",
        edgecolor="0.35",
        linewidth=0.0,
        zorder=1,
    )
    _segments(ax, instants, colors=_FAULT_COLOUR, linewidths=2.0, zorder=1)
    labelled: set[tuple[str, str]] = set()
    for row in fault_rows:
        key = (str(row["node"]), str(row["kind"]))
        if len(fault_rows) > fault_labels and key in labelled:
            continue
        labelled.add(key)
        ax.text(
            max(float(row["start"]), lanes.x0),  # type: ignore[arg-type]
            lane[str(row["node"])] - 0.47,
            str(row["label"]),
            fontsize=7,
            va="top",
            ha="left",
            color="saddlebrown",
            zorder=4,
            clip_on=True,
        )


def _draw_leadership(lanes: _Lanes, acting: Sequence[Interval], belief: Sequence[Interval]) -> None:
    """Leadership bars: acting thick (node colour), belief thin (dark)."""
    lane = lanes.lane
    shown_acting = [i for i in acting if i.node in lane and lanes.visible(i.start, i.end)]
    _rects(
        lanes.ax,
        [(i.start, i.end, lane[i.node] - 0.3, lane[i.node] + 0.3) for i in shown_acting],
        facecolor=[lanes.colours[i.node] for i in shown_acting],
        alpha=ACTING_COLOUR_ALPHA,
        edgecolor="none",
        zorder=2,
    )
    _rects(
        lanes.ax,
        [
            (i.start, i.end, lane[i.node] - 0.07, lane[i.node] + 0.07)
            for i in belief
            if i.node in lane and lanes.visible(i.start, i.end)
        ],
        facecolor=_BELIEF_COLOUR,
        edgecolor="none",
        zorder=3,
    )


def _draw_renewals(lanes: _Lanes, result: Result) -> None:
    """A tick per successful renewal (at most ``_TICKS_PER_LANE`` per lane)."""
    import numpy as np

    x0, x1 = lanes.x0, lanes.x1
    renewed = result.index.of(EventKind.RENEW_OK)
    times = frames.true_times(renewed)
    ys = np.array([lanes.lane.get(e.node, -1) for e in renewed], dtype=float)
    shown = (ys >= 0) & (times >= x0) & (times <= x1)
    times, ys = times[shown], ys[shown]
    # at most _TICKS_PER_LANE ticks per lane: closer ones would share a pixel
    cells = np.floor((times - x0) / max(x1 - x0, 1e-9) * _TICKS_PER_LANE)
    _, keep = np.unique(ys * (_TICKS_PER_LANE + 1) + cells, return_index=True)
    times, ys = times[keep], ys[keep]
    ticks = np.empty((len(times), 2, 2))
    if len(times):
        ticks[:, :, 0] = times[:, None]
        ticks[:, 0, 1] = ys + 0.18
        ticks[:, 1, 1] = ys + 0.42
    _segments(lanes.ax, ticks, colors=_RENEWAL_COLOUR, linewidths=0.6, zorder=3)


def _draw_lease_expiries(lanes: _Lanes, result: Result) -> None:
    """A triangle where a leader's own lease ran out before it renewed it."""
    lane = lanes.lane
    marks = [
        (t, lane[node])
        for node, t in frames.lease_expiries(result.index, result.end_time)
        if node in lane and lanes.x0 <= t <= lanes.x1
    ]
    lanes.ax.plot(
        [t for t, _ in marks],
        [y - 0.3 for _, y in marks],
        linestyle="none",
        marker="v",
        markersize=6,
        color=_EXPIRY_COLOUR,
        zorder=5,
    )


def _draw_storage_lane(lanes: _Lanes, result: Result) -> None:
    """The storage lane: whom the committed record named leader, span by span."""
    ax, storage_y, x0, x1 = lanes.ax, lanes.storage_y, lanes.x0, lanes.x1
    committed = [
        (float(a), float(b), str(leader))
        for a, b, leader in result.committed_leader()[["start", "end", "leader_id"]].itertuples(
            index=False
        )
        if leader and lanes.visible(float(a), float(b))
    ]
    _rects(
        ax,
        [(a, b, storage_y - 0.3, storage_y + 0.3) for a, b, _ in committed],
        facecolor=[lanes.colours.get(leader, "0.6") for _, _, leader in committed],
        edgecolor="white",
        linewidth=0.5,
        zorder=2,
    )
    if len(committed) <= 60:
        for a, _, leader in committed:
            ax.text(
                max(a, x0) + 0.005 * (x1 - x0),
                storage_y,
                leader,
                fontsize=7,
                va="center",
                ha="left",
                zorder=4,
                clip_on=True,
            )


def _finish_axes(lanes: _Lanes, nodes: Sequence[str], result: Result, *, title: bool) -> None:
    """Limits (the first node on top), lane names, the time axis and the verdict title."""
    ax = lanes.ax
    ax.set_xlim(lanes.x0, lanes.x1)
    ax.set_ylim(lanes.bottom, lanes.top)  # the first node on top
    ax.set_yticks(range(len(nodes) + 1), [*nodes, STORAGE_LANE])
    ax.set_xlabel(TIME_AXIS_LABEL)
    ax.grid(axis="x", alpha=0.3)
    if title:
        label = result.name or "run"
        seed = "" if result.seed is None else f" (seed {result.seed})"
        ax.set_title(f"{label}{seed}: {result.verdict.line()}", fontsize=9, loc="left")


def _draw_legend(ax: Axes, *, belief_split: bool) -> None:
    """What each mark means (belief split brain only when the plot shows some)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(facecolor="0.5", alpha=ACTING_COLOUR_ALPHA, label="acting (callback runs)"),
        Line2D([], [], color=_BELIEF_COLOUR, linewidth=3, label="believed (is_leader)"),
        Line2D([], [], color=_RENEWAL_COLOUR, marker="|", linestyle="none", label="renewal"),
        Line2D(
            [],
            [],
            color=_EXPIRY_COLOUR,
            marker="v",
            linestyle="none",
            label="lease expiry (local)",
        ),
        Patch(facecolor=_FAULT_COLOUR, alpha=0.3, hatch="xx", edgecolor="0.35", label="fault"),
        Patch(facecolor=SPLIT_BRAIN_COLOUR, alpha=0.25, label="split brain"),
    ]
    if belief_split:
        handles.append(
            Patch(facecolor="none", edgecolor="magenta", hatch="//", label="belief split brain")
        )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=7,
        frameon=False,
    )


# ---------------------------------------------------------------------- sweeps


def _position(values: Sequence[float]) -> Callable[[Any], Any]:
    """Map data values to cell positions 0..n-1 (linear between and beyond the cells)."""
    import numpy as np

    grid = np.asarray(values, dtype=float)
    index = np.arange(len(grid), dtype=float)
    if len(grid) == 1:
        return lambda v: np.zeros_like(np.asarray(v, dtype=float))

    def to_cell(v: Any) -> Any:
        v = np.asarray(v, dtype=float)
        inside = np.interp(v, grid, index)
        low = (v - grid[0]) / (grid[1] - grid[0])
        high = len(grid) - 1 + (v - grid[-1]) / (grid[-1] - grid[-2])
        return np.where(v < grid[0], low, np.where(v > grid[-1], high, inside))

    return to_cell


def plot_sweep_heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    predicted: Callable[[Any], Any] | tuple[Sequence[float], Sequence[float]] | None = None,
    ax: Axes | None = None,
    *,
    agg: str | Callable[[Any], Any] = "mean",
    cmap: str = "Reds",
    annotate: bool = True,
    predicted_label: str = "predicted boundary",
) -> Axes:
    """A heatmap of ``value`` (aggregated over seeds) on an ``x`` x ``y`` grid of a sweep.

    Args:
        df: A sweep's DataFrame (one row per run).
        x: Column on the horizontal axis (one cell per distinct value, sorted).
        y: Column on the vertical axis.
        value: Column to aggregate per cell (booleans count as 0/1).
        predicted: The theory's boundary: a function from ``x`` values to the ``y`` value
            on the boundary (e.g. :func:`leadersim.analysis.theory.boundary_deadline`
            with the other arguments bound), or explicit ``(xs, ys)`` points. Drawn as a
            line over the cells.
        ax: Axes to draw into; a new figure when ``None``.
        agg: How to aggregate the seeds of a cell (a pandas aggregation).
        cmap: Colour map.
        annotate: Write each cell's value in it.
        predicted_label: Legend label of the boundary.

    Returns:
        The Axes (its image is ``ax.images[0]``; cells without runs are blank).
    """
    import numpy as np

    if ax is None:
        ax = _new_axes((7, 5.5))
    data = df[[x, y, value]].copy()
    if data[value].dtype == bool:
        data[value] = data[value].astype(float)
    table = data.pivot_table(index=y, columns=x, values=value, aggfunc=agg, dropna=False)
    table = table.sort_index().sort_index(axis=1)
    xs = [float(v) for v in table.columns]
    ys = [float(v) for v in table.index]
    cells = table.to_numpy(dtype=float)
    image = ax.imshow(
        np.ma.masked_invalid(cells),
        origin="lower",
        aspect="auto",
        cmap=cmap,
        interpolation="nearest",
    )
    ax.figure.colorbar(image, ax=ax, label=f"{value} ({agg if isinstance(agg, str) else 'agg'})")
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if annotate and cells.size <= 400:
        finite = cells[np.isfinite(cells)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (row, column), cell in np.ndenumerate(cells):
            if math.isfinite(cell):
                ax.text(
                    column,
                    row,
                    f"{cell:.2g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cell > middle else "black",
                )
    if predicted is not None:
        if callable(predicted):
            line_x = np.linspace(xs[0], xs[-1], 200) if len(xs) > 1 else np.asarray(xs)
            if len(xs) > 1:  # reach the outer cell edges too
                step_lo, step_hi = xs[1] - xs[0], xs[-1] - xs[-2]
                line_x = np.linspace(xs[0] - step_lo / 2, xs[-1] + step_hi / 2, 200)
            line_y = np.asarray(predicted(line_x), dtype=float)
        else:
            line_x = np.asarray(predicted[0], dtype=float)
            line_y = np.asarray(predicted[1], dtype=float)
        ax.plot(
            _position(xs)(line_x),
            _position(ys)(line_y),
            color="tab:blue",
            linewidth=2,
            linestyle="--",
            label=predicted_label,
        )
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        ax.legend(loc="upper left", fontsize=8)
    return ax


# ---------------------------------------------------------------------- latency


def plot_latency(result: Result, ax: Axes | None = None) -> Axes:
    """Scatter of storage operation latencies over time, coloured by outcome.

    One point per operation at its send time and reply latency, by what the client saw:
    ``ok``, ``conflict``, ``error``; ``late`` (the reply came after the client had given
    up); ``ambiguous`` (a write that took effect while its client saw a failure or
    nothing). Operations without a reply (``lost``, and ambiguous ones whose reply was
    lost) are ``x`` marks along the top edge. Log scale. Real runs have no storage
    operations in their trace: the plot then says so.

    Returns:
        The Axes (legend labels: the classes present, with their counts).
    """
    if ax is None:
        ax = _new_axes((10, 4))
    ops = result.storage_ops()
    if ops.empty:
        ax.text(
            0.5,
            0.5,
            "no storage operations in this trace",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_xlabel(TIME_AXIS_LABEL)
        return ax
    seen = ops["seen"]
    klass = seen.where(seen.isin(["ok", "conflict", "error"]), "lost")
    klass = klass.where(seen != "timeout", "late")
    klass = klass.where(~ops["ambiguous"], "ambiguous")
    replied = ops["latency_s"].notna()
    top = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for name, colour in _LATENCY_COLOURS.items():
        chosen = klass == name
        count = int(chosen.sum())
        if not count:
            continue
        label = f"{name} ({count})"
        points = chosen & replied
        if points.any():
            ax.scatter(
                ops.loc[points, "sent_at"],
                ops.loc[points, "latency_s"],
                s=6 if name == "ok" else 18,
                color=colour,
                alpha=0.5 if name == "ok" else 0.9,
                linewidths=0.0,
                label=label,
                rasterized=True,
            )
            label = "_" + label
        rug = chosen & ~replied
        if rug.any():
            ax.scatter(
                ops.loc[rug, "sent_at"],
                [0.97] * int(rug.sum()),
                transform=top,
                s=24,
                color=colour,
                marker="x",
                linewidths=1.0,
                label=label,
                clip_on=False,
            )
    ax.set_yscale("log")
    ax.set_xlim(*_time_range(result))
    ax.set_xlabel(f"{TIME_AXIS_LABEL}, when sent")
    ax.set_ylabel("reply latency (s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return ax


# ---------------------------------------------------------------------- clocks


def _at_least(ax: Axes, span: float) -> None:
    """Widen the y range to at least ``span`` around its middle."""
    low, high = ax.get_ylim()
    if high - low < span:
        middle = (low + high) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)


def plot_clocks(result: Result, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Each node's clock: accumulated offset change (top) and drift rate (bottom).

    Args:
        result: The run.
        ax: Two Axes (offset, drift), or one Axes for the offset only; a new figure with
            two panels when ``None``.

    Returns:
        The Figure. Lines are labelled with the node ids; wall-clock steps (``clock_step``
        faults, which monotonic readings do not show) are vertical lines with labels.
    """
    from matplotlib.axes import Axes as AxesType

    if ax is None:
        import matplotlib.pyplot as plt

        _, pair = plt.subplots(2, 1, figsize=(10, 5), sharex=True, layout="constrained")
        offset_ax, drift_ax = pair[0], pair[1]
    elif isinstance(ax, AxesType):
        offset_ax, drift_ax = ax, None
    else:
        offset_ax, drift_ax = ax[0], (ax[1] if len(ax) > 1 else None)
    figure: Figure = offset_ax.figure
    clocks = frames.clocks_frame(result.index, every_s=max(1.0, result.end_time / 2000))
    nodes = sorted(result.nodes, key=_natural)
    colours = node_colours(nodes)
    by_node = dict(iter(clocks.groupby("node", sort=False)))
    for node in nodes:
        rows = by_node.get(node)
        if rows is None:
            continue
        colour = colours[node]
        offset_ax.plot(
            rows["true_time"], rows["offset_change_s"] * 1e3, color=colour, label=str(node)
        )
        if drift_ax is not None:
            drift_ax.step(
                rows["true_time"], rows["drift_ppm"], where="post", color=colour, label=str(node)
            )
    steps = [
        row
        for row in frames.fault_records(result.index, result.end_time)
        if (kind := FAULT_KINDS.get(str(row["kind"]))) is not None and kind.scope == "clock"
    ]
    for row in steps:
        for target in (offset_ax, drift_ax):
            if target is not None:
                target.axvline(float(row["start"]), color=_FAULT_COLOUR, linewidth=1)  # type: ignore[arg-type]
        offset_ax.text(
            float(row["start"]),  # type: ignore[arg-type]
            1.0,
            f" {row['node']}: {row['label']}",
            transform=offset_ax.get_xaxis_transform(),
            fontsize=7,
            va="top",
            color="saddlebrown",
        )
    _at_least(offset_ax, 1.0)  # ms: a flat line stays flat, not magnified float noise
    if drift_ax is not None:
        _at_least(drift_ax, 1.0)  # ppm
    offset_ax.set_ylabel("offset change (ms)")
    offset_ax.set_xlim(*_time_range(result))
    offset_ax.grid(alpha=0.3)
    if not clocks.empty:
        offset_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if drift_ax is not None:
        drift_ax.set_ylabel("drift (ppm)")
        drift_ax.set_xlabel(TIME_AXIS_LABEL)
        drift_ax.grid(alpha=0.3)
    else:
        offset_ax.set_xlabel(TIME_AXIS_LABEL)
    return figure
