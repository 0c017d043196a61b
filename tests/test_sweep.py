"""Sweeps: grids x seeds, serial = parallel, invalid combinations, and theory vs measurement."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import leadersim
from leadersim import ConfigError, SafetyWarning
from leadersim.analysis import plots, theory
from leadersim.sweep import grid, process_pool, sweep

matplotlib.use("Agg")

SHORT_CRASH = {"duration": 120.0}


def test_lists_are_swept_as_a_product_and_scalars_are_fixed() -> None:
    combinations = grid({"a": [1, 2], "b": 5, "c": ["x", "y", "z"], "d": ("kept", "whole")})
    assert len(combinations) == 6
    assert combinations[0] == {"b": 5, "d": ("kept", "whole"), "a": 1, "c": "x"}
    assert [(c["a"], c["c"]) for c in combinations] == [
        (1, "x"),
        (1, "y"),
        (1, "z"),
        (2, "x"),
        (2, "y"),
        (2, "z"),
    ]
    with pytest.raises(ConfigError, match="'a' has an empty list"):
        grid({"a": []})


def test_a_sweep_has_one_row_per_run_with_the_swept_values_and_the_summary() -> None:
    df = sweep(
        "leader-crash",
        {**SHORT_CRASH, "config.lease_duration": [10, 15]},
        [3, 1],
        executor="serial",
        progress=False,
    )
    assert df[["config.lease_duration", "seed"]].values.tolist() == [
        [10, 3],
        [10, 1],
        [15, 3],
        [15, 1],
    ]
    single = leadersim.simulate(
        "leader-crash", seed=1, duration=120.0, **{"config.lease_duration": 15}
    )
    expected = single.summary()
    assert list(df.columns) == ["config.lease_duration", "seed", *expected]
    assert df.iloc[3].to_dict() == {"config.lease_duration": 15, "seed": 1, **expected}
    # the lease shows in the failover, as the theory says
    assert df.groupby("config.lease_duration")["failover_s"].mean().is_monotonic_increasing


def test_the_top_level_sweep_is_the_sweep_function() -> None:
    assert leadersim.sweep is sweep


def test_a_serial_and_a_two_worker_sweep_give_identical_frames() -> None:
    parameters = {
        **SHORT_CRASH,
        "config.lease_duration": [10, 13],
        "callback.stop_latency": [0.1, 2.0],
    }
    serial = sweep("leader-crash", parameters, 3, executor="serial", progress=False)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        parallel = sweep("leader-crash", parameters, 3, executor=pool, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    assert len(serial) == 12


@pytest.mark.slow
def test_a_dask_distributed_executor_gives_the_serial_frame() -> None:
    distributed = pytest.importorskip("distributed")
    parameters = {**SHORT_CRASH, "config.lease_duration": [10, 13]}
    serial = sweep("leader-crash", parameters, 2, executor="serial", progress=False)
    with warnings.catch_warnings():
        # dask's own start-up/shut-down chatter is not what this test is about
        warnings.simplefilter("ignore")
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            parallel = sweep(
                "leader-crash", parameters, 2, executor=client.get_executor(), progress=False
            )
    pd.testing.assert_frame_equal(serial, parallel)


def test_an_invalid_combination_is_named_before_anything_runs() -> None:
    parameters = {"config.lease_duration": [10, 12], "config.renew_deadline": [8, 11]}
    with pytest.raises(ConfigError) as raised:
        sweep("leader-crash", parameters, 2, executor="serial", progress=False)
    message = str(raised.value)
    assert "2 of 4 parameter combinations are invalid" in message
    assert "{config.lease_duration=10, config.renew_deadline=11}" in message
    assert "RenewDeadline must not be greater than LeaseDuration - RenewInterval" in message


def test_invalid_combinations_can_be_recorded_as_rows_with_an_error() -> None:
    parameters = {
        **SHORT_CRASH,
        "config.lease_duration": [10, 12],
        "config.renew_deadline": [8, 11],
    }
    df = sweep("leader-crash", parameters, 1, executor="serial", progress=False, invalid="record")

    assert len(df) == 4
    bad = df[df["error"].notna()]
    assert bad[["config.lease_duration", "config.renew_deadline"]].values.tolist() == [
        [10, 11],
        [12, 11],
    ]
    assert bad["overlap_s"].isna().all()
    good = df[df["error"].isna()]
    assert good["overlap_s"].notna().all()


def test_an_unknown_parameter_key_is_an_error_naming_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown sweep parameter\(s\) \['lease'\]"):
        sweep("leader-crash", {"lease": [10, 15]}, 1, executor="serial", progress=False)


#: A lock a leader callback takes: held by a thread of this process in the test below.
_CALLBACK_LOCK = threading.Lock()


async def _lead_under_a_lock() -> None:
    with _CALLBACK_LOCK:
        pass
    await asyncio.Event().wait()


@pytest.mark.timeout(120)
def test_a_sweep_does_not_hang_on_a_lock_another_thread_of_the_caller_holds() -> None:
    # A Jupyter kernel (or a driver) has threads; a worker forked from it inherits every
    # lock one of them held at that instant, still held, for ever. Workers come from a
    # fork server, which imports the callback's module afresh.
    scenario = {"nodes": 2, "callback": _lead_under_a_lock, "duration": 30}
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with _CALLBACK_LOCK:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait()
    try:
        df = sweep(scenario, {"config.lease_duration": [10, 12]}, 1, progress=False)
    finally:
        release.set()
        holder.join()
    assert df["first_leader_at"].notna().all()


def test_workers_fork_only_for_a_callback_that_lives_in_main() -> None:
    def lead() -> None: ...

    lead.__module__ = "__main__"  # as a function written in a notebook cell is
    plain = {"nodes": 2, "callback": _lead_under_a_lock}
    with process_pool(1, [plain]) as pool:
        assert pool._mp_context.get_start_method() == "forkserver"
    with process_pool(1, [plain, {"nodes": 2, "callback": lead}]) as pool:
        assert pool._mp_context.get_start_method() == "fork"


def test_a_callback_that_cannot_reach_worker_processes_is_refused_clearly() -> None:
    async def lead() -> None:  # a closure: not picklable
        await asyncio.Event().wait()

    scenario = {"nodes": 2, "callback": lead, "duration": 30}
    with pytest.raises(ConfigError, match="cannot be sent to worker processes"):
        sweep(scenario, {"config.lease_duration": [10, 12]}, 1, progress=False)
    df = sweep(scenario, {"config.lease_duration": [10, 12]}, 1, executor="serial", progress=False)
    assert df["first_leader_at"].notna().all()


def test_progress_is_shown_unless_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    sweep("leader-crash", SHORT_CRASH, 2, executor="serial", progress=True)
    assert "sweep leader-crash" in capsys.readouterr().err
    sweep("leader-crash", SHORT_CRASH, 2, executor="serial", progress=False)
    assert capsys.readouterr().err == ""


def test_configs_without_slack_warn_once_for_the_whole_sweep() -> None:
    with pytest.warns(SafetyWarning, match="1 of 2 parameter combinations leave no safety slack"):
        sweep(
            "leader-crash",
            {**SHORT_CRASH, "config.lease_duration": [10, 15]},
            2,
            executor="serial",
            progress=False,
        )


# ---------------------------------------------------------------------- theory vs measured

LEASES = [10, 12, 14, 16, 18, 20]
DEADLINES = [4, 6, 8, 10, 12, 14]
INTERVAL = 2.0
# The scenario's C is 0.5 s; with 3 s the predicted boundary (S < C + delta_resp) runs
# through the middle of this grid instead of along its edge, so both regions are wide.
STOP_LATENCY = 3.0
DELTA_RESP = 0.010  # the scenario's median update reply latency (one way)


@pytest.mark.slow
def test_the_measured_unsafe_region_of_zero_slack_agrees_with_the_predicted_boundary() -> None:
    """6 x 6 lease x deadline grid x 5 seeds of zero-slack-defaults (600 s: 5 hand-overs).

    Agreement measure: a valid cell is *measured unsafe* if any of its 5 seeds has an
    acting overlap > 0, and *predicted unsafe* if ``theory.is_safe`` is false with
    ``delta_resp`` = the median update reply latency, ``C`` = the stop latency, no pause,
    no drift. At least 90 % of the valid cells must be classified the same (cells with
    D > L - I fail validation and are left out), and each region must hold at least 5
    cells either way. The bound is a worst case, so disagreement is expected only on the
    safe side of the line, in cells hit by the 1 % reply-latency tail.
    """
    parameters = {
        "duration": 600.0,
        "callback.stop_latency": STOP_LATENCY,
        "config.lease_duration": LEASES,
        "config.renew_deadline": DEADLINES,
    }
    df = sweep("zero-slack-defaults", parameters, 5, progress=False, invalid="record")
    valid = df[df["error"].isna()].copy()
    assert len(valid) == 5 * sum(1 for lease in LEASES for d in DEADLINES if d <= lease - INTERVAL)

    valid["measured_unsafe"] = valid["overlap_s"] > 0
    cells = valid.groupby(["config.lease_duration", "config.renew_deadline"])[
        "measured_unsafe"
    ].any()
    leases = cells.index.get_level_values(0).to_numpy(dtype=float)
    deadlines = cells.index.get_level_values(1).to_numpy(dtype=float)
    predicted_unsafe = ~theory.is_safe(
        leases, INTERVAL, deadlines, delta_resp=DELTA_RESP, stop_latency=STOP_LATENCY
    )
    measured_unsafe = cells.to_numpy()
    agreement = float(np.mean(predicted_unsafe == measured_unsafe))
    print(f"\nzero-slack grid: {agreement:.0%} of {len(cells)} cells agree")
    assert predicted_unsafe.sum() >= 5
    assert (~predicted_unsafe).sum() >= 5
    assert measured_unsafe.sum() >= 5
    assert agreement >= 0.9
    # no cell the theory calls unsafe measures safe: the bound is reached, not just near
    assert not (predicted_unsafe & ~measured_unsafe).any()

    # the heatmap with the boundary drawn over it
    def boundary(lease: np.ndarray) -> np.ndarray:
        return theory.boundary_deadline(
            lease, INTERVAL, delta_resp=DELTA_RESP, stop_latency=STOP_LATENCY
        )

    ax = plots.plot_sweep_heatmap(
        valid, "config.lease_duration", "config.renew_deadline", "measured_unsafe", boundary
    )
    assert ax.images[0].get_array().shape == (len(DEADLINES), len(LEASES))
    assert [line.get_label() for line in ax.get_lines()] == ["predicted boundary"]
