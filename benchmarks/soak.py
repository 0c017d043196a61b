"""Soak: many real members on one SQLite file under random crashes, pauses and restarts.

Run: ``python benchmarks/soak.py [--members 20] [--duration 300] [--seed N]`` (see
``--help``; benchmarks/README.md explains the checks). It is a test as much as a benchmark:
it exits 1 if any check fails, 2 on bad options.

The run alternates *bursts* and *quiet intervals*. In a burst the driver injects random
faults through :class:`leadersim.lab.Lab` (which records each one in ``lab.jsonl``):
``SIGKILL`` (the member is restarted later), ``SIGSTOP``/``SIGCONT`` pauses shorter than
the slack ``S = L - I - D`` and longer ones (up to several leases), half of them aimed at
the current leader (read from the stored record). A burst ends when its last fault has
ended; then nothing is injected for a quiet interval. After ``--duration`` seconds the run
ends with a quiet interval, the stored record is checked, the members are stopped, and the
merged trace (up to the stop) is judged:

- ``PRAGMA integrity_check`` is ``ok``;
- the stored record always decoded (sampled through the run with leadersim's own row
  decoder), its version never went back, and at the end every running member is in it;
- every acting overlap is explained by the theory: each node acting beside a newer
  leader was paused, for longer than the slack, over that whole stretch (or stopped
  within its next renew round, ``I + D`` plus the margin, after the pause ended);
- in every quiet interval a single leader is back within the theory's failover bound
  (:func:`leadersim.analysis.theory.failover_time` ``crash`` high: ``L + I`` plus the
  margin), counted from the end of the last fault;
- no member died by itself, and every member exited cleanly when stopped.

The fault schedule comes from ``--seed``: the same seed replays the same decisions (kinds,
lengths, spacing, leader-or-random targeting); which member is the leader at a given
moment depends on the real run.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import itertools
import json
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leadersim.analysis import theory
from leadersim.analysis.intervals import Interval
from leadersim.analysis.result import Result
from leadersim.errors import CorruptRecordError
from leadersim.lab import Lab, LabError
from leadersim.record import Record
from leadersim.storage.sqlite import SQLiteStatements
from leadersim.trace import EventKind, TraceEvent

TABLE = "election"
#: Seconds between two samples of the stored record by the driver.
SAMPLE_EVERY = 0.5
#: Driver loop granularity (s): how late a scheduled SIGCONT or restart may be sent.
TICK = 0.02


# ---------------------------------------------------------------------- options


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Soak real members on one SQLite file with random SIGKILL, SIGSTOP "
        "and restarts, then check the file, the record, every overlap and every recovery.",
    )
    parser.add_argument("--members", type=int, default=20, help="member processes (20)")
    parser.add_argument(
        "--duration", type=float, default=300.0, help="seconds of bursts and quiet (300)"
    )
    parser.add_argument("--seed", type=int, default=None, help="schedule seed (random)")
    parser.add_argument("--lease", type=float, default=2.0, help="L in seconds (2)")
    parser.add_argument("--interval", type=float, default=0.25, help="I in seconds (0.25)")
    parser.add_argument("--deadline", type=float, default=1.5, help="D in seconds (1.5)")
    parser.add_argument(
        "--margin",
        type=float,
        default=0.5,
        help="seconds added to every theory bound for storage round trips and scheduling "
        "of many processes on a small host (0.5)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=None,
        help="seconds of each quiet interval (default: the failover bound + 2 leases)",
    )
    parser.add_argument(
        "--max-faulty",
        type=int,
        default=None,
        help="most members down or paused at once (default: a quarter of them)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="keep the run here (a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    problems = []
    if args.members < 2:
        problems.append(f"--members must be at least 2, got {args.members}")
    if not args.duration > 0:
        problems.append(f"--duration must be > 0 seconds, got {args.duration}")
    if not (args.interval > 0 and args.deadline > 0 and args.lease > 0):
        problems.append("--lease, --interval and --deadline must be > 0 seconds")
    elif theory.slack(args.lease, args.interval, args.deadline) <= 0:
        problems.append(
            f"the slack L - I - D must be > 0 (short pauses are drawn below it), got "
            f"{theory.slack(args.lease, args.interval, args.deadline):g} s"
        )
    if args.margin < 0:
        problems.append(f"--margin must be >= 0 seconds, got {args.margin}")
    if args.max_faulty is not None and not 1 <= args.max_faulty < args.members:
        problems.append(f"--max-faulty must be from 1 to members - 1, got {args.max_faulty}")
    if problems:
        parser.error("; ".join(problems))
    if args.seed is None:
        args.seed = random.randrange(2**31)
    if args.max_faulty is None:
        args.max_faulty = max(1, args.members // 4)
    return args


@dataclasses.dataclass(frozen=True)
class Timing:
    """The configuration and the theory's numbers derived from it (seconds)."""

    lease: float
    interval: float
    deadline: float
    margin: float

    @property
    def slack(self) -> float:
        return float(theory.slack(self.lease, self.interval, self.deadline))

    @property
    def failover(self) -> theory.FailoverEstimate:
        """A crashed (or long-paused) leader's replacement: ``L +- I`` (the theory's)."""
        return theory.failover_time("crash", self.lease, self.interval, self.deadline)

    @property
    def recovery_bound(self) -> float:
        """The most a single leader may take to be back after faults stop: ``L + I`` + margin.

        The theory's ``crash`` high with the margin as its round trip: the last fault may
        have been the leader's crash (or the end of its long pause) just before.
        """
        high = theory.failover_time(
            "crash", self.lease, self.interval, self.deadline, round_trip=self.margin
        ).high
        return float(high)

    @property
    def stop_after_wake(self) -> float:
        """How long a woken old leader may still act: its next round, retried up to D."""
        return self.interval + self.deadline + self.margin


# ---------------------------------------------------------------------- the driver


@dataclasses.dataclass
class Driver:
    """Injects the seeded random faults into a running lab and samples the record."""

    lab: Lab
    timing: Timing
    rng: random.Random
    max_faulty: int
    down: dict[str, float] = dataclasses.field(default_factory=dict)  # node -> restart at
    paused: dict[str, float] = dataclasses.field(default_factory=dict)  # node -> resume at
    held: set[str] = dataclasses.field(default_factory=set)  # killed, restarted after quiet
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    quiets: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    violations: list[str] = dataclasses.field(default_factory=list)
    samples: int = 0
    versions: list[int] = dataclasses.field(default_factory=list)
    leader: str = ""
    _next_sample: float = 0.0
    #: When the driver last signalled or restarted a member (host monotonic).
    last_action: float = 0.0

    # -- the stored record

    def read_record(self) -> Record | None:
        """The stored record via leadersim's decoder; a violation (and None) if corrupt."""
        statements = SQLiteStatements.for_table(TABLE)
        try:
            with contextlib.closing(sqlite3.connect(self.lab.db_path, timeout=5)) as db:
                rows = db.execute(statements.select).fetchall()
            record = statements.decode(rows)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None  # not created yet: only before the first member's start
            self.violations.append(f"reading the record failed: {exc}")
            return None
        except CorruptRecordError as exc:
            self.violations.append(f"malformed record: {exc}")
            return None
        return record

    def sample(self, now: float) -> None:
        if now < self._next_sample:
            return
        self._next_sample = now + SAMPLE_EVERY
        record = self.read_record()
        if record is None:
            return
        self.samples += 1
        if self.versions and record.version < self.versions[-1]:
            self.violations.append(
                f"record lost: version went back from {self.versions[-1]} to {record.version}"
            )
        elif self.versions and record.version == 0:
            self.violations.append("record lost: the row is gone")
        self.versions.append(record.version)
        self.leader = record.leader_id

    # -- faults

    def running(self) -> list[str]:
        return [
            n
            for n in self.lab.node_ids
            if n not in self.down and n not in self.paused and n not in self.held
        ]

    def check_alive(self) -> None:
        for node in self.running():
            if not self.lab.is_running(node):
                self.violations.append(f"member {node} died by itself\n{self.lab.describe()}")
                self.down[node] = time.monotonic()  # restart it, and go on

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def inject(self, aim: float, pick: float, roll: float, length: float) -> None:
        """One fault: on the leader (``aim`` < 0.5) or a running member (``pick``).

        The four uniform draws come from the burst's plan, so that what the run does
        never changes which numbers the seed gives next.
        """
        if len(self.down) + len(self.paused) >= self.max_faulty:
            self._count("skipped (too many faulty)")
            return
        candidates = self.running()
        node = candidates[min(len(candidates) - 1, int(pick * len(candidates)))]
        if aim < 0.5 and self.leader in candidates:
            node = self.leader
        t = self.timing
        if roll < 0.3:
            self.last_action = self.lab.kill(node, signal.SIGKILL)
            self.down[node] = time.monotonic() + 0.2 + length * 2 * t.lease
            self._count("sigkill")
        elif roll < 0.6:
            # Longer than the slack: from S up to 3 leases (most outlast the lease).
            self.last_action = self.lab.kill(node, signal.SIGSTOP)
            self.paused[node] = time.monotonic() + t.slack + length * (3 * t.lease - t.slack)
            self._count("long pause (> slack)")
        else:
            # Shorter than the slack (10 % to 60 % of it): sent inline, so that no other
            # action of the driver can delay the SIGCONT and make the pause longer.
            self.lab.kill(node, signal.SIGSTOP)
            time.sleep(t.slack * (0.1 + 0.5 * length))
            self.last_action = self.lab.kill(node, signal.SIGCONT)
            self._count("short pause (< slack)")
        if node == self.leader:
            self._count("of these, on the leader")

    def end_due(self, now: float) -> None:
        """Resume the paused members and restart the killed ones whose time has come."""
        for node, at in sorted(self.paused.items()):
            if at <= now:
                del self.paused[node]
                self.last_action = self.lab.kill(node, signal.SIGCONT)
        for node, at in sorted(self.down.items()):
            if at <= now:
                del self.down[node]
                self.last_action = time.monotonic()
                self.lab.start(node)
                self._count("restart")

    def idle(self, until: float) -> None:
        """Run the scheduled ends and the sampler until ``until`` (host monotonic)."""
        while (now := time.monotonic()) < until:
            self.end_due(now)
            self.sample(now)
            self.check_alive()
            time.sleep(min(TICK, max(0.0, until - now)))

    def burst(self, length: float) -> None:
        """Inject faults for ``length`` seconds, then wait for all of them to end."""
        # The whole plan is drawn first: fault times (exponential spacing, mean L/2) and
        # each fault's draws. The seed thus gives the same plan whatever the run does.
        plan = []
        offset = 0.0
        while (offset := offset + self.rng.expovariate(2.0 / self.timing.lease)) < length:
            plan.append((offset, [self.rng.random() for _ in range(4)]))
        begin = time.monotonic()
        for at, draws in plan:
            self.idle(begin + at)
            self.inject(*draws)
        self.idle(begin + length)
        while self.paused or self.down:
            self.idle(time.monotonic() + TICK)
        self.final_blow()

    def final_blow(self) -> None:
        """End a burst, two times in three, with a fault of the leader the quiet must heal.

        Either the leader is killed, and restarted only after the quiet interval, so that
        the interval measures a whole failover from the crash; or it is paused for one
        to two leases (a follower takes over meanwhile) and resumed, so that the interval
        starts with two callbacks and measures the woken leader's stop.
        """
        roll, length = self.rng.random(), self.rng.random()
        record = self.read_record()
        leader = record.leader_id if record is not None else ""
        if roll < 1 / 3 or leader not in self.running():
            return
        if roll < 2 / 3:
            self.last_action = self.lab.kill(leader, signal.SIGKILL)
            self.held.add(leader)
            self._count("final blow: leader sigkill")
        else:
            self.last_action = self.lab.kill(leader, signal.SIGSTOP)
            self.paused[leader] = time.monotonic() + (1 + length) * self.timing.lease
            self._count("final blow: leader pause of 1-2 L")
            while self.paused:
                self.idle(time.monotonic() + TICK)

    def quiet(self, length: float) -> None:
        """Inject nothing for ``length`` seconds; keep the interval, from the last action.

        Members killed by :meth:`final_blow` are restarted after it.
        """
        start = self.last_action or time.monotonic()
        self.idle(time.monotonic() + length)
        self.quiets.append((start, time.monotonic()))
        for node in sorted(self.held):
            self.held.discard(node)
            self.last_action = time.monotonic()
            self.lab.start(node)
            self._count("restart")


# ---------------------------------------------------------------------- the analysis


@dataclasses.dataclass(frozen=True)
class Pause:
    node: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def pauses_of(events: Sequence[TraceEvent], end_time: float) -> dict[str, list[Pause]]:
    """Each node's pauses (``pause`` faults), ended by their end, a crash or the run's end."""
    open_at: dict[tuple[str, object], float] = {}
    found: dict[str, list[Pause]] = {}
    for event in events:
        if event.kind not in (EventKind.FAULT_START, EventKind.FAULT_END):
            continue
        kind = event.details.get("kind")
        key = (event.node, event.details.get("fault"))
        if kind == "pause" and event.kind is EventKind.FAULT_START:
            open_at[key] = event.true_time
        elif kind == "pause" and key in open_at:
            start = open_at.pop(key)
            found.setdefault(event.node, []).append(Pause(event.node, start, event.true_time))
        elif kind == "crash":
            for other in [k for k in open_at if k[0] == event.node]:
                found.setdefault(event.node, []).append(
                    Pause(event.node, open_at.pop(other), event.true_time)
                )
    for (node, _), start in open_at.items():
        found.setdefault(node, []).append(Pause(node, start, end_time))
    return found


@dataclasses.dataclass(frozen=True)
class Overlap:
    """One node acting beside a newer leader: ``node`` acted over [start, end]."""

    node: str
    newer: str
    start: float
    end: float
    pause: Pause | None  # the pause that explains it, if one does

    @property
    def explained(self) -> bool:
        return self.pause is not None


def classify_overlaps(
    acting: Sequence[Interval], pauses: dict[str, list[Pause]], timing: Timing
) -> list[Overlap]:
    """Each stretch in which a node acted after a newer term had begun on another node.

    The theory (docs/theory.md) allows that only to an old leader paused for longer than
    the slack: the stretch must lie inside one such pause of it, or end within
    ``I + D`` (plus the margin) after the pause ended: the woken leader's next renew
    round, retried up to its deadline, sees the new leader and stops its callback.
    """
    terms = sorted(acting, key=lambda i: i.start)
    starts = [i.start for i in terms]
    found = []
    for term in terms:
        # The first term on another node that began while this one acted.
        first = bisect.bisect_right(starts, term.start)
        newer = next((i for i in terms[first:] if i.start < term.end and i.node != term.node), None)
        if newer is None:
            continue
        start, end = newer.start, term.end
        explaining = next(
            (
                p
                for p in pauses.get(term.node, [])
                if p.duration > timing.slack
                and p.start <= start
                and end <= p.end + timing.stop_after_wake
            ),
            None,
        )
        found.append(Overlap(term.node, newer.node, start, end, explaining))
    return found


@dataclasses.dataclass(frozen=True)
class Recovery:
    """A quiet interval (run-relative seconds) and when a single leader was back in it."""

    start: float
    end: float
    leader: str | None
    back_s: float | None  # None: no single leader at the interval's end


def recoveries(acting: Sequence[Interval], quiets: Sequence[tuple[float, float]]) -> list[Recovery]:
    """For each quiet interval, from its start until one node acts alone to its end."""
    found = []
    for start, end in quiets:
        holding = [i for i in acting if i.start <= end < i.end]
        if len(holding) != 1:
            found.append(Recovery(start, end, None, None))
            continue
        alone = holding[0]
        others = [i.end for i in acting if i is not alone and i.end > start and i.start < end]
        back = max([alone.start, *others, start])
        found.append(Recovery(start, end, alone.node, back - start))
    return found


def renewal_gaps(events: Sequence[TraceEvent]) -> list[tuple[float, float]]:
    """Each member's consecutive renewals (start, end) with no fault on it in between."""
    gaps = []
    last: dict[str, float] = {}
    for event in events:
        if event.kind is EventKind.RENEW_OK:
            if event.node in last:
                gaps.append((last[event.node], event.true_time))
            last[event.node] = event.true_time
        elif event.kind in (EventKind.FAULT_START, EventKind.FAULT_END):
            last.pop(event.node, None)
    return gaps


def file_stalls(events: Sequence[TraceEvent], longer_than: float) -> list[tuple[float, float]]:
    """Spans longer than ``longer_than`` seconds in which no member renewed at all.

    SQLite has one write lock per file: a member paused while it holds it (inside its
    compare-and-swap) stops every other member's writes until it is resumed.
    """
    times = [e.true_time for e in events if e.kind is EventKind.RENEW_OK]
    return [(a, b) for a, b in itertools.pairwise(times) if b - a > longer_than]


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, min, median, p99 and max of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "min": None, "median": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
    }


def analyse(
    events: Sequence[TraceEvent],
    stop_at: float,
    quiets: Sequence[tuple[float, float]],
    timing: Timing,
) -> dict[str, Any]:
    """Judge a soak's merged trace up to ``stop_at`` (host monotonic, as ``quiets``)."""
    result = Result([e for e in events if e.true_time <= stop_at], end_time=stop_at)
    origin = result.start_time
    acting = result.acting()
    pauses = pauses_of(result.events, result.end_time)
    overlaps = classify_overlaps(acting, pauses, timing)
    recovered = recoveries(acting, [(a - origin, b - origin) for a, b in quiets])
    failovers = result.failovers()
    by_cause: dict[str, Any] = {}
    for cause, group in failovers.dropna(subset=["failover_s"]).groupby("cause"):
        by_cause[str(cause)] = spread(list(group["failover_s"]))
    kinds: dict[str, int] = {}
    for event in result.events:
        kinds[event.kind.value] = kinds.get(event.kind.value, 0) + 1
    stalls = file_stalls(result.events, timing.deadline)
    # Who held the file: a member paused for (nearly) the whole stall.
    paused_over = [
        sorted(
            n
            for n, ps in pauses.items()
            if any(min(b, p.end) - max(a, p.start) >= 0.9 * (b - a) for p in ps)
        )
        for a, b in stalls
    ]
    gaps = [
        b - a
        for a, b in renewal_gaps(result.events)
        if not any(a < stall_end and stall_start < b for stall_start, stall_end in stalls)
    ]
    predicted = timing.failover
    return {
        "result": result,
        "verdict": result.summary(),
        "overlaps": overlaps,
        "recoveries": recovered,
        "failovers_by_cause": by_cause,
        "predicted_failover": {
            "low": predicted.low,
            "expected": predicted.expected,
            "high": predicted.high,
        },
        "recovery_bound": timing.recovery_bound,
        # The theory's overlap after a pause P longer than the lease is about P - L
        # (docs/theory.md): measured minus predicted, for each explained overlap.
        "overlap_minus_theory": spread(
            [
                (o.end - o.start) - max(0.0, o.pause.duration - timing.lease)
                for o in overlaps
                if o.pause is not None
            ]
        ),
        # How long a woken old leader went on acting after its SIGCONT.
        "stop_after_wake": spread(
            [max(0.0, o.end - o.pause.end) for o in overlaps if o.pause is not None]
        ),
        "renewal_gap": spread(gaps),
        "file_stalls": [
            {"start": a, "end": b, "paused": paused}
            for (a, b), paused in zip(stalls, paused_over, strict=True)
        ],
        "renewal_gaps_over_deadline": sum(1 for g in gaps if g > timing.deadline),
        "renewal_gaps_over_lease": sum(1 for g in gaps if g > timing.lease),
        "events": kinds,
    }


# ---------------------------------------------------------------------- the run


def fmt(value: float | int | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def run(args: argparse.Namespace, directory: Path) -> int:
    timing = Timing(args.lease, args.interval, args.deadline, args.margin)
    quiet = args.quiet if args.quiet is not None else timing.recovery_bound + 2 * args.lease
    nodes = [f"m{i:02d}" for i in range(args.members)]
    rng = random.Random(args.seed)
    replay = (
        f"python benchmarks/soak.py --seed {args.seed} --members {args.members} "
        f"--duration {args.duration:g} --lease {args.lease:g} --interval {args.interval:g} "
        f"--deadline {args.deadline:g} --margin {args.margin:g} --quiet {quiet:g} "
        f"--max-faulty {args.max_faulty}"
    )
    print(f"soak: {args.members} members on {directory / 'election.db'}")
    print(
        f"config: L={args.lease:g} I={args.interval:g} D={args.deadline:g} s, slack "
        f"{timing.slack:g} s, margin {args.margin:g} s, quiet {quiet:g} s, at most "
        f"{args.max_faulty} members faulty at once"
    )
    print(f"replay: {replay}", flush=True)
    lab = Lab(
        directory / "election.db",
        nodes,
        lease_duration=args.lease,
        renew_interval=args.interval,
        renew_deadline=args.deadline,
        trace_dir=directory / "traces",
        seed=args.seed,
    )
    driver = Driver(lab, timing, rng, args.max_faulty)
    codes: dict[str, int] = {}
    try:
        lab.start()
        lab.wait_for_event(EventKind.CALLBACK_STARTED, timeout=60 + args.members)
        driver.idle(time.monotonic() + quiet)  # everyone has joined before the first fault
        soak_end = time.monotonic() + args.duration
        while time.monotonic() < soak_end:
            driver.burst(rng.uniform(2, 8) * args.lease)
            driver.quiet(quiet)
        # Every running member appears in the record (a restarted one within a lease).
        missing = set(driver.running())
        give_up = time.monotonic() + args.lease + 10  # a restarted process may still import
        while missing and time.monotonic() < give_up:
            record = driver.read_record()
            if record is not None:
                missing -= {m.id for m in record.members}
            time.sleep(args.interval)
        if missing:
            driver.violations.append(f"running members missing from the record: {sorted(missing)}")
        final = driver.read_record()
        stop_at = time.monotonic()
        codes = lab.stop_all()
        integrity = lab.integrity_check()
        events = lab.read_trace()
    except LabError as exc:
        print(f"soak: the lab failed: {exc}", file=sys.stderr)
        return 1
    finally:
        lab.close()
    report = analyse(events, stop_at, driver.quiets, timing)
    violations = list(driver.violations)
    if integrity != "ok":
        violations.append(f"integrity_check: {integrity}")
    bad_exits = {n: c for n, c in codes.items() if c != 0}
    if bad_exits:
        violations.append(f"members did not exit cleanly when stopped: {bad_exits}")
    if final is None or final.version < 1:
        violations.append("no record at the end")
    elif final.leader_id not in {m.id for m in final.members}:
        violations.append(f"final record names leader {final.leader_id!r}, not a member")
    elif report["recoveries"] and final.leader_id != report["recoveries"][-1].leader:
        violations.append(
            f"final record names leader {final.leader_id!r}, but "
            f"{report['recoveries'][-1].leader!r} was acting"
        )
    for overlap in report["overlaps"]:
        if not overlap.explained:
            violations.append(
                f"unexplained acting overlap: {overlap.node} acted "
                f"{overlap.start:.3f}-{overlap.end:.3f} s after {overlap.newer} took over, "
                f"with no pause longer than the slack over it"
            )
    bound = timing.recovery_bound
    for rec in report["recoveries"]:
        if rec.back_s is None:
            violations.append(
                f"no single leader at the end of the quiet interval {rec.start:.3f}-{rec.end:.3f} s"
            )
        elif rec.back_s > bound:
            violations.append(
                f"quiet interval {rec.start:.3f}-{rec.end:.3f} s: a single leader only "
                f"{rec.back_s:.3f} s after the last fault (bound {bound:.3f} s)"
            )
    print_report(args, driver, report, integrity, final, violations)
    if args.json is not None:
        args.json.write_text(
            json.dumps(summary_dict(args, driver, report, integrity, violations), indent=2) + "\n"
        )
    if violations:
        print(f"soak: FAIL, {len(violations)} violation(s); replay: {replay}")
        return 1
    print("soak: PASS")
    return 0


def summary_dict(
    args: argparse.Namespace,
    driver: Driver,
    report: dict[str, Any],
    integrity: str,
    violations: list[str],
) -> dict[str, Any]:
    overlaps = report["overlaps"]
    backs = [r.back_s for r in report["recoveries"] if r.back_s is not None]
    verdict = report["verdict"]
    return {
        "seed": args.seed,
        "members": args.members,
        "duration_s": args.duration,
        "lease_s": args.lease,
        "interval_s": args.interval,
        "deadline_s": args.deadline,
        "slack_s": driver.timing.slack,
        "margin_s": args.margin,
        "faults": dict(sorted(driver.counts.items())),
        "integrity_check": integrity,
        "record_samples": driver.samples,
        "record_versions": [driver.versions[0], driver.versions[-1]] if driver.versions else [],
        "overlaps": len(overlaps),
        "overlaps_explained": sum(1 for o in overlaps if o.explained),
        "overlaps_unexplained": sum(1 for o in overlaps if not o.explained),
        "overlap_s": verdict["overlap_s"],
        "overlap_longest_s": max((o.end - o.start for o in overlaps), default=0.0),
        "quiet_intervals": len(report["recoveries"]),
        "leader_back_s": spread(backs),
        "recovery_bound_s": report["recovery_bound"],
        "overlap_minus_theory_s": report["overlap_minus_theory"],
        "stop_after_wake_s": report["stop_after_wake"],
        "shortest_pause_with_overlap_s": min(
            (o.pause.duration for o in overlaps if o.pause is not None), default=None
        ),
        "predicted_failover_s": report["predicted_failover"],
        "failovers_by_cause": report["failovers_by_cause"],
        "renewal_gap_s": report["renewal_gap"],
        "file_stalls": report["file_stalls"],
        "renewal_gaps_over_deadline": report["renewal_gaps_over_deadline"],
        "renewal_gaps_over_lease": report["renewal_gaps_over_lease"],
        "events": report["events"],
        "violations": violations,
    }


def print_report(
    args: argparse.Namespace,
    driver: Driver,
    report: dict[str, Any],
    integrity: str,
    final: Record | None,
    violations: list[str],
) -> None:
    data = summary_dict(args, driver, report, integrity, violations)
    print("\nfaults injected:")
    for kind, count in data["faults"].items():
        print(f"  {kind:36} {count}")
    print(f"integrity_check: {integrity}")
    print(
        f"record: {data['record_samples']} samples decoded, versions "
        f"{data['record_versions']}, final leader {final.leader_id if final else None!r} "
        f"with {len(final.members) if final else 0} members"
    )
    print(
        f"acting overlaps: {data['overlaps']} ({data['overlaps_explained']} explained by a "
        f"pause > slack, {data['overlaps_unexplained']} unexplained), split brain "
        f"{data['overlap_s']:.3f} s in all, longest {data['overlap_longest_s']:.3f} s"
    )
    diff = data["overlap_minus_theory_s"]
    print(
        f"  overlap minus the theory's P - L per explained overlap: min {fmt(diff['min'])} / "
        f"median {fmt(diff['median'])} / max {fmt(diff['max'])} s"
    )
    print(
        f"  the shortest pause that led to an overlap: "
        f"{fmt(data['shortest_pause_with_overlap_s'])} s (L = {args.lease:g} s)"
    )
    wake = data["stop_after_wake_s"]
    print(
        f"  the woken old leader stopped after its SIGCONT: min {fmt(wake['min'])} / median "
        f"{fmt(wake['median'])} / max {fmt(wake['max'])} s (allowed I + D + margin = "
        f"{driver.timing.stop_after_wake:.3f} s)"
    )
    predicted = data["predicted_failover_s"]
    back = data["leader_back_s"]
    print(
        f"quiet intervals: {data['quiet_intervals']}, single leader back after min "
        f"{fmt(back['min'])} / median {fmt(back['median'])} / max {fmt(back['max'])} s "
        f"(bound L + I + margin = {data['recovery_bound_s']:.3f} s)"
    )
    print(
        f"failovers (cause: n, min / median / max s, from the fault or the last renewal; "
        f"the theory's crash or pause failover is L +- I = {predicted['low']:.3f} .. "
        f"{predicted['high']:.3f}, expected {predicted['expected']:.3f}):"
    )
    for cause, s in data["failovers_by_cause"].items():
        print(f"  {cause:10} {s['n']:4}  {fmt(s['min'])} / {fmt(s['median'])} / {fmt(s['max'])}")
    stalls = data["file_stalls"]
    print(
        f"file stalls (no member renewed for more than D): {len(stalls)}"
        + "".join(
            f"\n  {st['start']:.3f}-{st['end']:.3f} s ({st['end'] - st['start']:.3f} s), "
            f"paused over it: {', '.join(st['paused']) or 'none'}"
            for st in stalls
        )
    )
    gap = data["renewal_gap_s"]
    print(
        f"renewal gaps outside the stalls (I = {args.interval:g} s): median "
        f"{fmt(gap['median'])}, p99 "
        f"{fmt(gap['p99'])}, max {fmt(gap['max'])} s; {data['renewal_gaps_over_deadline']} "
        f"over D, {data['renewal_gaps_over_lease']} over L (of {gap['n']})"
    )
    events = data["events"]
    print(
        "events: "
        + ", ".join(
            f"{k} {events.get(k, 0)}"
            for k in (
                "renew_ok",
                "cas_conflict",
                "renew_failed",
                "member_expired",
                "callback_started",
                "lost_leader",
            )
        )
    )
    for violation in violations:
        print(f"VIOLATION: {violation}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return run(args, args.dir)
    with tempfile.TemporaryDirectory(prefix="leadersim-soak-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
