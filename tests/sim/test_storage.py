"""The simulated storage server: the storage contract, real SQL, and network faults.

Each test runs on a fresh :class:`SimLoop` with a :class:`StorageServer` and a
:class:`SimStorage` client per node. Latency is a constant 10 ms each way unless a test
says otherwise, so simulated times can be asserted exactly.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import unittest
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from leadersim import (
    Member,
    NotLeaderError,
    Record,
    RecordConflictError,
    SQLStorage,
    Storage,
    StorageError,
    StorageUnavailableError,
    TraceRecorder,
)
from leadersim.sim.latency import Latency
from leadersim.sim.loop import SimLoop
from leadersim.sim.storage import ProtectedResource, SimStorage, StorageServer
from leadersim.storage.sqlite import SQLiteStatements
from leadersim.testing import StorageContract

T = TypeVar("T")

ONE_WAY = 0.01
MARKS_TABLE = "contract_marks"


# ---------------------------------------------------------------------------- contract


class SimContract(StorageContract):
    """The contract against clients of one simulated server (inside a running SimLoop)."""

    def __init__(self) -> None:
        self.servers: list[StorageServer] = []

    async def make_storages(self, n: int) -> Sequence[Storage]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SimLoop), "the simulated storage needs a SimLoop"
        server = StorageServer(loop.env, rng=random.Random(len(self.servers)))
        self.servers.append(server)
        return [server.client(f"node-{i}") for i in range(n)]

    async def write_mark(self, connection: Any, mark: str) -> None:
        # fn gets the server's sqlite3 connection; the simulated txn is one instant.
        connection.execute(f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} (mark text NOT NULL)")
        connection.execute(f"INSERT INTO {MARKS_TABLE} (mark) VALUES (?)", (mark,))

    async def read_marks(self, storage: Storage) -> set[str]:
        assert isinstance(storage, SimStorage)
        try:
            rows = storage.server.db.execute(f"SELECT mark FROM {MARKS_TABLE}").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return set()
            raise
        return {row[0] for row in rows}


#: Checks that hold a leader transaction open while something else happens. A simulated
#: leader transaction runs at one instant at the server (fn must not wait), so nothing can
#: interleave with it; what the simulator does instead is tested below
#: (test_leader_txn_whose_fn_waits_is_refused_and_rolled_back).
INSTANT_TXN_CHECKS = {
    "test_cancelling_a_leader_txn_rolls_back_and_keeps_the_storage_usable",
    "test_leader_change_waits_for_an_open_leader_txn",
}
CONTRACT_CHECKS = sorted(name for name in dir(StorageContract) if name.startswith("test_"))


@pytest.mark.parametrize("check", CONTRACT_CHECKS)
def test_simulated_storage_keeps_the_storage_contract(check: str) -> None:
    if check in INSTANT_TXN_CHECKS:
        pytest.skip("a simulated leader transaction is instantaneous: fn cannot wait")
    loop = SimLoop()
    try:
        loop.run_until_complete(getattr(SimContract(), check)())
    except unittest.SkipTest as skip:
        pytest.fail(f"the simulated storage skipped contract check {check}: {skip}")
    finally:
        loop.close()


# ---------------------------------------------------------------------------- harness


class Net:
    """A SimLoop, a storage server with constant latency, and the server's trace."""

    def __init__(self, latency: Latency | None = None, **server: Any) -> None:
        self.loop = SimLoop()
        self.trace = TraceRecorder(true_clock=lambda: self.loop.env.now)
        self.server = StorageServer(
            self.loop.env,
            latency=latency or Latency("constant", value_s=ONE_WAY),
            rng=random.Random(0),
            observer=self.trace,
            **server,
        )

    def client(self, node: str) -> SimStorage:
        return self.server.client(node)

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.loop.run_until_complete(main())

    def now(self) -> float:
        return self.loop.time()

    def ops(self, node: str | None = None) -> list[dict[str, Any]]:
        """The storage_op events' details (plus their true time as ``at``)."""
        return [
            {**e.details, "at": e.true_time, "node": e.node}
            for e in self.trace.events
            if e.kind == "storage_op" and (node is None or e.node == node)
        ]

    def close(self) -> None:
        self.loop.close()
        self.server.db.close()


@pytest.fixture
def net() -> Iterator[Net]:
    network = Net()
    try:
        yield network
    finally:
        network.close()


def member(node: str, second: int = 0) -> Member:
    return Member(node, node, f"{node}:1", 10.0, datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC))


def led_by(node: str, version: int = 0, second: int = 0) -> Record:
    return Record(node, [member(node, second)], version)


async def expect_no_answer(call: Coroutine[Any, Any, Any], within: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(within):
            await call


# ---------------------------------------------------------------------------- same SQL


def test_server_runs_the_same_sql_as_sqlstorage_and_stores_the_same_bytes() -> None:
    """The same operations through SQLStorage (aiosqlite) and the simulated server."""
    script = [
        ("get", None),
        ("update", led_by("n1", 0, 1)),
        ("get", None),
        ("update", led_by("n2", 1, 2)),
        ("update", led_by("n3", 1, 3)),  # stale: a conflict in both
        ("get", None),
    ]

    async def play(storage: Storage) -> list[object]:
        outcomes: list[object] = []
        for _op, record in script:
            try:
                if record is None:
                    read = await storage.get()
                    outcomes.append((read.version, read.leader_id))
                else:
                    await storage.update(record, True)
                    outcomes.append("ok")
            except RecordConflictError:
                outcomes.append("conflict")
        return outcomes

    async def real() -> tuple[list[object], list[str], list[tuple[object, ...]]]:
        storage = await SQLStorage.in_memory(f"same-sql-{uuid.uuid4().hex}")
        statements: list[str] = []
        try:
            await storage.connection.set_trace_callback(statements.append)
            outcomes = await play(storage)
            await storage.connection.set_trace_callback(None)
            rows = await storage.connection.execute_fetchall(
                "SELECT id, version, record FROM election"
            )
            schema = await storage.connection.execute_fetchall(
                "SELECT sql FROM sqlite_master WHERE name = 'election'"
            )
        finally:
            await storage.close()
        return outcomes, statements, [*map(tuple, rows), *map(tuple, schema)]

    real_outcomes, real_sql, real_rows = asyncio.run(real())

    network = Net()
    try:
        sim_sql: list[str] = []
        network.server.db.set_trace_callback(sim_sql.append)
        sim_outcomes = network.run(lambda: play(network.client("n1")))
        network.server.db.set_trace_callback(None)
        db = network.server.db
        sim_rows = [
            *db.execute("SELECT id, version, record FROM election").fetchall(),
            *db.execute("SELECT sql FROM sqlite_master WHERE name = 'election'").fetchall(),
        ]
    finally:
        network.close()

    assert real_outcomes == [(0, ""), "ok", (1, "n1"), "ok", "conflict", (2, "n2")]
    assert sim_outcomes == real_outcomes
    # sqlite3 traces each statement with its bound values: the same text, byte for byte.
    assert sim_sql == real_sql
    statements = SQLiteStatements.for_table("election")
    assert [s.split(" ", 1)[0] for s in sim_sql] == [
        "SELECT",
        "INSERT",
        "SELECT",
        "UPDATE",
        "UPDATE",
        "SELECT",
    ]
    assert sim_sql[0] == statements.select
    assert sim_sql[1].startswith(statements.insert.removesuffix("?)"))
    assert sim_rows == real_rows


# ---------------------------------------------------------------------------- latency


def test_each_operation_takes_one_latency_each_way_and_is_traced_once(net: Net) -> None:
    async def main() -> tuple[Record, float]:
        read = await net.client("n1").get()
        return read, net.now()

    read, at = net.run(main)
    assert (read.version, at) == (0, pytest.approx(2 * ONE_WAY))
    assert net.ops() == [
        {
            "op": "get",
            "outcome": "ok",
            "seen": "ok",
            "sent_at": 0,
            "arrived_at": pytest.approx(ONE_WAY),
            "replied_at": pytest.approx(2 * ONE_WAY),
            "leader_id": None,
            "version": None,
            "at": pytest.approx(2 * ONE_WAY),
            "node": "n1",
        }
    ]


def test_latency_can_be_set_per_node_and_per_operation() -> None:
    network = Net(
        latency_by_node={"slow-node": Latency("constant", value_s=0.5)},
        latency_by_op={"update": Latency("constant", value_s=0.1)},
    )
    try:
        times: dict[str, float] = {}

        async def timed(name: str, call: Coroutine[Any, Any, Any]) -> None:
            started = network.now()
            await call
            times[name] = network.now() - started

        async def main() -> None:
            await timed("get", network.client("n1").get())
            await timed("update", network.client("n1").update(led_by("n1"), True))
            await timed("slow-node get", network.client("slow-node").get())

        network.run(main)
    finally:
        network.close()
    assert times == pytest.approx({"get": 0.02, "update": 0.2, "slow-node get": 1.0})


# ---------------------------------------------------------------------------- cuts


def test_cut_request_loses_the_request_the_record_stays_and_others_are_served(
    net: Net,
) -> None:
    net.server.start_cut("n1", "request")

    async def main() -> Record:
        await expect_no_answer(net.client("n1").update(led_by("n1"), True))
        await net.client("n2").update(led_by("n2"), True)
        return await net.client("n2").get()

    assert net.run(main).leader_id == "n2"
    (lost,) = net.ops("n1")
    assert (lost["op"], lost["outcome"], lost["seen"], lost["arrived_at"]) == (
        "update",
        "dropped",
        "no_reply",
        None,
    )


def test_cut_reply_executes_the_request_but_loses_the_answer(net: Net) -> None:
    net.server.start_cut("n1", "reply")

    async def main() -> None:
        await expect_no_answer(net.client("n1").update(led_by("n1"), True))

    net.run(main)
    committed = net.server.committed_record()
    assert (committed.version, committed.leader_id) == (1, "n1")
    (op,) = net.ops("n1")
    assert (op["outcome"], op["seen"], op["replied_at"]) == ("ok", "no_reply", None)
    assert op["arrived_at"] == pytest.approx(ONE_WAY)


def test_cut_both_loses_new_requests_and_replies_already_under_way(net: Net) -> None:
    async def main() -> None:
        in_flight = asyncio.ensure_future(net.client("n1").get())
        await asyncio.sleep(ONE_WAY * 1.5)  # the request has arrived, the reply not yet
        net.server.start_cut("n1", "both")
        await expect_no_answer(in_flight)
        await expect_no_answer(net.client("n1").get())

    net.run(main)
    assert [(op["outcome"], op["seen"]) for op in net.ops("n1")] == [
        ("ok", "no_reply"),
        ("dropped", "no_reply"),
    ]


def test_cut_writes_answers_reads_and_refuses_writes_with_a_storage_error(net: Net) -> None:
    async def main() -> Record:
        await net.client("n2").update(led_by("n2"), True)
        net.server.start_cut("n1", "writes")
        read = await net.client("n1").get()
        with pytest.raises(StorageError, match="writes are cut"):
            await net.client("n1").update(led_by("n1", read.version), True)
        with pytest.raises(StorageError, match="writes are cut"):
            await net.client("n1").txn_with_leader_lock("n2", _returns_true)
        return read

    assert net.run(main).leader_id == "n2"
    assert net.server.committed_record().leader_id == "n2"
    assert [(op["op"], op["outcome"], op["seen"]) for op in net.ops("n1")] == [
        ("get", "ok", "ok"),
        ("update", "error", "error"),
        ("txn", "error", "error"),
    ]


def test_a_healed_cut_serves_the_node_again(net: Net) -> None:
    async def main() -> Record:
        net.server.start_cut("n1", "request")
        net.server.start_cut("n1", "request")  # two overlapping cuts
        net.server.end_cut("n1", "request")
        await expect_no_answer(net.client("n1").get())
        net.server.end_cut("n1", "request")
        await net.client("n1").update(led_by("n1"), True)
        return await net.client("n1").get()

    assert net.run(main).leader_id == "n1"


def test_unknown_cut_mode_is_refused_naming_the_modes(net: Net) -> None:
    with pytest.raises(ValueError, match="request, reply, both, writes"):
        net.server.start_cut("n1", "sideways")


# ---------------------------------------------------------------------------- slow, errors


def test_slow_adds_half_its_latency_in_each_direction(net: Net) -> None:
    net.server.faults("n1").start("slow", {"latency_s": 1.0, "duration": 10})

    async def main() -> float:
        await net.client("n1").get()
        return net.now()

    assert net.run(main) == pytest.approx(1.0 + 2 * ONE_WAY)
    (op,) = net.ops("n1")
    assert op["arrived_at"] == pytest.approx(0.5 + ONE_WAY)


def test_error_after_fails_every_operation_after_that_delay_without_executing_it(
    net: Net,
) -> None:
    net.server.faults("n1").start("error", {"after_s": 2.0, "duration": 10})

    async def main() -> list[float]:
        failed_at = []
        for call in (net.client("n1").get(), net.client("n1").update(led_by("n1"), True)):
            with pytest.raises(
                StorageError,
                match=r"storage error for node 'n1': (get|update) failed after 2 s",
            ):
                await call
            failed_at.append(net.now())
        return failed_at

    assert net.run(main) == pytest.approx([2.0, 4.0])
    assert net.server.committed_record().version == 0
    assert [(op["outcome"], op["seen"], op["arrived_at"]) for op in net.ops("n1")] == [
        ("error", "error", None),
        ("error", "error", None),
    ]


def test_busy_injection_fails_operations_as_an_unavailable_database(net: Net) -> None:
    net.server.faults("n1").start("busy", {"rate": 1.0, "duration": 10})

    async def main() -> None:
        with pytest.raises(StorageUnavailableError, match="busy"):
            await net.client("n1").get()
        with pytest.raises(StorageUnavailableError, match="busy"):
            await net.client("n1").update(led_by("n1"), True)
        await net.client("n2").update(led_by("n2"), True)  # other nodes are served

    net.run(main)
    assert net.server.committed_record().leader_id == "n2"


def test_conflict_injection_refuses_writes_at_the_right_version_but_not_reads(
    net: Net,
) -> None:
    net.server.faults("n1").start("conflicts", {"rate": 1.0, "duration": 10})

    async def main() -> Record:
        read = await net.client("n1").get()
        with pytest.raises(RecordConflictError, match="injected version conflict"):
            await net.client("n1").update(led_by("n1", read.version), True)
        return read

    assert net.run(main).version == 0
    assert net.server.committed_record().version == 0
    assert [(op["op"], op["outcome"], op["seen"]) for op in net.ops("n1")] == [
        ("get", "ok", "ok"),
        ("update", "conflict", "conflict"),
    ]


def test_conflict_injection_at_a_rate_hits_about_that_share_of_writes() -> None:
    network = Net()
    network.server.faults("n1").start("conflicts", {"rate": 0.3, "duration": 10})
    try:

        async def main() -> int:
            conflicts = 0
            client = network.client("n1")
            for _ in range(400):
                read = await client.get()
                try:
                    await client.update(led_by("n1", read.version), True)
                except RecordConflictError:
                    conflicts += 1
            return conflicts

        conflicts = network.run(main)
    finally:
        network.close()
    assert 80 <= conflicts <= 160  # 30 % of 400, seeded: about 120


# ---------------------------------------------------------------------------- ambiguous


def test_ambiguous_update_commits_but_its_reply_is_lost(net: Net) -> None:
    net.server.faults("n1").start("ambiguous", {})

    async def main() -> None:
        client = net.client("n1")
        await expect_no_answer(client.update(led_by("n1"), True))
        # One-shot: the node's next update is answered normally.
        read = await client.get()
        await client.update(led_by("n1", read.version, 5), True)

    net.run(main)
    updates = [op for op in net.ops("n1") if op["op"] == "update"]
    # The trace keeps the truth (committed) beside what the client saw (nothing).
    assert [(op["outcome"], op["seen"], op["version"]) for op in updates] == [
        ("ok", "no_reply", 1),
        ("ok", "ok", 2),
    ]
    assert net.server.committed_record().version == 2


def test_ambiguous_update_whose_late_reply_comes_after_the_client_gave_up(net: Net) -> None:
    net.server.faults("n1").start("ambiguous", {"delay_s": 3.0})

    async def main() -> None:
        await expect_no_answer(net.client("n1").update(led_by("n1"), True), within=1.0)
        await asyncio.sleep(5)

    net.run(main)
    (op,) = net.ops("n1")
    assert (op["outcome"], op["seen"]) == ("ok", "timeout")
    assert op["replied_at"] == pytest.approx(3.0 + 2 * ONE_WAY)
    committed = net.server.committed_record()
    assert (committed.version, committed.leader_id) == (1, "n1")


def test_ambiguous_update_with_a_late_reply_is_seen_ok_by_a_patient_client(net: Net) -> None:
    net.server.faults("n1").start("ambiguous", {"delay_s": 3.0})

    async def main() -> float:
        await net.client("n1").update(led_by("n1"), True)
        return net.now()

    assert net.run(main) == pytest.approx(3.0 + 2 * ONE_WAY)
    (op,) = net.ops("n1")
    assert (op["outcome"], op["seen"]) == ("ok", "ok")


def test_ambiguous_outcome_applies_to_updates_only(net: Net) -> None:
    net.server.faults("n1").start("ambiguous", {})

    async def main() -> None:
        client = net.client("n1")
        await client.get()
        with pytest.raises(NotLeaderError):
            await client.txn_with_leader_lock("n1", _returns_true)
        await expect_no_answer(client.update(led_by("n1"), True))

    net.run(main)
    assert [(op["op"], op["seen"]) for op in net.ops("n1")] == [
        ("get", "ok"),
        ("txn", "error"),
        ("update", "no_reply"),
    ]


# ---------------------------------------------------------------------------- leader txn


def test_leader_txn_whose_fn_waits_is_refused_and_rolled_back(net: Net) -> None:
    async def waits(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS marks (mark text)")
        connection.execute("INSERT INTO marks VALUES ('before the wait')")
        await asyncio.sleep(1)

    async def main() -> bool:
        client = net.client("n1")
        await client.update(led_by("n1"), True)
        with pytest.raises(StorageError, match="must not wait"):
            await client.txn_with_leader_lock("n1", waits)
        return await client.txn_with_leader_lock("n1", _returns_true)

    assert net.run(main) is True
    tables = net.server.db.execute("SELECT name FROM sqlite_master WHERE name = 'marks'")
    assert tables.fetchall() == []  # the whole transaction was rolled back


def test_leader_txn_is_checked_against_the_record_when_it_arrives(net: Net) -> None:
    async def main() -> list[str]:
        outcomes = []
        await net.client("n1").update(led_by("n1"), True)
        # n1's txn is sent, then n2 takes the slot with a faster path to the server.
        net.server.latency_by_node["n1"] = Latency("constant", value_s=0.1)
        txn = asyncio.ensure_future(net.client("n1").txn_with_leader_lock("n1", _returns_true))
        await net.client("n2").update(led_by("n2", 1), True)
        try:
            await txn
            outcomes.append("committed")
        except NotLeaderError as exc:
            outcomes.append(str(exc))
        return outcomes

    assert net.run(main) == ["n1 is not leader"]


# ---------------------------------------------------------------------------- resource


@pytest.mark.parametrize("fencing", [False, True])
def test_protected_resource_flags_stale_writes_and_fencing_rejects_them(fencing: bool) -> None:
    network = Net()
    resource = ProtectedResource(network.server, observer=network.trace, fencing=fencing)
    try:

        async def main() -> list[bool]:
            await network.client("n1").update(led_by("n1"), True)
            return [await resource.write("n1", 1), await resource.write("n2", 1)]

        accepted = network.run(main)
    finally:
        network.close()
    assert accepted == [True, not fencing]
    writes = [e for e in network.trace.events if e.kind == "guarded_write"]
    assert [(e.node, e.details["stale"], e.details["accepted"]) for e in writes] == [
        ("n1", False, True),
        ("n2", True, not fencing),
    ]
    assert all(e.details["leader_id"] == "n1" for e in writes)


async def _returns_true(connection: object) -> bool:
    return True
