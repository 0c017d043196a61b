"""One storage-fault pipeline, two worlds: the same faults give the same trace.

The same script of storage faults and operations runs against the simulated server (a
SimLoop, simulated seconds) and against FaultyStorage over a real SQLite file (real
seconds, short). Both trace through ``leadersim.storage.faultplan``, so each operation
must come out with the same ``outcome`` (truth at the storage), the same ``seen`` (what
the caller saw), the same details keys, and the same instants known or unknown.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from leadersim import (
    EventKind,
    RecordConflictError,
    SQLStorage,
    Storage,
    StorageError,
    TraceRecorder,
)
from leadersim.faults import FAULT_KINDS
from leadersim.sim.latency import Latency
from leadersim.sim.loop import SimLoop
from leadersim.sim.storage import StorageServer
from leadersim.storage import FaultyStorage
from leadersim.storage.faultplan import STORAGE_KINDS
from leadersim.testing import sample_record

#: How long the script's caller waits for an answer before giving up (seconds; real
#: seconds in the real world: far above one SQLite statement plus the slow fault's 0.1 s).
GIVE_UP = 0.4
#: An ambiguous reply later than GIVE_UP: the caller has gone when it comes.
LATE = 0.8

Start = Callable[[int, str, dict[str, Any]], None]
End = Callable[[int], None]
Version = Callable[[], Awaitable[int]]


async def script(storage: Storage, start: Start, end: End, stored_version: Version) -> list[str]:
    """Faults of every storage kind, one after the other; returns what the caller saw.

    ``stored_version`` reads the stored version around the faults (an update whose reply
    was lost has committed), so both worlds write at the same version.
    """
    seen: list[str] = []

    async def call(op: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(GIVE_UP):
                await op
            seen.append("answer")
        except TimeoutError:
            seen.append("gave up")
        except RecordConflictError:
            seen.append("conflict")
        except StorageError:
            seen.append("error")

    await storage.update(sample_record("n1"), True)
    for index, (kind, params, ops) in enumerate(
        [
            ("cut", {"mode": "request"}, ["get"]),
            ("cut", {"mode": "reply"}, ["update"]),
            ("cut", {"mode": "writes"}, ["update", "get"]),
            ("error", {"after_s": 0.0}, ["get"]),
            ("busy", {"rate": 1.0}, ["get"]),
            ("conflicts", {"rate": 1.0}, ["update", "get"]),
            ("slow", {"latency_s": 0.1}, ["get"]),
            ("ambiguous", {}, ["update"]),
            ("ambiguous", {"delay_s": LATE}, ["update"]),
        ]
    ):
        start(index, kind, params)
        for op in ops:
            if op == "get":
                await call(storage.get())
            else:
                record = sample_record("n1", version=await stored_version())
                await call(storage.update(record, True))
        end(index)
    await asyncio.sleep(LATE)  # the late reply comes after its caller has gone
    return seen


def ops_of(trace: TraceRecorder) -> list[dict[str, Any]]:
    return [dict(e.details) for e in trace.of_kind(EventKind.STORAGE_OP)]


def shape(op: dict[str, Any]) -> tuple[Any, ...]:
    return (
        op["op"],
        op["outcome"],
        op["seen"],
        op["arrived_at"] is None,
        op["replied_at"] is None,
        op["version"],
    )


def run_simulated() -> tuple[list[str], list[dict[str, Any]]]:
    loop = SimLoop()
    trace = TraceRecorder(true_clock=lambda: loop.env.now)
    server = StorageServer(
        loop.env,
        latency=Latency("constant", value_s=0.001),
        rng=random.Random(0),
        observer=trace,
    )
    client = server.client("n1")
    active: dict[int, tuple[str, dict[str, Any]]] = {}

    def start(index: int, kind: str, params: dict[str, Any]) -> None:
        server.faults("n1").start(kind, params)
        if FAULT_KINDS[kind].ends == "duration":
            active[index] = (kind, params)

    def end(index: int) -> None:
        if index in active:
            server.faults("n1").end(*active.pop(index))

    async def stored_version() -> int:
        return server.committed_record().version

    try:
        seen = loop.run_until_complete(script(client, start, end, stored_version))
    finally:
        loop.close()
        server.db.close()
    return seen, ops_of(trace)


async def run_real(tmp_path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    trace = TraceRecorder()
    faulty = FaultyStorage(
        await SQLStorage.open(tmp_path / "parity.db"),
        node="n1",
        observer=trace,
        rng=random.Random(0),
    )
    plain = await SQLStorage.open(tmp_path / "parity.db")
    try:

        async def stored_version() -> int:
            return (await plain.get()).version

        def start(index: int, kind: str, params: dict[str, Any]) -> None:
            faulty.start_fault(index, kind, params)

        seen = await script(faulty, start, faulty.end_fault, stored_version)
    finally:
        await plain.close()
        await faulty.close()
    return seen, ops_of(trace)


async def test_the_same_storage_faults_trace_alike_in_both_worlds(tmp_path: Path) -> None:
    real_seen, real_ops = await run_real(tmp_path)
    # The simulator runs its own loop: in a thread of its own, beside the test's loop.
    sim_seen, sim_ops = await asyncio.to_thread(run_simulated)

    assert real_seen == sim_seen
    assert [shape(op) for op in real_ops] == [shape(op) for op in sim_ops]
    assert all(op.keys() == sim_ops[0].keys() for op in real_ops + sim_ops)
    # Every storage kind was exercised, and every seen of the vocabulary came out.
    assert set(STORAGE_KINDS) == {"cut", "error", "busy", "conflicts", "slow", "ambiguous"}
    assert {op["seen"] for op in sim_ops} == {"ok", "error", "conflict", "no_reply", "timeout"}
    assert sim_seen == [
        "gave up",  # request cut: lost
        "gave up",  # reply cut: committed, reply lost
        "error",  # writes cut
        "answer",  # reads still work
        "error",  # error fault
        "error",  # busy
        "conflict",  # conflicts
        "answer",  # reads are not conflicted
        "answer",  # slow, within the caller's patience
        "gave up",  # ambiguous: reply lost
        "gave up",  # ambiguous, late: the reply comes after the caller has gone
    ]
