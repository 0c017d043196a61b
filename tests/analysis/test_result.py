"""Result on real scenarios: the GC-pause split brain pinned to the schedule, and a real run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from leadersim import Config, Elector, SQLStorage, TraceRecorder
from leadersim.analysis.intervals import summarize
from leadersim.analysis.result import Result
from leadersim.experiment import resolve_scenario, simulate
from leadersim.trace import EventKind, read_jsonl

GC_PAUSE = "leader-pause-longer-than-lease"


def _gc_pause_timing() -> dict[str, float]:
    """L, I, C and the pause's start and length, read from the scenario itself."""
    scenario = resolve_scenario(GC_PAUSE)
    [pause] = scenario.faults
    assert pause.kind == "pause"
    assert pause.duration is not None
    config = scenario.config_for("n1")
    return {
        "L": float(config["lease_duration"]),
        "I": float(config["renew_interval"]),
        "C": scenario.callback.stop_latency,  # type: ignore[union-attr]
        "at": pause.at,
        "P": pause.duration,
    }


@pytest.mark.parametrize("seed", [0, 7, 13])
def test_the_gc_pause_split_brain_runs_from_the_new_start_to_the_old_stop(seed: int) -> None:
    timing = _gc_pause_timing()
    lease, interval, stop, at, pause = (timing[k] for k in ("L", "I", "C", "at", "P"))
    result = simulate(GC_PAUSE, seed=seed)
    events = result.events

    [window] = result.split_brain()
    [old] = [i.node for i in result.acting() if i.start < at]
    [new_start] = [e for e in events if e.kind is EventKind.CALLBACK_STARTED and e.true_time > at]
    [old_stop] = [e for e in events if e.kind is EventKind.CALLBACK_STOPPED and e.node == old]
    assert window.start == new_start.true_time
    assert window.end == old_stop.true_time
    assert window.nodes == tuple(sorted((old, new_start.node)))
    assert window.faults == (f"pause@{old}",)

    # start: a follower waits a lease from the last renewal it saw, at most a round old
    assert at + lease - interval <= window.start <= at + lease + interval + 0.5
    last_renewal = max(
        e.true_time
        for e in events
        if e.kind is EventKind.RENEW_OK and e.node == old and e.true_time <= at
    )
    assert last_renewal + lease <= window.start <= last_renewal + lease + interval + 0.5
    # end: the old leader wakes at the end of the pause, learns it lost, stops within C
    assert at + pause + stop <= window.end <= at + pause + 0.2
    assert result.summary()["overlap_s"] == pytest.approx(window.end - window.start)


def test_fencing_turns_the_woken_leaders_harmful_write_into_a_fenced_one() -> None:
    unfenced = simulate(GC_PAUSE, seed=3).writes()
    fenced = simulate(GC_PAUSE, seed=3, fencing=True).writes()

    assert (unfenced["class"] == "harmful").sum() >= 1
    assert (fenced["class"] == "harmful").sum() == 0
    assert (fenced["class"] == "fenced").sum() > 0
    # the same write, from the node that was paused, refused instead of accepted
    harmful = unfenced[unfenced["class"] == "harmful"][["node", "seq"]].values.tolist()
    refused = fenced[fenced["class"] == "fenced"][["node", "seq"]].values.tolist()
    assert harmful == refused
    summary = simulate(GC_PAUSE, seed=3, fencing=True).summary()
    assert (summary["stale_accepted"], summary["stale_rejected"]) == (0, len(refused))
    # the same split brain, harmful without fencing and harmless with it
    assert summary["overlap_s"] > 0
    assert (summary["level"], summary["safe"]) == ("OVERLAP-FENCED", True)
    unfenced_verdict = simulate(GC_PAUSE, seed=3).verdict
    assert (unfenced_verdict.level, unfenced_verdict.safe) == ("UNSAFE", False)


def test_every_view_of_a_result_is_a_dataframe_with_its_documented_columns() -> None:
    result = simulate(GC_PAUSE, seed=0)
    expected = {
        "faults": ["fault", "node", "kind", "start", "end", "duration", "instant"],
        "storage_ops": ["node", "op", "sent_at", "outcome", "seen", "latency_s", "ambiguous"],
        "committed_leader": ["start", "end", "duration", "leader_id"],
        "intervals": ["node", "kind", "start", "end", "duration", "end_reason"],
        "windows": ["kind", "start", "end", "duration", "nodes", "faults"],
        "gaps": ["start", "end", "duration", "before", "after", "faults"],
        "terms": ["term", "node", "start", "end", "previous", "gap_s", "flap"],
        "flaps": ["term", "node", "start", "end", "previous", "gap_s", "flap"],
        "failovers": ["old", "new", "cause", "cause_at", "failover_s"],
        "writes": ["at", "node", "seq", "accepted", "stale", "class"],
        "clocks": ["node", "true_time", "local_time", "offset_s", "drift_ppm"],
    }
    for view, columns in expected.items():
        frame = getattr(result, view)()
        assert set(columns) <= set(frame.columns), view
    assert len(result.trace) == len(result.events)


@pytest.mark.parametrize(
    ("scenario", "overrides"),
    [
        (GC_PAUSE, {"fencing": True}),
        ("leader-crash", {}),
        ("ambiguous-renew", {}),
        ("zero-slack-defaults", {"duration": 900}),
        ("callback-crash-loop", {}),
    ],
)
def test_the_result_verdict_is_the_checkers_verdict_on_the_whole_trace(
    scenario: str, overrides: dict
) -> None:
    result = simulate(scenario, seed=5, **overrides)
    assert result.verdict == summarize(result.events, result.end_time)


# ---------------------------------------------------------------------- a real run

LEASE, INTERVAL, DEADLINE = 1.0, 0.2, 0.6


async def _hold() -> None:
    await asyncio.Event().wait()


async def _wait_for(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _record_real_run(path: Path, trace_file: Path) -> list:  # type: ignore[type-arg]
    """Three electors on one SQLite file; cancel the leader; stop once another leads."""
    with trace_file.open("w", encoding="utf-8") as sink:
        recorder = TraceRecorder(time.monotonic, sink=sink)
        storages = [await SQLStorage.open(path) for _ in range(3)]
        electors = {
            f"n{i + 1}": Elector(
                Config(
                    f"n{i + 1}",
                    storage=storage,
                    leader_callback=_hold,
                    lease_duration=LEASE,
                    renew_interval=INTERVAL,
                    renew_deadline=DEADLINE,
                ),
                observer=recorder,
                seed=i,
            )
            for i, storage in enumerate(storages)
        }
        tasks = {n: asyncio.create_task(e.run_election()) for n, e in electors.items()}

        def acting() -> list[str]:
            return [n for n, e in electors.items() if e.leader_callback_running()]

        try:
            await _wait_for(lambda: len(acting()) == 1, 10, "a first leader")
            first = acting()[0]
            await asyncio.sleep(3 * INTERVAL)
            tasks[first].cancel()
            await asyncio.wait([tasks[first]], timeout=10)
            await _wait_for(lambda: bool(acting()), 10, "a second leader")
            await asyncio.sleep(3 * INTERVAL)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.wait(list(tasks.values()), timeout=15)
            for storage in storages:
                await storage.close()
    return recorder.events


async def test_the_same_analysis_runs_on_a_trace_recorded_from_real_sqlite(
    tmp_path: Path,
) -> None:
    trace_file = tmp_path / "trace.jsonl"
    recorded = await _record_real_run(tmp_path / "election.db", trace_file)
    events = read_jsonl(trace_file)  # the JSON-lines round trip the lab uses
    assert len(events) == len(recorded)
    result = Result(events, name="sqlite")

    summary = result.summary()
    assert summary["leader_changes"] >= 1
    assert summary["failovers"] >= 1
    assert 0 < summary["failover_all_s"][0] < 2 * LEASE  # a release: about I, at most L
    terms = result.terms()
    first = terms.iloc[0]
    assert first["end_reason"] == "cancelled"
    assert terms.iloc[1]["node"] != first["node"]
    assert set(result.intervals()["kind"]) == {"acting", "belief"}
    # no storage instrumentation in real runs; the committed leader comes from renewals
    assert result.storage_ops().empty
    assert {first["node"], terms.iloc[1]["node"]} <= set(result.committed_leader()["leader_id"])
    # one host, one monotonic clock: the offsets are (nearly) zero
    assert result.clocks()["offset_s"].abs().max() < 0.05

    ax = result.plot_timeline()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["n1", "n2", "n3", "storage"]
    ax.figure.savefig(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 0
