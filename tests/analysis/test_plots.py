"""The plots render under Agg with the expected lanes, marks and labels (artists, not pixels)."""

from __future__ import annotations

import io
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba

from leadersim.analysis import plots, theory
from leadersim.analysis.result import Result
from leadersim.experiment import simulate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(figure) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    return buffer.getvalue()


def _red_bands(ax) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """x-extents of the rectangles drawn in the split-brain colour."""
    red = to_rgba(plots.SPLIT_BRAIN_COLOUR)[:3]
    spans = []
    for collection in ax.collections:
        if not isinstance(collection, PolyCollection) or not len(collection.get_paths()):
            continue
        if tuple(collection.get_facecolor()[0][:3]) != red:
            continue
        for path in collection.get_paths():
            xs = path.vertices[:, 0]
            spans.append((float(xs.min()), float(xs.max())))
    return spans


def _legend_texts(ax) -> list[str]:  # type: ignore[no-untyped-def]
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_the_timeline_has_a_lane_per_node_and_one_for_the_storage() -> None:
    result = simulate("leader-pause-longer-than-lease", seed=0)
    ax = result.plot_timeline()

    assert [t.get_text() for t in ax.get_yticklabels()] == ["n1", "n2", "n3", "storage"]
    assert _png(ax.figure).startswith(PNG_SIGNATURE)
    assert _legend_texts(ax)[:6] == [
        "acting (callback runs)",
        "believed (is_leader)",
        "renewal",
        "lease expiry (local)",
        "fault",
        "split brain",
    ]
    texts = [t.get_text() for t in ax.texts]
    assert "pause (20s)" in texts  # the fault, labelled on its lane
    assert {"n1", "n3"} <= set(texts) or {"n1", "n2"} <= set(texts)  # storage lane leaders
    assert "UNSAFE" in ax.get_title(loc="left")


def test_the_timeline_draws_a_red_band_exactly_over_the_split_brain() -> None:
    result = simulate("leader-pause-longer-than-lease", seed=0)
    [window] = result.split_brain()
    ax = result.plot_timeline()

    assert _red_bands(ax) == [(pytest.approx(window.start), pytest.approx(window.end))]


def test_a_safe_run_has_no_red_band_but_shows_its_renewals_and_crash() -> None:
    result = simulate("leader-crash", seed=0)
    assert result.summary()["overlap_s"] == 0
    ax = result.plot_timeline()

    assert _red_bands(ax) == []
    renew_ok = sum(1 for e in result.events if e.kind.value == "renew_ok")
    ticks = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert renew_ok in [len(c.get_segments()) for c in ticks]
    assert "crash" in [t.get_text() for t in ax.texts]


def test_the_timeline_draws_into_a_given_axes_and_a_time_window() -> None:
    result = simulate("leader-pause-longer-than-lease", seed=0)
    _, (top, bottom) = plt.subplots(2, 1)
    returned = plots.plot_timeline(result, ax=bottom, start=50, end=100, legend=False)

    assert returned is bottom
    assert bottom.get_xlim() == (50, 100)
    assert bottom.get_legend() is None
    assert not top.collections


def test_the_timeline_of_a_five_node_hour_renders(capsys: pytest.CaptureFixture[str]) -> None:
    result = simulate("zero-slack-defaults", seed=0, nodes=5)
    started = time.perf_counter()
    ax = result.plot_timeline()
    png = _png(ax.figure)
    elapsed = time.perf_counter() - started

    assert png.startswith(PNG_SIGNATURE)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "n1",
        "n2",
        "n3",
        "n4",
        "n5",
        "storage",
    ]
    # one artist per kind of mark, not per event: the count does not grow with the run
    assert len(ax.collections) < 15
    with capsys.disabled():
        print(f"\n5-node simulated hour: {len(result.events)} events, timeline {elapsed:.3f} s")


def test_the_sweep_heatmap_shows_the_cell_means_and_the_predicted_boundary() -> None:
    rows = [
        {"lease": lease, "deadline": deadline, "seed": seed, "unsafe": lease - deadline < 5}
        for lease in (10, 12, 14)
        for deadline in (4, 6, 8)
        for seed in range(2)
        if not (lease == 10 and deadline == 8)  # an empty cell stays blank
    ]
    df = pd.DataFrame(rows)
    boundary = lambda lease: theory.boundary_deadline(lease, 2.0, stop_latency=3.0)  # noqa: E731
    ax = plots.plot_sweep_heatmap(df, "lease", "deadline", "unsafe", predicted=boundary)

    image = ax.images[0].get_array()
    assert image.shape == (3, 3)
    assert bool(image.mask[2, 0])  # lease 10, deadline 8: no runs
    assert image[0].tolist() == [0.0, 0.0, 0.0]  # deadline 4: lease - deadline >= 6
    assert image[1].tolist() == [1.0, 0.0, 0.0]  # deadline 6: only lease 10 gives 4 < 5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "12", "14"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "6", "8"]
    [line] = ax.get_lines()
    assert line.get_label() == "predicted boundary"
    # D = L - 5 on the boundary: at lease 10 (cell 0) it crosses deadline 5 (cell 0.5)
    x, y = line.get_data()
    assert np.interp(0.0, x, y) == pytest.approx(0.5)
    assert _legend_texts(ax) == ["predicted boundary"]
    assert _png(ax.figure).startswith(PNG_SIGNATURE)


def test_the_latency_scatter_colours_operations_by_outcome() -> None:
    result = simulate("ambiguous-renew", seed=0)
    ax = result.plot_latency()
    labels = _legend_texts(ax)
    ops = result.storage_ops()

    answered_ok = int((ops["seen"] == "ok").sum())
    assert f"ok ({answered_ok})" in labels
    assert "ambiguous (1)" in labels
    assert ax.get_yscale() == "log"
    assert _png(ax.figure).startswith(PNG_SIGNATURE)


def test_the_latency_scatter_says_so_when_a_trace_has_no_storage_ops(build) -> None:
    build.start(0.0, "n1")
    ax = Result(build.trace(), 5.0).plot_latency()
    assert [t.get_text() for t in ax.texts] == ["no storage operations in this trace"]


def test_the_clock_plot_has_offset_and_drift_lanes_and_marks_wall_steps() -> None:
    faults = [{"at": 30, "kind": "clock_step", "target": "n1", "seconds": 3600}]
    result = simulate("clock-drift-fast-follower", seed=0, duration=60, faults=faults)
    figure = result.plot_clocks()
    offset_ax, drift_ax = figure.axes

    assert [line.get_label() for line in offset_ax.get_lines() if line.get_label()[0] != "_"] == [
        "n1",
        "n2",
        "n3",
    ]
    drift = {line.get_label(): line.get_ydata() for line in drift_ax.get_lines()}
    assert np.nanmedian(drift["n2"]) == pytest.approx(100_000, rel=1e-6)
    assert " n1: wall +3600s" in [t.get_text() for t in offset_ax.texts]
    assert drift_ax.get_ylabel() == "drift (ppm)"
    assert _png(figure).startswith(PNG_SIGNATURE)
