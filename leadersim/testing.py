"""A reusable conformance suite for election storages.

Every back-end — :class:`~leadersim.SQLStorage`, the ORM storage, the simulator's storage
or a user's own — must keep the contract written on :class:`~leadersim.Storage` (and, if
it offers fencing, on :class:`~leadersim.LeaderLockStorage`). :class:`StorageContract`
checks that contract against a real back-end: subclass it, say how to open storages that
share one record, and a test runner collects the checks::

    import uuid

    from leadersim import SQLStorage
    from leadersim.testing import StorageContract


    class TestSharedMemoryStorage(StorageContract):
        async def make_storages(self, n):
            name = uuid.uuid4().hex  # a fresh, empty record for every check
            return [await SQLStorage.in_memory(name) for _ in range(n)]

pytest collects the subclass (its name starts with ``Test``) and runs each ``test_*``
method as one check. The checks are coroutines: run them with pytest-asyncio in auto mode,
or mark the subclass (``pytestmark = pytest.mark.asyncio``, or ``pytest.mark.anyio`` on
AnyIO's asyncio backend). This module does not import pytest (importing it is cheap and
safe anywhere): a check that does not apply to a back-end raises
:class:`unittest.SkipTest`, which pytest reports as a skip. Without a test runner,
``await contract.verify()`` runs every check.

What is checked (the contract written on :class:`~leadersim.storage.base.Storage`): an
empty store reads as an empty record at version 0; a write at version 0 creates the record;
a write at the read version succeeds and moves the version on; a stale version is a
:class:`~leadersim.RecordConflictError` and leaves the stored record alone; of racing
creators or racing writers from one version exactly one wins; a record reads back exactly
as written (member order, lease durations to the nanosecond, renew times with their
nanoseconds and UTC offsets); the caller's record object is never modified. For a
storage with ``txn_with_leader_lock``: ``fn`` runs and commits only while the stored
leader is the caller (else ``NotLeaderError("<id> is not leader")`` and ``fn`` is not
run); an empty leader id never passes; ``fn``'s own exception comes back unchanged with
its writes rolled back; a leader change waits for an open leader transaction, and the
deposed leader is refused afterwards.

Checks that look at ``fn``'s writes need two hooks, :meth:`StorageContract.write_mark`
and :meth:`StorageContract.read_marks`, because only the back-end knows what its
transaction's connection is; without them those checks are skipped.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import unittest
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

from leadersim.errors import NotLeaderError, RecordConflictError
from leadersim.record import Member, Record, record_to_json
from leadersim.storage.base import LeaderLockStorage, Storage

__all__ = ["StorageContract", "sample_record"]

T = TypeVar("T")

_PLUS_8 = timezone(timedelta(hours=8))
_MINUS_5_30 = timezone(-timedelta(hours=5, minutes=30))


def sample_record(leader_id: str = "node-c", version: int = 0) -> Record:
    """A record that exercises every encoding detail the contract cares about.

    Three members, deliberately not in id order, with: a renew time at +08:00 carrying
    nanoseconds, one in UTC without a fraction, one at -05:30 with 999 extra nanoseconds;
    lease durations of 10 s, 1.5 s and 2.000000001 s; names and addresses with quotes,
    non-ASCII text and brackets.

    Args:
        leader_id: The leader slot (``""`` for an empty slot).
        version: The version the record claims to have been read at.
    """
    return Record(
        leader_id=leader_id,
        members=[
            Member(
                "node-c",
                'Zoë "c"',
                "10.0.0.3:8300",
                10.0,
                datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=_PLUS_8),
                789,
            ),
            Member("node-a", "", "", 1.5, datetime(2024, 5, 1, 4, 0, 3, tzinfo=UTC), 0),
            Member(
                "node-b",
                "b\\node",
                "[::1]:8300",
                2.000000001,
                datetime(2024, 4, 30, 22, 30, 3, 999999, tzinfo=_MINUS_5_30),
                999,
            ),
        ],
        version=version,
    )


def _expect(condition: bool, message: str) -> None:
    """Fail the current check with ``message`` (works under ``python -O`` too)."""
    if not condition:
        raise AssertionError(message)


def _describe(record: Record) -> str:
    return f"version {record.version}: {record_to_json(record)}"


def _same_content(a: Record, b: Record) -> bool:
    """Equal leader, members and every encoded detail (offsets and nanoseconds too)."""
    return record_to_json(a) == record_to_json(b)


class _FnFailedError(Exception):
    """The exception a check's ``fn`` raises inside a leader transaction."""


class StorageContract(abc.ABC):
    """Conformance checks for a :class:`~leadersim.Storage` back-end.

    Subclass it, implement :meth:`make_storages` (and :meth:`close_storages` if closing
    needs more than each storage's ``close()``), and optionally :meth:`write_mark` and
    :meth:`read_marks` for the leader-transaction checks. Each ``test_*`` method is one
    check; each check opens its own storages, so each call of :meth:`make_storages` must
    return storages of a fresh, empty record.

    Attributes:
        leader_lock: Whether the back-end offers ``txn_with_leader_lock``: ``None`` (the
            default) detects it on the storages; ``True`` makes a storage without it fail
            the leader checks instead of skipping them; ``False`` skips them.
        concurrent_writers: How many storages race in the concurrent-writers check.
        hold_duration: Seconds a leader transaction is held open while the check watches
            that a leader change waits for it (no speed is asserted: a longer hold only
            makes the check slower).
    """

    leader_lock: ClassVar[bool | None] = None
    concurrent_writers: ClassVar[int] = 5
    hold_duration: ClassVar[float] = 0.3

    # ------------------------------------------------------------------ hooks

    @abc.abstractmethod
    async def make_storages(self, n: int) -> Sequence[Storage]:
        """Open ``n`` storages that share one record, which starts empty.

        The storages should reach the record through separate connections where the
        back-end allows it, so that the checks exercise real concurrency.

        Args:
            n: How many storages to open (1 or more).
        """

    async def close_storages(self, storages: Sequence[Storage]) -> None:
        """Release what :meth:`make_storages` opened (called once per check, always).

        The default awaits each storage's ``close()`` (or ``aclose()``) if it has one.

        Args:
            storages: The storages the check used.
        """
        for storage in storages:
            close = getattr(storage, "close", None) or getattr(storage, "aclose", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result

    async def write_mark(self, connection: Any, mark: str) -> None:
        """Write ``mark`` through a leader transaction's ``connection`` (optional hook).

        Called inside ``fn`` of ``txn_with_leader_lock``; the write must belong to that
        transaction (committed or rolled back with it). Override together with
        :meth:`read_marks` to enable the commit/rollback checks.

        Args:
            connection: What the back-end passes to ``fn``.
            mark: A short unique string to store.
        """
        raise NotImplementedError

    async def read_marks(self, storage: Storage) -> set[str]:
        """The marks committed so far, read through ``storage`` outside any transaction.

        Args:
            storage: One of the check's storages (not the one that wrote the marks).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ running

    async def verify(self) -> dict[str, str]:
        """Run every check on this instance without a test runner.

        Returns:
            Each check's name mapped to ``"passed"`` or ``"skipped: <reason>"``.

        Raises:
            AssertionError: the first check that failed (with a note naming it); any
                other exception a check raised is re-raised the same way.
        """
        outcomes: dict[str, str] = {}
        for name in sorted(n for n in dir(type(self)) if n.startswith("test_")):
            check = getattr(self, name)
            try:
                await check()
            except unittest.SkipTest as skip:
                outcomes[name] = f"skipped: {skip}"
            except BaseException as exc:
                exc.add_note(f"storage contract check {type(self).__name__}.{name} failed")
                raise
            else:
                outcomes[name] = "passed"
        return outcomes

    @contextlib.asynccontextmanager
    async def _open(self, n: int) -> AsyncIterator[list[Storage]]:
        storages = list(await self.make_storages(n))
        try:
            _expect(len(storages) == n, f"make_storages({n}) returned {len(storages)}")
            yield storages
        finally:
            await self.close_storages(storages)

    def _lock(self, storage: Storage) -> LeaderLockStorage:
        """``storage`` as a leader-lock storage, or skip the check."""
        if isinstance(storage, LeaderLockStorage):
            if self.leader_lock is False:
                raise unittest.SkipTest("leader_lock = False: txn_with_leader_lock not checked")
            return storage
        if self.leader_lock:
            raise AssertionError(
                f"leader_lock = True but {storage!r} has no txn_with_leader_lock method"
            )
        raise unittest.SkipTest(f"{type(storage).__name__} has no txn_with_leader_lock")

    def _has_marks(self) -> bool:
        cls = type(self)
        return (
            cls.write_mark is not StorageContract.write_mark
            and cls.read_marks is not StorageContract.read_marks
        )

    def _require_marks(self) -> None:
        if not self._has_marks():
            raise unittest.SkipTest(
                "write_mark/read_marks not provided: fn's writes cannot be observed"
            )

    @staticmethod
    async def _create(storage: Storage, record: Record) -> Record:
        """Create ``record`` (version 0) and return what is then stored."""
        await storage.update(record, True)
        return await storage.get()

    @staticmethod
    async def _replace(storage: Storage, read: Record, record: Record) -> Record:
        """CAS-write ``record`` at ``read``'s version; return what is then stored."""
        record = Record(record.leader_id, list(record.members), read.version)
        await storage.update(record, record.leader_id != read.leader_id)
        return await storage.get()

    # ------------------------------------------------------------------ Storage

    async def test_empty_storage_reads_an_empty_record_at_version_0(self) -> None:
        """A store with no record reads as ``Record()``: no leader, no members, version 0."""
        async with self._open(2) as storages:
            for storage in storages:
                for _ in range(2):  # reading must not create anything
                    record = await storage.get()
                    _expect(
                        record.leader_id == "" and record.members == [] and record.version == 0,
                        f"an empty store read as {_describe(record)}, expected an empty "
                        "record at version 0",
                    )

    async def test_create_at_version_0_stores_the_record_for_every_storage(self) -> None:
        """A write at version 0 creates the record; every storage reads it, version > 0."""
        async with self._open(3) as storages:
            written = sample_record()
            await storages[0].update(written, True)
            for index, storage in enumerate(storages):
                read = await storage.get()
                _expect(
                    read.version != 0,
                    f"storage {index}: a created record must not read at version 0",
                )
                _expect(
                    _same_content(read, written),
                    f"storage {index} read {_describe(read)}, expected {_describe(written)}",
                )

    async def test_update_at_the_read_version_succeeds_and_moves_the_version_on(
        self,
    ) -> None:
        """Each write at the version just read succeeds; no version is ever reused."""
        async with self._open(2) as (first, second):
            read = await self._create(first, sample_record("node-c"))
            seen = [0, read.version]
            for step, leader in enumerate(["node-a", "", "node-b", "node-b"]):
                writer = (first, second)[step % 2]
                wanted = sample_record(leader)
                read = await self._replace(writer, read, wanted)
                _expect(
                    read.version not in seen,
                    f"write {step + 1} left version {read.version}, already used in {seen}: "
                    "the version must move on with every write",
                )
                _expect(
                    _same_content(read, wanted),
                    f"after write {step + 1} the store holds {_describe(read)}",
                )
                seen.append(read.version)

    async def test_update_at_a_stale_version_raises_conflict_and_keeps_the_record(
        self,
    ) -> None:
        """A writer whose read is outdated gets ``RecordConflictError``; nothing changes."""
        async with self._open(2) as (slow, fast):
            stale = await self._create(slow, sample_record("node-c"))
            current = await self._replace(fast, await fast.get(), sample_record("node-a"))
            for version in (stale.version, current.version + 1000):
                loser = sample_record("node-b", version=version)
                try:
                    await slow.update(loser, True)
                except RecordConflictError:
                    pass
                else:
                    raise AssertionError(
                        f"a write at version {version} succeeded although the stored "
                        f"version is {current.version}"
                    )
                after = await fast.get()
                _expect(
                    after.version == current.version and _same_content(after, current),
                    f"a conflicting write changed the store to {_describe(after)}, "
                    f"expected {_describe(current)}",
                )

    async def test_create_when_a_record_exists_raises_conflict_and_keeps_it(self) -> None:
        """A version-0 write over an existing record is a conflict, not an overwrite."""
        async with self._open(2) as (first, second):
            stored = await self._create(first, sample_record("node-c"))
            try:
                await second.update(Record("node-b", [sample_record().members[2]]), True)
            except RecordConflictError:
                pass
            else:
                raise AssertionError("a second create at version 0 succeeded")
            after = await first.get()
            _expect(
                after.version == stored.version and _same_content(after, stored),
                f"a refused create changed the store to {_describe(after)}",
            )

    async def test_racing_creators_at_version_0_exactly_one_wins(self) -> None:
        """Two members creating the record at once: one wins, the other gets a conflict."""
        async with self._open(2) as storages:
            members = sample_record().members
            records = [Record(m.id, [m]) for m in members[:2]]
            outcomes = await asyncio.gather(
                *(s.update(r, True) for s, r in zip(storages, records, strict=True)),
                return_exceptions=True,
            )
            self._expect_one_winner(outcomes, records, await storages[0].get())

    async def test_concurrent_writers_from_one_version_exactly_one_wins(self) -> None:
        """N writers CAS from the same read version: exactly one wins, N-1 conflict."""
        n = self.concurrent_writers
        async with self._open(n) as storages:
            base = await self._create(storages[0], sample_record(""))
            reads = [await s.get() for s in storages]
            _expect(
                all(r.version == base.version for r in reads),
                f"storages sharing one record read versions {[r.version for r in reads]}",
            )
            records = [Record(f"writer-{i}", list(base.members), base.version) for i in range(n)]
            outcomes = await asyncio.gather(
                *(s.update(r, True) for s, r in zip(storages, records, strict=True)),
                return_exceptions=True,
            )
            self._expect_one_winner(outcomes, records, await storages[-1].get())

    @staticmethod
    def _expect_one_winner(
        outcomes: Sequence[object], records: Sequence[Record], stored: Record
    ) -> None:
        winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
        unexpected = [
            o for o in outcomes if o is not None and not isinstance(o, RecordConflictError)
        ]
        if unexpected:
            raise AssertionError(
                f"racing writers failed with something other than RecordConflictError: "
                f"{unexpected!r}"
            ) from (unexpected[0] if isinstance(unexpected[0], BaseException) else None)
        _expect(
            len(winners) == 1,
            f"{len(winners)} of {len(records)} racing writers succeeded (writers {winners}); "
            "exactly one must win",
        )
        winner = records[winners[0]]
        _expect(
            _same_content(stored, winner),
            f"the store holds {_describe(stored)}, not the winner's {_describe(winner)}",
        )

    async def test_record_reads_back_exactly_as_written(self) -> None:
        """Leader, member order, leases and renew times (ns, offset) survive a round trip."""
        async with self._open(2) as (writer, reader):
            written = sample_record("node-a")
            await writer.update(written, True)
            for who, storage in (("the writer", writer), ("another storage", reader)):
                read = await storage.get()
                _expect(read.leader_id == written.leader_id, f"{who} read {_describe(read)}")
                _expect(
                    [m.id for m in read.members] == [m.id for m in written.members],
                    f"{who} read the members in order {[m.id for m in read.members]}, "
                    f"written {[m.id for m in written.members]}",
                )
                for got, want in zip(read.members, written.members, strict=True):
                    _expect(
                        (got.name, got.address) == (want.name, want.address),
                        f"{who} read member {got!r}, written {want!r}",
                    )
                    _expect(
                        round(got.lease_duration * 1e9) == round(want.lease_duration * 1e9),
                        f"{who} read {want.id}'s lease as {got.lease_duration!r} s, "
                        f"written {want.lease_duration!r} s",
                    )
                    _expect(
                        got.renew_stamp == want.renew_stamp
                        and got.renew_time.utcoffset() == want.renew_time.utcoffset(),
                        f"{who} read {want.id}'s renew time as {got.renew_time.isoformat()} "
                        f"+{got.renew_time_ns} ns, written {want.renew_time.isoformat()} "
                        f"+{want.renew_time_ns} ns: observers would see a renewal that "
                        "never happened",
                    )
                _expect(
                    _same_content(read, written),
                    f"{who} read {_describe(read)}, written {_describe(written)}",
                )

    async def test_cleared_leader_slot_and_members_read_back_empty(self) -> None:
        """Writing an empty slot and no members stores exactly that (the slot is cleared)."""
        async with self._open(2) as (writer, reader):
            read = await self._create(writer, sample_record("node-c"))
            await self._replace(writer, read, Record())
            after = await reader.get()
            _expect(
                after.leader_id == "" and after.members == [] and after.version != 0,
                f"after clearing, another storage read {_describe(after)}",
            )

    async def test_update_does_not_modify_the_callers_record(self) -> None:
        """``update`` leaves the caller's object alone: version, leader, member list."""
        async with self._open(2) as (first, second):

            async def write(storage: Storage, record: Record, *, conflict: bool) -> None:
                members = record.members
                before = (record.version, record.leader_id, list(members))
                try:
                    await storage.update(record, True)
                except RecordConflictError:
                    if not conflict:
                        raise
                _expect(
                    (record.version, record.leader_id, list(record.members)) == before
                    and record.members is members,
                    f"update changed the caller's record to {record!r}, was {before!r}",
                )

            await write(first, sample_record("node-c"), conflict=False)
            read = await second.get()
            await write(second, sample_record("node-a", version=read.version), conflict=False)
            await write(first, sample_record("node-b", version=read.version), conflict=True)

    # ------------------------------------------------------------------ leader lock

    async def test_leader_txn_runs_fn_and_returns_its_result_when_leader(self) -> None:
        """The stored leader's txn runs ``fn`` once and returns its result."""
        async with self._open(1) as (storage,):
            lock = self._lock(storage)
            stored = await self._create(storage, sample_record("node-c"))
            calls: list[Any] = []

            async def fn(connection: Any) -> str:
                calls.append(connection)
                return "result of fn"

            result = await lock.txn_with_leader_lock("node-c", fn)
            _expect(result == "result of fn", f"txn_with_leader_lock returned {result!r}")
            _expect(len(calls) == 1, f"fn ran {len(calls)} times, expected once")
            after = await storage.get()
            _expect(
                after.version == stored.version and _same_content(after, stored),
                f"a leader txn changed the record to {_describe(after)}",
            )

    async def test_leader_txn_commits_fns_writes_when_leader(self) -> None:
        """What ``fn`` writes in the leader's txn is committed, visible to others."""
        self._require_marks()
        async with self._open(2) as (leader, other):
            lock = self._lock(leader)
            await self._create(leader, sample_record("node-c"))

            async def fn(connection: Any) -> None:
                await self.write_mark(connection, "committed-by-leader")

            await lock.txn_with_leader_lock("node-c", fn)
            marks = await self.read_marks(other)
            _expect("committed-by-leader" in marks, f"fn's write was not committed: {marks}")

    async def test_leader_txn_refuses_a_follower_without_running_fn(self) -> None:
        """A member that is not the stored leader gets ``NotLeaderError``; ``fn`` never runs."""
        async with self._open(1) as (storage,):
            lock = self._lock(storage)
            await self._create(storage, sample_record("node-c"))
            await self._expect_refused(lock, "node-a")

    async def test_leader_txn_refuses_everyone_before_a_record_exists(self) -> None:
        """With no record stored there is no leader: every txn is refused."""
        async with self._open(1) as (storage,):
            lock = self._lock(storage)
            for leader_id in ("node-c", ""):
                await self._expect_refused(lock, leader_id)
            after = await storage.get()
            _expect(after.version == 0, f"a refused txn created a record: {_describe(after)}")

    async def test_leader_txn_never_passes_an_empty_leader_id(self) -> None:
        """An empty id is refused, whether the stored slot is empty or someone leads."""
        async with self._open(1) as (storage,):
            lock = self._lock(storage)
            read = await self._create(storage, sample_record(""))
            await self._expect_refused(lock, "")
            await self._replace(storage, read, sample_record("node-c"))
            await self._expect_refused(lock, "")

    async def test_leader_txn_refuses_a_leader_whose_slot_was_cleared(self) -> None:
        """After a resign or expiry clears the slot, the former leader is refused."""
        async with self._open(2) as (leader, other):
            lock = self._lock(leader)
            read = await self._create(leader, sample_record("node-c"))
            await self._replace(other, read, sample_record(""))
            await self._expect_refused(lock, "node-c")

    async def test_leader_txn_refuses_a_deposed_leader(self) -> None:
        """Once another member holds the slot, the old leader's txns are refused."""
        async with self._open(2) as (old, new):
            old_lock = self._lock(old)
            read = await self._create(old, sample_record("node-c"))
            await old_lock.txn_with_leader_lock("node-c", _returns_none)
            await self._replace(new, read, sample_record("node-a"))
            await self._expect_refused(old_lock, "node-c")
            result = await self._lock(new).txn_with_leader_lock("node-a", _returns_true)
            _expect(result is True, "the new leader's txn did not run fn")

    async def test_leader_txn_reraises_fns_exception_unchanged(self) -> None:
        """``fn``'s exception comes back as the same object; the storage stays usable."""
        async with self._open(1) as (storage,):
            lock = self._lock(storage)
            read = await self._create(storage, sample_record("node-c"))
            raised = _FnFailedError("fn failed on purpose")

            async def fn(connection: Any) -> None:
                raise raised

            try:
                await lock.txn_with_leader_lock("node-c", fn)
            except _FnFailedError as exc:
                _expect(exc is raised, f"fn's exception was replaced by an equal copy {exc!r}")
            except Exception as exc:
                raise AssertionError(
                    f"fn's exception came back as {type(exc).__name__}: {exc}"
                ) from exc
            else:
                raise AssertionError("fn raised but txn_with_leader_lock returned normally")
            await self._expect_usable(storage, lock, read)

    async def test_leader_txn_rolls_back_fns_writes_when_fn_raises(self) -> None:
        """Writes ``fn`` made before raising are rolled back; later txns commit normally."""
        self._require_marks()
        async with self._open(2) as (leader, other):
            lock = self._lock(leader)
            await self._create(leader, sample_record("node-c"))

            async def failing(connection: Any) -> None:
                await self.write_mark(connection, "rolled-back")
                raise _FnFailedError("fn failed after writing")

            async def succeeding(connection: Any) -> None:
                await self.write_mark(connection, "committed-after")

            with contextlib.suppress(_FnFailedError):
                await lock.txn_with_leader_lock("node-c", failing)
            await lock.txn_with_leader_lock("node-c", succeeding)
            marks = await self.read_marks(other)
            _expect("rolled-back" not in marks, f"fn raised but its write committed: {marks}")
            _expect("committed-after" in marks, f"the next txn did not commit: {marks}")

    async def test_cancelling_a_leader_txn_rolls_back_and_keeps_the_storage_usable(
        self,
    ) -> None:
        """A leader callback cancelled inside a txn leaves no writes and no open txn."""
        async with self._open(2) as (leader, other):
            lock = self._lock(leader)
            read = await self._create(leader, sample_record("node-c"))
            entered = asyncio.Event()

            async def fn(connection: Any) -> None:
                if self._has_marks():
                    await self.write_mark(connection, "cancelled")
                entered.set()
                await asyncio.Event().wait()  # until cancelled

            txn = asyncio.ensure_future(lock.txn_with_leader_lock("node-c", fn))
            await _wait_entered(txn, entered)
            txn.cancel()
            try:
                await txn
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("a cancelled leader txn returned normally")
            if self._has_marks():
                marks = await self.read_marks(other)
                _expect("cancelled" not in marks, f"a cancelled txn committed: {marks}")
            await self._expect_usable(leader, lock, read)

    async def test_leader_change_waits_for_an_open_leader_txn(self) -> None:
        """Fencing: a write moving the slot waits until the leader's txn has ended."""
        async with self._open(2) as (leader, other):
            lock = self._lock(leader)
            read = await self._create(leader, sample_record("node-c"))
            entered, release = asyncio.Event(), asyncio.Event()

            async def hold(connection: Any) -> str:
                if self._has_marks():
                    await self.write_mark(connection, "fenced-write")
                entered.set()
                await release.wait()
                return "held"

            txn = asyncio.ensure_future(lock.txn_with_leader_lock("node-c", hold))
            change: asyncio.Future[None] | None = None
            try:
                await _wait_entered(txn, entered)
                takeover = sample_record("node-a", version=read.version)
                change = asyncio.ensure_future(other.update(takeover, True))
                await asyncio.sleep(self.hold_duration)
                if change.done():
                    raise AssertionError(
                        "a leader change completed while the old leader's txn was open "
                        f"(outcome: {change.exception()!r}); it must wait for the txn"
                    )
                release.set()
                _expect(await txn == "held", "the leader txn did not return fn's result")
                await change
            finally:
                release.set()
                pending = [f for f in (txn, change) if f is not None]
                await asyncio.gather(*pending, return_exceptions=True)
            if self._has_marks():
                marks = await self.read_marks(other)
                _expect("fenced-write" in marks, f"the leader's write was lost: {marks}")
            after = await other.get()
            _expect(after.leader_id == "node-a", f"the takeover was lost: {_describe(after)}")
            await self._expect_refused(lock, "node-c")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def _expect_refused(lock: LeaderLockStorage, leader_id: str) -> None:
        calls = 0

        async def fn(connection: Any) -> None:
            nonlocal calls
            calls += 1

        try:
            await lock.txn_with_leader_lock(leader_id, fn)
        except NotLeaderError as exc:
            _expect(
                str(exc) == f"{leader_id} is not leader",
                f"NotLeaderError says {str(exc)!r}, expected {leader_id + ' is not leader'!r}",
            )
        else:
            raise AssertionError(f"a txn for leader_id {leader_id!r} was allowed")
        _expect(calls == 0, f"fn ran although {leader_id!r} is not the leader")

    async def _expect_usable(self, storage: Storage, lock: LeaderLockStorage, read: Record) -> None:
        """After a failed txn, CAS writes and leader txns still work on ``storage``."""
        after = await storage.get()
        _expect(
            after.version == read.version and _same_content(after, read),
            f"a failed leader txn changed the record to {_describe(after)}",
        )
        await self._replace(storage, after, sample_record("node-c"))
        result = await lock.txn_with_leader_lock("node-c", _returns_true)
        _expect(result is True, "a leader txn after a failed one did not run fn")


async def _returns_none(connection: Any) -> None:
    return None


async def _returns_true(connection: Any) -> bool:
    return True


async def _wait_entered(txn: asyncio.Future[T], entered: asyncio.Event) -> None:
    """Wait until ``fn`` signals it runs, or raise what ended ``txn`` before that."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(entered.wait())
    watched: set[asyncio.Future[Any]] = {txn, waiter}
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    if not entered.is_set():
        txn.result()  # raises what the txn raised
        raise AssertionError("the leader txn returned without running fn")
