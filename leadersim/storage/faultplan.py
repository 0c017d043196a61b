"""The storage-fault pipeline both worlds share: what a storage fault does, decided here.

The simulated storage server (:class:`leadersim.sim.storage.StorageServer`) and the real
fault wrapper (:class:`~leadersim.storage.FaultyStorage`) inflict the storage-scope
fault kinds of :data:`~leadersim.faults.FAULT_KINDS` through this module. It holds no
clock and waits for nothing: it keeps each member's composed fault state
(:class:`StorageFaults`) and decides, step by step, what happens to one operation; each
world then carries the decision out with its own clock (SimPy events in the simulator,
``asyncio`` sleeps for real) and adds its own network latency (sampled in the simulator,
the real one for real).

Composition of overlapping faults of one kind on one member:

- ``cut``: counted per mode; a mode heals when its last cut ends.
- ``slow``: the active ``latency_s`` add up.
- ``error``: with several active, the smallest ``after_s`` applies.
- ``ambiguous``: each one arms a one-shot, used by the next committed updates in order.
- ``conflicts``, ``busy``, ``loss``: independent chances, ``1 - prod(1 - rate)``.

One operation, step by step (every world, in this order)::

    send      error fault active  -> fails after after_s (never reaches the storage)
              request cut (request/both) -> the request is lost
              loss (chance)       -> the request is lost
              otherwise           -> travels, plus slow/2
    arrival   a write while writes are cut -> refused (StorageError)
              busy (chance)       -> refused (StorageUnavailableError)
              a write, conflicts (chance) -> refused (RecordConflictError)
              otherwise           -> executed by the storage
    executed  a committed update with an ambiguous fault armed -> its reply comes
              delay_s late, or is lost (delay_s None)
    reply     travels back, plus slow/2; a reply cut (reply/both) -> the reply is lost
    delivery  the caller has given up -> nothing to deliver

Random draws (loss, busy, conflicts) are made only when the fault is active, in this order,
from the world's random source: a run without such faults draws nothing here.

Each finished operation is one ``storage_op`` trace event (:meth:`OpRecord.details`, the
same keys in both worlds). ``outcome`` is the truth at the storage: ``ok``, ``conflict``,
``error``, or ``dropped`` (it never got there). ``seen`` is what the caller saw:

- ``ok``, ``conflict``, ``error``: the reply reached the waiting caller;
- ``no_reply``: the request or the reply was lost (the caller waits until its own
  deadline gives up; the event is traced when the loss happens);
- ``timeout``: the caller gave up before the reply reached it (the reply came later; for
  a real leader transaction, which is not finished without its caller, the caller's
  cancel rolled it back).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from leadersim.errors import RecordConflictError, StorageError, StorageUnavailableError
from leadersim.faults import CUT_MODES, FAULT_KINDS
from leadersim.trace import Scalar

__all__ = [
    "SEEN",
    "STORAGE_KINDS",
    "Arrival",
    "OpRecord",
    "Send",
    "StorageFaults",
    "refusal",
]

#: The fault kinds this pipeline executes (those of scope ``storage``), in table order.
STORAGE_KINDS: Final = tuple(name for name, row in FAULT_KINDS.items() if row.scope == "storage")
#: What a caller can see of one operation (the ``seen`` of a ``storage_op`` event).
SEEN: Final = ("ok", "conflict", "error", "no_reply", "timeout")

#: What happens to a request as it is sent.
Send = Literal["error", "lost", "go"]
#: What happens to a request when it reaches the storage.
Arrival = Literal["writes_cut", "busy", "conflict", "execute"]


@dataclasses.dataclass(slots=True)
class OpRecord:
    """One storage operation's trace row, filled in as it goes through the pipeline.

    Attributes:
        node: Id of the member that sent it.
        op: ``get``, ``update`` or ``txn``.
        sent_at: True time it was sent, seconds.
        outcome: The truth at the storage (``ok``, ``conflict``, ``error``, ``dropped``).
        seen: What the caller saw (one of :data:`SEEN`; ``pending`` until traced).
        arrived_at: True time it reached the storage (``None``: it never did).
        replied_at: True time the reply reached the caller's side (``None``: never).
        leader_id: Leader of a committed update.
        version: Version a committed update wrote.
    """

    node: str
    op: str
    sent_at: float
    outcome: str = "dropped"
    seen: str = "pending"
    arrived_at: float | None = None
    replied_at: float | None = None
    leader_id: str | None = None
    version: int | None = None

    def details(self) -> dict[str, Scalar]:
        """The ``storage_op`` event's details (identical keys in both worlds)."""
        return {
            "op": self.op,
            "outcome": self.outcome,
            "seen": self.seen,
            "sent_at": self.sent_at,
            "arrived_at": self.arrived_at,
            "replied_at": self.replied_at,
            "leader_id": self.leader_id,
            "version": self.version,
        }


def _composed(rates: list[float]) -> float:
    """The chance that at least one of independent chances ``rates`` happens."""
    if not rates:
        return 0.0
    if len(rates) == 1:
        return rates[0]  # exactly: 1 - (1 - r) is not always r in floating point
    return 1.0 - math.prod(1.0 - r for r in rates)


@dataclasses.dataclass(slots=True)
class StorageFaults:
    """One member's storage faults, composed (see the module docstring).

    Start and end faults with :meth:`start` and :meth:`end`; the per-operation decisions
    (:meth:`on_send`, :meth:`on_arrival`, :meth:`reply_delay`, :meth:`reply_lost`) read
    the composed state.

    Attributes:
        cut: Active cuts per mode (a mode is cut while its count is above 0).
        ambiguous: Armed one-shots, in order: a delay in seconds, or ``None`` (lost).
    """

    cut: dict[str, int] = dataclasses.field(default_factory=dict)
    ambiguous: deque[float | None] = dataclasses.field(default_factory=deque)
    _slow: list[float] = dataclasses.field(default_factory=list, init=False)
    _errors: list[float] = dataclasses.field(default_factory=list, init=False)
    _conflicts: list[float] = dataclasses.field(default_factory=list, init=False)
    _busy: list[float] = dataclasses.field(default_factory=list, init=False)
    _loss: list[float] = dataclasses.field(default_factory=list, init=False)
    # The composed values, kept up to date by the executors (read once per operation).
    _slow_s: float = dataclasses.field(default=0.0, init=False)
    _conflict_rate: float = dataclasses.field(default=0.0, init=False)
    _busy_rate: float = dataclasses.field(default=0.0, init=False)
    _loss_rate: float = dataclasses.field(default=0.0, init=False)

    # ------------------------------------------------------------------ state

    @property
    def slow_s(self) -> float:
        """Seconds of extra latency per operation (the active ``slow`` faults' sum)."""
        return self._slow_s

    @property
    def conflict_rate(self) -> float:
        """Chance that a write is refused as a conflict (the active faults composed)."""
        return self._conflict_rate

    @property
    def busy_rate(self) -> float:
        """Chance that an operation is refused as busy (the active faults composed)."""
        return self._busy_rate

    @property
    def loss_rate(self) -> float:
        """Chance that a request is lost (the active ``loss`` faults composed)."""
        return self._loss_rate

    @property
    def error_after_s(self) -> float | None:
        """Seconds after which each operation fails (the smallest active), or ``None``."""
        return min(self._errors) if self._errors else None

    @error_after_s.setter
    def error_after_s(self, value: float | None) -> None:
        # A direct setting (a test harness closing a connection) replaces every
        # active error fault.
        self._errors = [] if value is None else [float(value)]

    def is_cut(self, *modes: str) -> bool:
        """Whether any of ``modes`` is cut now."""
        cut = self.cut
        if not cut:  # the common case: never cut
            return False
        return any(cut.get(mode, 0) > 0 for mode in modes)

    def start(self, kind: str, params: Mapping[str, Any]) -> None:
        """Start one fault of storage-scope ``kind`` with its (checked) parameters.

        Raises:
            ValueError: ``kind`` is not a storage fault kind.
        """
        _executor(kind)[0](self, params)

    def end(self, kind: str, params: Mapping[str, Any]) -> None:
        """End one fault started by :meth:`start` with the same kind and parameters.

        Raises:
            ValueError: ``kind`` is not a storage fault kind.
        """
        _executor(kind)[1](self, params)

    # ------------------------------------------------------------------ decisions

    def on_send(self, rng: random.Random) -> Send:
        """What happens to a request as it is sent.

        Args:
            rng: The world's random source (drawn from only while ``loss`` acts).

        Returns:
            ``error``: it fails after :attr:`error_after_s` without reaching the storage;
            ``lost``: requests are cut, or a ``loss`` fault lost it; ``go``: it travels
            (plus :meth:`leg_delay`).
        """
        if self._errors:
            return "error"
        if self.is_cut("request", "both"):
            return "lost"
        if self._loss_rate and rng.random() < self._loss_rate:
            return "lost"
        return "go"

    def leg_delay(self) -> float:
        """Seconds a ``slow`` fault adds to one way (request or reply): half its total."""
        return self._slow_s / 2

    def on_arrival(self, write: bool, rng: random.Random) -> Arrival:
        """What happens to a request when it reaches the storage.

        Args:
            write: Whether it is a write (``update``, ``txn``).
            rng: The world's random source (drawn from only while busy/conflicts act).
        """
        if write and self.is_cut("writes"):
            return "writes_cut"
        if self.busy_rate and rng.random() < self.busy_rate:
            return "busy"
        if write and self.conflict_rate and rng.random() < self.conflict_rate:
            return "conflict"
        return "execute"

    def reply_delay(self, op: str, outcome: str) -> float | None:
        """Extra seconds before an executed operation's reply leaves; ``None``: it is lost.

        A committed ``update`` uses the next armed ``ambiguous`` one-shot.
        """
        if op == "update" and outcome == "ok" and self.ambiguous:
            return self.ambiguous.popleft()
        return 0.0

    def reply_lost(self) -> bool:
        """Whether a reply leaving the storage now is lost (replies are cut)."""
        return self.is_cut("reply", "both")


def refusal(decision: str, node: str, op: str, after_s: float | None = None) -> Exception:
    """The error a caller gets for an injected refusal, worded alike in both worlds.

    Args:
        decision: ``error`` (an error fault), ``writes_cut``, ``busy`` or ``conflict``.
        node: The member's id (may be empty).
        op: The operation.
        after_s: For ``error``: the seconds it failed after.
    """
    who = f"node {node!r}" if node else "an unnamed member"
    if decision == "error":
        return StorageError(
            f"injected storage error for {who}: {op} failed after {after_s or 0:g} s "
            "(an 'error' fault is active)"
        )
    if decision == "writes_cut":
        return StorageError(
            f"injected fault for {who}: writes are cut; {op} refused without reaching the storage"
        )
    if decision == "busy":
        return StorageUnavailableError(f"injected busy database for {who} ({op})")
    if decision == "conflict":
        return RecordConflictError(f"injected version conflict for {who} ({op})")
    raise ValueError(f"unknown refusal {decision!r}; allowed: error, writes_cut, busy, conflict")


# ---------------------------------------------------------------------- executors

_Step = Callable[[StorageFaults, Mapping[str, Any]], None]


def _start_cut(state: StorageFaults, params: Mapping[str, Any]) -> None:
    mode = params.get("mode", "request")
    if mode not in CUT_MODES:
        raise ValueError(f"unknown cut mode {mode!r}; allowed: {', '.join(CUT_MODES)}")
    state.cut[mode] = state.cut.get(mode, 0) + 1


def _end_cut(state: StorageFaults, params: Mapping[str, Any]) -> None:
    mode = params.get("mode", "request")
    state.cut[mode] = max(0, state.cut.get(mode, 0) - 1)


def _remove(values: list[float], value: float) -> None:
    if value in values:
        values.remove(value)


def _start_slow(state: StorageFaults, params: Mapping[str, Any]) -> None:
    state._slow.append(float(params["latency_s"]))
    state._slow_s = sum(state._slow)


def _end_slow(state: StorageFaults, params: Mapping[str, Any]) -> None:
    _remove(state._slow, float(params["latency_s"]))
    state._slow_s = sum(state._slow)


def _start_error(state: StorageFaults, params: Mapping[str, Any]) -> None:
    state._errors.append(float(params["after_s"]))


def _end_error(state: StorageFaults, params: Mapping[str, Any]) -> None:
    _remove(state._errors, float(params["after_s"]))


def _start_ambiguous(state: StorageFaults, params: Mapping[str, Any]) -> None:
    delay = params.get("delay_s")
    state.ambiguous.append(None if delay is None else float(delay))


def _nothing(state: StorageFaults, params: Mapping[str, Any]) -> None:
    """An instant fault has nothing to undo (an armed ambiguous one-shot stays armed)."""


def _rate_steps(rates: str, composed: str) -> tuple[_Step, _Step]:
    """Start and end of a fault that acts by chance (``conflicts``, ``busy``, ``loss``).

    ``rates`` names the state's list of active rates, ``composed`` the probability the
    pipeline reads: the active rates compose as 1 - prod(1 - r).
    """

    def start(state: StorageFaults, params: Mapping[str, Any]) -> None:
        active = getattr(state, rates)
        active.append(float(params["rate"]))
        setattr(state, composed, _composed(active))

    def end(state: StorageFaults, params: Mapping[str, Any]) -> None:
        active = getattr(state, rates)
        _remove(active, float(params["rate"]))
        setattr(state, composed, _composed(active))

    return start, end


#: For each storage fault kind: how to start it and how to end it.
_EXECUTORS: Final[dict[str, tuple[_Step, _Step]]] = {
    "cut": (_start_cut, _end_cut),
    "slow": (_start_slow, _end_slow),
    "error": (_start_error, _end_error),
    "ambiguous": (_start_ambiguous, _nothing),
    "conflicts": _rate_steps("_conflicts", "_conflict_rate"),
    "busy": _rate_steps("_busy", "_busy_rate"),
    "loss": _rate_steps("_loss", "_loss_rate"),
}


def _executor(kind: str) -> tuple[_Step, _Step]:
    steps = _EXECUTORS.get(kind)
    if steps is None:
        raise ValueError(f"{kind!r} is not a storage fault kind; allowed: {list(STORAGE_KINDS)}")
    return steps
