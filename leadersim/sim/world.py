"""A simulated cluster: nodes running the real elector, a storage server, faults, a seed.

:class:`World` builds one run of a :class:`~leadersim.sim.scenario.Scenario` — a
:class:`~leadersim.sim.loop.SimLoop` on a fresh SimPy environment, a
:class:`~leadersim.sim.storage.StorageServer`, a clock per node, one unmodified
:class:`~leadersim.Elector` per node — applies the fault schedule, and returns a
:class:`Run` holding the full trace.

One integer seed drives everything, split into named sub-streams (storage latency, the
protected resource, each node's jitter) so that adding a node or a fault does not
reshuffle the others. String seeds are hashed by :mod:`random` with SHA-512, so
``PYTHONHASHSEED`` does not matter.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import gc
import json
import logging
import random
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import simpy

from leadersim.config import Config
from leadersim.elector import Elector
from leadersim.errors import RenewFailedError, SafetyWarning
from leadersim.sim.clock import NodeClock
from leadersim.sim.faults import FAULT_KINDS, Fault
from leadersim.sim.loop import NodeTag, SimLoop
from leadersim.sim.scenario import CallbackSpec, Scenario
from leadersim.sim.storage import ProtectedResource, StorageServer
from leadersim.trace import EventKind, Scalar, Trace, TraceEvent, TraceRecorder
from leadersim.workload import leader_workload

__all__ = ["Run", "World"]

#: One world's step for a fault kind: ``step(index, node, fault)``.
_FaultStep = Callable[[int, str, Fault], None]
# Events that say which incarnation of a node they belong to.
_TAGGED = frozenset(
    {
        EventKind.CALLBACK_STARTED,
        EventKind.CALLBACK_CANCELLED,
        EventKind.CALLBACK_STOPPED,
        EventKind.ELECTION_STARTED,
        EventKind.ELECTION_STOPPED,
    }
)

# Simulated electors log to their own logger, silent unless a user attaches a handler:
# a sweep of thousands of runs must not flood the console with expected warnings.
SIM_LOGGER = logging.getLogger("leadersim.sim.elector")
SIM_LOGGER.propagate = False
SIM_LOGGER.addHandler(logging.NullHandler())


@dataclasses.dataclass(slots=True)
class _Node:
    node: str
    index: int
    clock: NodeClock
    tag: NodeTag | None = None
    elector: Elector | None = None
    task: asyncio.Task[None] | None = None
    incarnation: int = -1
    acting: bool = False
    # The scenario's own drift of the node's clock, and the active clock_drift faults'
    # ppm on top of it (overlapping drifts add up; ending one leaves the others).
    base_drift_ppm: float = 0.0
    drifts: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """The outcome of one simulated run.

    Attributes:
        scenario: What was run.
        seed: The seed it was run with.
        events: The full trace, in true-time order.
        end_time: Simulated second at which the run stopped.
        safety_warnings: ``SafetyWarning`` messages the configs raised (once each).
    """

    scenario: Scenario
    seed: int
    events: Trace
    end_time: float
    safety_warnings: tuple[str, ...] = ()

    def to_jsonl(self) -> str:
        """The trace as JSON lines (byte-identical for the same seed and scenario)."""
        return "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in self.events)

    def of_kind(self, *kinds: EventKind) -> list[TraceEvent]:
        """The events of the given kinds, in order."""
        return [e for e in self.events if e.kind in kinds]


class World:
    """One simulated run of ``scenario`` with ``seed``.

    Args:
        scenario: The scenario to run.
        seed: Drives every random choice of the run.
    """

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.env = simpy.Environment()
        self.loop = SimLoop(self.env)
        # Environment callbacks (faults, starts) run in an empty context of this world's
        # own: a context can be entered by one thread at a time, and worlds may run side by
        # side in threads.
        self._context = contextvars.Context()
        self.recorder = TraceRecorder(true_clock=self.loop.time)
        storage = scenario.storage
        self.server = StorageServer(
            self.env,
            latency=storage.latency,
            latency_by_op=dict(storage.latency_by_op),
            latency_by_node=dict(storage.latency_by_node),
            rng=self._rng("storage"),
            observer=self._env_observer,
            now=self.loop.time,
        )
        self.resource = ProtectedResource(
            self.server,
            rng=self._rng("resource"),
            observer=self._env_observer,
            fencing=scenario.fencing,
        )
        self.nodes: dict[str, _Node] = {}
        self._safety_warnings: list[str] = []
        self._resolved: dict[int, list[str]] = {}
        self._paused: dict[tuple[int, str], NodeTag] = {}
        self._starts: dict[str, _FaultStep] = {
            "start": self._fault_start_node,
            "restart": self._fault_start_node,
            "crash": self._fault_crash,
            "pause": self._fault_pause,
            "cancel": self._fault_cancel,
            "resign": self._fault_resign,
            "clock_drift": self._fault_drift,
            "clock_step": self._fault_step,
        }
        self._ends: dict[str, _FaultStep] = {
            "pause": self._fault_resume,
            "clock_drift": self._fault_drift_end,
        }
        for node in scenario.nodes:
            self._add_node(node)

    # ------------------------------------------------------------------ helpers

    def _rng(self, *stream: object) -> random.Random:
        return random.Random(":".join([str(self.seed), *map(str, stream)]))

    def _add_node(self, node: str) -> _Node:
        index = len(self.nodes)
        clock_spec = self.scenario.clocks.get(node, {})
        drift = float(clock_spec.get("drift_ppm", 0.0))
        lateness = self.scenario.timer_lateness
        late = None
        if lateness is not None:  # its own seeded stream: runs without it draw as before
            rng = self._rng("timers", node)
            late = functools.partial(lateness.sample, rng)
        clock = NodeClock(
            self.loop.time,
            origin=1000.0 * (index + 1),
            drift_ppm=drift,
            wall_offset=float(clock_spec.get("wall_offset", 0.0)),
            lateness=late,
        )
        state = self.nodes[node] = _Node(node, index, clock, base_drift_ppm=drift)
        return state

    def _env_observer(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        state = self.nodes.get(node)
        local = state.clock.monotonic() if state is not None else self.loop.time()
        # Every caller builds a fresh dict for each event: kept as it is (one copy).
        self.recorder.record(node, local, kind, details)  # type: ignore[arg-type]

    def _node_observer(
        self, node: str, local_time: float, kind: EventKind, details: Mapping[str, Scalar]
    ) -> None:
        state = self.nodes[node]
        if kind is EventKind.CALLBACK_STARTED:
            state.acting = True
        elif kind is EventKind.CALLBACK_STOPPED:
            state.acting = False
        # The elector's details are a fresh dict per event (its keyword arguments): the
        # recorder keeps it, or the one copy that adds the incarnation.
        if kind in _TAGGED:
            details = {**details, "incarnation": state.incarnation}
        self.recorder.record(node, local_time, kind, details)  # type: ignore[arg-type]

    def _call_at(self, when: float, callback: Callable[..., object], *args: Any) -> None:
        self.loop.call_at(when, callback, *args, context=self._context)

    # ------------------------------------------------------------------ nodes

    def _start_node(self, node: str) -> None:
        state = self.nodes.get(node) or self._add_node(node)
        tag, task = state.tag, state.task
        if tag is not None and not tag.crashed:
            if task is not None and not task.done():
                if task.cancelling():
                    # Still stopping after a cancel: come back once it has stopped.
                    task.add_done_callback(
                        lambda _task: self._start_node(node), context=self._context
                    )
                return  # already running (a restart of a live member does nothing)
            # Its election has ended (cancelled, or stopped after a failed renewal): the
            # process exits, and whatever it left behind goes with it.
            self._crash(state)
        state.incarnation += 1
        state.tag = NodeTag(node, state.incarnation)
        state.acting = False
        holder: list[Elector] = []
        config = Config(
            node,
            name=node,
            address=f"{node}:10240",
            storage=self.server.client(node),
            leader_callback=self._make_callback(node, holder),
            **self.scenario.config_for(node),
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SafetyWarning)
            elector = Elector(
                config,
                clock=state.clock,
                observer=self._node_observer,
                rng=self._rng("jitter", node, state.incarnation),
                logger=SIM_LOGGER,
            )
        for warning in caught:
            # One warning per distinct config, not one per member.
            message = re.sub(r" of member '[^']*'", "", str(warning.message))
            if message not in self._safety_warnings:
                self._safety_warnings.append(message)
        holder.append(elector)
        state.elector = elector
        state.task = self.loop.spawn(
            state.tag, elector.run_election(), name=f"{node}#{state.incarnation}"
        )
        state.task.add_done_callback(self._election_ended, context=self._context)

    def _election_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        # A RenewFailedError is the elector stopping as configured (it has traced that);
        # anything else escaping run_election is traced here.
        if error is not None and not isinstance(error, RenewFailedError):
            node = task.get_name().split("#")[0]
            self._env_observer(
                node,
                0.0,
                EventKind.ELECTION_STOPPED,
                {"error": f"{type(error).__name__}: {error}"},
            )

    def _make_callback(self, node: str, holder: list[Elector]) -> Callable[[], Awaitable[None]]:
        spec = self.scenario.callback
        if not isinstance(spec, CallbackSpec):
            return spec
        resource = self.resource
        raises = spec.raise_after_s is not None and (not spec.raise_on or node in spec.raise_on)
        return leader_workload(
            node=node,
            clock=self.nodes[node].clock,
            is_leader=lambda: holder[0].is_leader(),
            write=lambda seq: resource.write(node, seq),
            stop_latency=spec.stop_latency,
            writes_per_s=spec.writes_per_s,
            prepare_s=spec.prepare_s,
            raise_after_s=spec.raise_after_s if raises else None,
        )

    def _targets(self, fault: Fault) -> list[str]:
        target = fault.target
        if isinstance(target, tuple):
            return list(target)
        if target == "all":
            return list(self.nodes)
        if target.startswith("fault:"):
            # The nodes an earlier fault of the schedule hit (e.g. restart what crashed).
            return list(self._resolved.get(int(target.removeprefix("fault:")), []))
        if target == "leader":
            acting = [n for n, s in self.nodes.items() if s.acting and not _down(s)]
            named = self.server.committed_record().leader_id
            if named in acting or (not acting and named in self.nodes):
                return [named]
            return acting[:1]
        return [target]

    # ------------------------------------------------------------------ faults

    def _apply_all(self, indices: list[int]) -> None:
        for index in indices:
            self._apply(index, self.scenario.faults[index])

    def _apply(self, index: int, fault: Fault) -> None:
        targets = self._targets(fault)
        self._resolved[index] = targets
        for node in targets:
            details: dict[str, Scalar] = {"fault": index, "kind": fault.kind}
            details.update({k: v for k, v in fault.params})
            details["target"] = fault.target if isinstance(fault.target, str) else "list"
            self._env_observer(node, 0.0, EventKind.FAULT_START, details)
            self._start_fault(index, node, fault)
            duration = fault.duration
            if duration is not None:
                self._call_at(self.env.now + duration, self._end, index, fault, node)

    def _end(self, index: int, fault: Fault, node: str) -> None:
        self._end_fault(index, node, fault)
        self._env_observer(node, 0.0, EventKind.FAULT_END, {"fault": index, "kind": fault.kind})

    def _start_fault(self, index: int, node: str, fault: Fault) -> None:
        """Start ``fault`` on ``node``: through the storage pipeline, or this world's step."""
        kind = fault.kind
        if FAULT_KINDS[kind].scope == "storage":
            self._require(node, kind)
            self.server.faults(node).start(kind, dict(fault.params))
        else:
            self._starts[kind](index, node, fault)

    def _end_fault(self, index: int, node: str, fault: Fault) -> None:
        """End ``fault`` on ``node`` (kinds that last a duration)."""
        kind = fault.kind
        if FAULT_KINDS[kind].scope == "storage":
            self.server.faults(node).end(kind, dict(fault.params))
        else:
            end = self._ends.get(kind)
            if end is not None:
                end(index, node, fault)

    def _require(self, node: str, kind: str) -> _Node:
        state = self.nodes.get(node)
        if state is None:
            raise ValueError(f"fault {kind!r} targets unknown node {node!r}")
        return state

    def _running_tag(self, node: str, kind: str) -> NodeTag | None:
        tag = self._require(node, kind).tag
        return None if tag is None or tag.crashed else tag

    # One step per kind that is not a storage fault (scope node, clock or membership):
    # ``_starts[kind](index, node, fault)`` and, for kinds that last, ``_ends[kind]``.

    def _fault_start_node(self, index: int, node: str, fault: Fault) -> None:
        self._start_node(node)

    def _fault_crash(self, index: int, node: str, fault: Fault) -> None:
        self._crash(self._require(node, fault.kind))

    def _fault_pause(self, index: int, node: str, fault: Fault) -> None:
        tag = self._running_tag(node, fault.kind)
        if tag is not None:
            # Remembered per fault: its end resumes the incarnation it paused (not a
            # later one), and overlapping pauses are counted by the loop.
            self._paused[(index, node)] = tag
            self.loop.pause(tag)

    def _fault_resume(self, index: int, node: str, fault: Fault) -> None:
        tag = self._paused.pop((index, node), None)
        if tag is not None and not tag.crashed:
            self.loop.resume(tag)

    def _fault_cancel(self, index: int, node: str, fault: Fault) -> None:
        state = self._require(node, fault.kind)
        if state.task is not None:
            state.task.cancel()

    def _fault_resign(self, index: int, node: str, fault: Fault) -> None:
        tag = self._running_tag(node, fault.kind)
        elector = self.nodes[node].elector
        if tag is not None and elector is not None:
            duration = float(fault.get("resign_duration", 0.0))
            self.loop.spawn(tag, _resign_quietly(elector, duration))

    def _fault_drift(self, index: int, node: str, fault: Fault) -> None:
        state = self._require(node, fault.kind)
        state.drifts.append(float(fault.get("ppm")))
        state.clock.set_drift(state.base_drift_ppm + sum(state.drifts))

    def _fault_drift_end(self, index: int, node: str, fault: Fault) -> None:
        state = self.nodes[node]
        state.drifts.remove(float(fault.get("ppm")))
        state.clock.set_drift(state.base_drift_ppm + sum(state.drifts))

    def _fault_step(self, index: int, node: str, fault: Fault) -> None:
        self._require(node, fault.kind).clock.step_wall(float(fault.get("seconds")))

    def _crash(self, state: _Node) -> None:
        """Drop the node's running incarnation for good (nothing if it is down)."""
        tag = state.tag
        if tag is None or tag.crashed:
            return
        self.loop.crash(tag)
        if state.acting:
            state.acting = False
            self._env_observer(
                state.node,
                0.0,
                EventKind.CALLBACK_STOPPED,
                {"reason": "crashed", "error": None, "incarnation": state.incarnation},
            )

    # ------------------------------------------------------------------ run

    def run(self) -> Run:
        """Run the scenario to its duration and return the trace."""
        scenario = self.scenario
        phases = self._rng("start")
        for i, node in enumerate(scenario.nodes):
            # n1 first; the others after the stagger plus a seeded phase, so that seeds
            # vary the phase between members (which overlaps depend on).
            at = (
                0.0 if i == 0 else scenario.start_stagger + phases.uniform(0, scenario.start_jitter)
            )
            self._call_at(at, self._start_node, node)
        # One timer per instant, applying its faults in schedule order: timers due at the
        # same time leave the heap in no guaranteed order, and a 'fault:N' target needs
        # fault N applied first.
        instants: dict[float, list[int]] = {}
        for index, fault in enumerate(scenario.faults):
            instants.setdefault(fault.at, []).append(index)
        for at, indices in instants.items():
            self._call_at(at, self._apply_all, indices)
        # The objects alive before the run (modules, the scenario, the caller's data)
        # are left out of the collector's passes while it runs: a run allocates many
        # short-lived objects, and each full pass would walk all of those old ones again.
        gc.freeze()
        try:
            self.loop.run_until_complete(asyncio.sleep(scenario.duration))
            events = self.recorder.events  # before teardown can add anything
            end_time = float(self.env.now)
        finally:
            for state in self.nodes.values():
                if state.tag is not None:
                    self.loop.crash(state.tag)
            self.loop.close()
            self.server.db.close()
            gc.unfreeze()
        return Run(scenario, self.seed, events, end_time, tuple(self._safety_warnings))


def _down(state: _Node) -> bool:
    return state.tag is None or state.tag.crashed


async def _resign_quietly(elector: Elector, duration: float) -> None:
    try:
        await elector.resign_leader(duration)
    except Exception:  # the trace shows what happened; a failed resign is data
        return
