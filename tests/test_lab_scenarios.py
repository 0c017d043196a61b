"""The lab runs catalogue scenarios for real: members as OS processes, faults as actions.

Each run is a catalogue entry's default variant, scaled so that it takes seconds, and is
judged by the entry's own expected verdict (leadersim/sim/catalogue/), its time bounds scaled by
the same factor: the real world must tell the story the simulator tells. Every run also
checks that no member process is left.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from leadersim.analysis.result import Result
from leadersim.catalogue import scenario_metrics
from leadersim.errors import ConfigError
from leadersim.experiment import prepare_scenario
from leadersim.lab import LAB_TRACE_NAME, Lab, process_state, run_scenario
from leadersim.sim.scenarios import CATALOGUE, Expect
from leadersim.trace import EventKind, read_trace_dir


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return process_state(pid) not in (None, "Z")


def assert_no_member_left(result: Result) -> None:
    pids = result.meta["pids"]
    assert pids, "the run spawned no member"
    left = [pid for pid in pids if alive(pid)]
    assert left == [], f"member processes still alive after the run: {left}"


def scaled_expect(expect: Expect, scale: float) -> Expect:
    """An expectation with its time bounds (metrics in seconds) scaled like the run."""
    if not expect.metric.endswith("_s"):
        return expect
    value = expect.value
    scaled = (value[0] * scale, value[1] * scale) if isinstance(value, tuple) else value * scale
    return dataclasses.replace(expect, value=scaled)


@dataclasses.dataclass
class PausePhase:
    """What the point of the renew cycle where a real pause landed allows, from its trace.

    The simulator stops the leader at the same point of its renew cycle in every seed; the
    lab stops it wherever it happens to be. Two such points change the story by a bounded
    amount, both by the reference's own rules, and each leaves its mark in the trace:

    - **Inside an operation**: the paused member sent a storage operation before the stop
      and handled its reply after the wake. A renewal that had committed counts as fresh
      from the moment its reply is handled (an observation is stamped when it is
      processed), so the woken member believes it leads, and its callback runs, until its
      next round: up to one renew interval ``I`` more of belief overlap and of overlap. And
      a renew round in flight has run out of its deadline during the pause: at the wake it
      may fail and cancel the work before the work's pending write goes out (the real loop
      runs the overdue timers in either order), so a stale write is possible, not certain.
    - **A conflict at the wake**: the woken member's renew round met a CAS conflict
      (another member renewed at that instant). It stops its callback only when the round
      ends, after a retry delay of at most ``D/2`` (the backoff cap): up to ``D/2`` more
      overlap.

    At scale 0.05 the storage's real latency is a larger share of the scaled interval than
    the simulated 5 ms is of 2 s, so the lab lands on these points more often than the
    seeds do (about one run in ten here).
    """

    slack: dict[str, float] = dataclasses.field(default_factory=dict)
    waived: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def of(cls, result: Result) -> PausePhase:
        started = next(e for e in result.events if e.kind is EventKind.RUN_STARTED).details
        interval = float(started["renew_interval"])  # type: ignore[arg-type]
        deadline = float(started["renew_deadline"])  # type: ignore[arg-type]
        phase = cls()
        pauses = [
            e
            for e in result.events
            if e.kind is EventKind.FAULT_START and e.details["kind"] == "pause"
        ]
        for start in pauses:
            end = next(
                (
                    e.true_time
                    for e in result.events
                    if e.kind is EventKind.FAULT_END
                    and e.node == start.node
                    and e.details["fault"] == start.details["fault"]
                ),
                None,
            )
            if end is None:
                continue
            mine = [e for e in result.events if e.node == start.node]
            if any(
                e.kind is EventKind.STORAGE_OP
                and e.details["sent_at"] < start.true_time  # type: ignore[operator]
                and e.true_time > end
                for e in mine
            ):
                phase.add("belief_overlap_s", interval)
                phase.add("overlap_s", interval)
                phase.waived.add("stale_accepted")
            conflicts = [e.true_time for e in mine if e.kind is EventKind.CAS_CONFLICT]
            if any(end <= at <= end + deadline for at in conflicts):
                phase.add("overlap_s", deadline / 2)
        return phase

    def add(self, metric: str, seconds: float) -> None:
        self.slack[metric] = self.slack.get(metric, 0.0) + seconds


def widened(expect: Expect, extra: float) -> Expect:
    """``expect`` with its upper bound moved up by ``extra`` (lower bounds stay)."""
    if extra == 0.0:
        return expect
    value = expect.value
    if isinstance(value, tuple):
        return dataclasses.replace(expect, value=(value[0], value[1] + extra))
    if expect.op in ("<", "<="):
        return dataclasses.replace(expect, value=value + extra)
    return expect


def failed_expectations(name: str, result: Result, scale: float, phase: PausePhase) -> list[str]:
    """The entry's expectations for its default variant that this one run breaks.

    ``phase`` (:meth:`PausePhase.of` the run) widens or waives what the pause's phase allows.
    """
    entry = CATALOGUE[name]
    metrics = scenario_metrics(result.events, result.end_time)
    failures = []
    for expect in entry.expect:
        if expect.variant not in (None, entry.default):
            continue
        if expect.metric in phase.waived:
            continue
        scaled = widened(scaled_expect(expect, scale), phase.slack.get(expect.metric, 0.0))
        value = metrics.get(scaled.metric)
        if not scaled.judge([value]):
            failures.append(f"{scaled.describe()}: got {value!r}")
    return failures


def run(name: str, scale: float, duration: float, tmp_path: Path, seed: int = 0) -> Result:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the catalogue's 10/2/8 has no slack, by design
        result = run_scenario(
            name,
            seed=seed,
            scale=scale,
            nodes=3,
            duration=duration,
            db_path=tmp_path / "election.db",
            trace_dir=tmp_path / "traces",
        )
    replay = f"replay: run_scenario({name!r}, seed={seed}, scale={scale}, duration={duration})"
    print(replay)
    return result


# Scaled runs: (scale, duration in scaled seconds). The fault of each entry starts at 60 s,
# i.e. at 60 * scale; each run lasts until the story has been told.
FAST = {
    "leader-crash": (0.05, 5.0),
    "leader-pause-longer-than-lease": (0.05, 5.0),
}
SLOW = {
    "storage-latency-spike": (0.1, 10.0),
    "leader-partitioned-from-storage": (0.1, 11.0),
    "ambiguous-renew": (0.1, 9.0),
}


def check_run(name: str, scale: float, duration: float, tmp_path: Path) -> Result:
    result = run(name, scale, duration, tmp_path)
    try:
        assert result.end_time == pytest.approx(duration)
        assert result.meta["source"] == "lab"
        phase = PausePhase.of(result)
        failures = failed_expectations(name, result, scale, phase)
        if failures:  # the story of the run, to tell a broken lab from a broken rule
            for e in result.events:
                if e.kind not in (
                    EventKind.RENEW_OK,
                    EventKind.RENEW_STARTED,
                    EventKind.STORAGE_OP,
                ):
                    print(
                        f"{e.true_time - result.start_time:8.3f} {e.node:>3} {e.kind.value}",
                        e.details,
                    )
        assert failures == [], (
            f"{name} (lab, scale {scale}): {failures}\n{result.verdict.line()}\n"
            f"what the pause's phase allows: {phase}"
        )
    finally:
        assert_no_member_left(result)
    return result


@pytest.mark.parametrize("name", list(FAST))
def test_a_scaled_catalogue_entry_run_for_real_gives_the_expected_verdict(
    name: str, tmp_path: Path
) -> None:
    scale, duration = FAST[name]
    result = check_run(name, scale, duration, tmp_path)
    # The merged trace reads like a simulated one: the schedule's fault 0, numbered so.
    faults = [e for e in result.events if e.kind is EventKind.FAULT_START]
    assert faults[0].details["fault"] == 0
    assert faults[0].details["kind"] == CATALOGUE[name].scenario().faults[0].kind
    assert faults[0].true_time == pytest.approx(60 * scale, abs=0.1)
    # Every member traced its storage operations with the three instants.
    ops = [e for e in result.events if e.kind is EventKind.STORAGE_OP]
    assert {e.node for e in ops} == {"n1", "n2", "n3"}
    assert all(
        e.details["sent_at"] <= e.details["arrived_at"] <= e.details["replied_at"]  # type: ignore[operator]
        for e in ops
        if e.details["replied_at"] is not None
    )
    # The saved directory reads back to the same story (the shutdown after the end, too).
    saved = read_trace_dir(tmp_path / "traces")
    assert (tmp_path / "traces" / LAB_TRACE_NAME).exists()
    assert Result(saved, result.end_time + result.start_time).summary() == result.summary()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW))
def test_a_scaled_storage_fault_entry_run_for_real_gives_the_expected_verdict(
    name: str, tmp_path: Path
) -> None:
    scale, duration = SLOW[name]
    result = check_run(name, scale, duration, tmp_path)
    starts = [e for e in result.events if e.kind is EventKind.FAULT_START]
    # Traced by the members' fault wrappers, with the schedule's number.
    assert starts
    assert all(e.details["fault"] == 0 for e in starts)
    assert all(e.node in ("n1", "n2", "n3") for e in starts)


#: Real runs of the fenced pause tried before a test gives up on seeing a stale write.
FENCED_ATTEMPTS = 3


def fenced_pause_until_a_stale_write(tmp_path: Path, **where: Any) -> Result:
    """Run the fenced GC-pause entry for real until the woken leader sends a stale write.

    Whether the paused leader still has a write pending when it wakes depends on which of
    its overdue timers the real loop runs first (its work's prepare, or its renew round,
    which cancels the work): in the simulator one order, for real either. So each run
    must be fenced and harmless, and one of a few runs must show a stale write refused.
    """
    for attempt in range(FENCED_ATTEMPTS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_scenario(
                "leader-pause-longer-than-lease[fencing]",
                scale=0.05,
                duration=5.0,
                trace_dir=tmp_path / f"t{attempt}",
                **where,
            )
        try:
            summary = result.summary()
            assert summary["level"] == "OVERLAP-FENCED", result.verdict.line()
            assert summary["stale_accepted"] == 0, result.verdict.line()
        finally:
            assert_no_member_left(result)
        if summary["stale_rejected"] >= 1:
            return result
    pytest.fail(f"no stale write was sent in {FENCED_ATTEMPTS} fenced pause runs")


@pytest.mark.slow
def test_the_pause_of_a_leader_makes_its_pending_write_stale_and_fencing_rejects_it(
    tmp_path: Path,
) -> None:
    fenced_pause_until_a_stale_write(tmp_path, db_path=tmp_path / "e.db")


# ---------------------------------------------------------------------- bad input


def test_a_clock_drift_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"clocks: \['n2'\] cannot be set in the real lab"):
        run_scenario("clock-drift-fast-follower", db_path=tmp_path / "e.db")
    assert not (tmp_path / "e.db").exists()


def test_a_timer_lateness_model_is_refused_for_real(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"timers.lateness cannot be set in the real lab"):
        run_scenario({"nodes": 2, "timers": {"lateness": 0.001}}, db_path=tmp_path / "e.db")
    assert not (tmp_path / "e.db").exists()


def test_a_drift_fault_is_refused_naming_its_kind(tmp_path: Path) -> None:
    scenario = {
        "nodes": 2,
        "duration": 10,
        "faults": [{"at": 1, "kind": "clock_drift", "target": "n1", "ppm": 100}],
    }
    with pytest.raises(
        ConfigError, match=r"faults\[0\]: kind 'clock_drift' cannot run in the real lab: a real"
    ):
        run_scenario(scenario, trace_dir=tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_an_unknown_node_is_refused(tmp_path: Path) -> None:
    scenario = {"nodes": 2, "duration": 10, "faults": [{"at": 1, "kind": "crash", "target": "n9"}]}
    with pytest.raises(ConfigError, match=r"target 'n9' is not a node of this scenario"):
        run_scenario(scenario, trace_dir=tmp_path / "t")


def test_a_python_callback_is_refused() -> None:
    async def lead() -> None:
        return None

    with pytest.raises(ConfigError, match=r"a Python leader callback cannot run in the lab"):
        run_scenario({"nodes": 2, "duration": 5, "callback": lead})


def test_a_bad_scale_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"scale must be a finite number > 0"):
        run_scenario("leader-crash", scale=-1)


# ---------------------------------------------------------------------- cleanup


def test_an_interrupted_run_leaves_no_member(tmp_path: Path) -> None:
    scenario = prepare_scenario("leader-crash", scale=0.05)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    lab = Lab.for_scenario(scenario, tmp_path / "e.db", trace_dir=tmp_path / "t")
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)  # Ctrl-C, 1.5 s into the run
        with pytest.raises(KeyboardInterrupt), lab:
            lab.run_scenario(scenario)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert lab.pids
    assert [pid for pid in lab.pids if alive(pid)] == []


def test_a_member_whose_lab_dies_stops_by_itself(tmp_path: Path) -> None:
    # A lab process killed outright: its members read the end of their stdin and leave.
    script = (
        "import sys, time\n"
        "from leadersim.lab import Lab\n"
        f"lab = Lab({str(tmp_path / 'e.db')!r}, ['n1', 'n2'], lease_duration=1.0,\n"
        "          renew_interval=0.1, renew_deadline=0.5)\n"
        "lab.start()\n"
        "print(' '.join(str(lab.pid(n)) for n in lab.node_ids), flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            pids = [int(p) for p in parent.stdout.readline().split()]
            assert len(pids) == 2
            time.sleep(1.0)
            parent.kill()
            parent.wait(10)
            give_up = time.monotonic() + 15
            while any(alive(p) for p in pids) and time.monotonic() < give_up:
                time.sleep(0.1)
            assert [p for p in pids if alive(p)] == []
        finally:
            if parent.poll() is None:
                parent.kill()


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_a_scenario_runs_for_real_on_a_database_server(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(server)
    # Fenced writes on the server: the paused leader's pending write is rejected.
    result = fenced_pause_until_a_stale_write(tmp_path, url=url)
    assert result.summary()["leader_changes"] == 1


# ---------------------------------------------------------------------- the schedule


@pytest.mark.slow
def test_the_schedule_runs_in_real_time_pauses_compose_and_restarts_append(
    tmp_path: Path,
) -> None:
    scenario = {
        "nodes": ["n1", "n2"],
        "config": {"lease_duration": 1.0, "renew_interval": 0.1, "renew_deadline": 0.5},
        "callback": {"stop_latency": 0.0, "writes_per_s": 5, "prepare_s": 0.05},
        "start_stagger": 0.2,
        "start_jitter": 0.0,
        "faults": [
            {"at": 1.0, "kind": "pause", "target": "n1", "duration": 1.0},
            {"at": 1.0, "kind": "crash", "target": "n2"},
            {"at": 1.5, "kind": "pause", "target": "n1", "duration": 1.0},
            {"at": 2.0, "kind": "restart", "target": "fault:1"},
            {"at": 3.0, "kind": "start", "target": "n3"},
            {"at": 4.0, "kind": "resign", "target": "leader", "resign_duration": 1.0},
        ],
        "duration": 5.5,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_scenario(scenario, db_path=tmp_path / "e.db", trace_dir=tmp_path / "t")
    try:
        events = result.events
        lab_events = [e for e in events if e.kind in (EventKind.FAULT_START, EventKind.FAULT_END)]
        by_fault = {(e.details["fault"], e.kind): e for e in lab_events}
        # Each fault at its time (the lab's clock and the members' are one), numbered as
        # in the schedule.
        for (index, kind), event in by_fault.items():
            if kind is EventKind.FAULT_START:
                assert event.true_time == pytest.approx(
                    result.meta["scenario"].faults[index].at, abs=0.15
                )
        # Overlapping pauses compose: n1 is continued once, when the later one ends (2.5 s).
        conts = [e for e in lab_events if e.details.get("signal") == "SIGCONT"]
        assert [e.node for e in conts] == ["n1"]
        assert conts[0].true_time == pytest.approx(2.5, abs=0.15)
        frozen = [
            e
            for e in events
            if e.node == "n1"
            and 1.05 < e.true_time < 2.45
            and e.kind not in (EventKind.FAULT_START, EventKind.FAULT_END)
        ]
        assert frozen == [], frozen
        # The crashed n2 came back (a second election in the same trace file), n3 joined.
        starts = [e.node for e in events if e.kind is EventKind.ELECTION_STARTED]
        assert starts.count("n2") == 2
        assert "n3" in starts
        n2_trace = (tmp_path / "t" / "n2.jsonl").read_text().count('"election_started"')
        assert n2_trace == 2
        # The leader at 4 s resigned: its callback stopped, and someone else led after.
        resigned = [e for e in events if e.kind is EventKind.RESIGN]
        assert resigned, "no resign traced"
        assert resigned[0].true_time == pytest.approx(4.0, abs=0.3)
        later = [i for i in result.acting() if i.start > resigned[0].true_time]
        assert later
        assert later[0].node != resigned[0].node
    finally:
        assert_no_member_left(result)
