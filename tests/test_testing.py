"""The storage contract suite must catch broken back-ends, not just pass good ones."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from leadersim.errors import RecordConflictError
from leadersim.record import Member, Record
from leadersim.storage.base import Storage
from leadersim.testing import StorageContract


class _Shared:
    """One stored record shared by several client objects (an in-process 'database')."""

    def __init__(self) -> None:
        self.record: Record | None = None


class MemoryStorage:
    """A minimal correct back-end: a CAS on a version, copies in and out."""

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared

    async def get(self) -> Record:
        await asyncio.sleep(0)
        stored = self.shared.record
        return Record() if stored is None else stored.clone()

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        await asyncio.sleep(0)
        stored = self.shared.record
        current = 0 if stored is None else stored.version
        if current != record.version:
            raise RecordConflictError(f"version is {current}, not {record.version}")
        self.shared.record = Record(record.leader_id, list(record.members), record.version + 1)


class NoCasStorage(MemoryStorage):
    """Broken: writes whatever it is given (last writer wins)."""

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        await asyncio.sleep(0)
        version = 0 if self.shared.record is None else self.shared.record.version
        self.shared.record = Record(record.leader_id, list(record.members), version + 1)


class MutatingStorage(MemoryStorage):
    """Broken: bumps the caller's record version in place."""

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        await super().update(record, is_leader_changed)
        record.version += 1


class RoundingStorage(MemoryStorage):
    """Broken: keeps renew times only to the microsecond (drops Go's nanoseconds)."""

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        rounded = [dataclasses.replace(m, renew_time_ns=0) for m in record.members]
        await super().update(Record(record.leader_id, rounded, record.version), False)


def contract_for(storage_class: type[MemoryStorage]) -> StorageContract:
    class Contract(StorageContract):
        async def make_storages(self, n: int) -> Sequence[Storage]:
            shared = _Shared()
            return [storage_class(shared) for _ in range(n)]

    return Contract()


async def test_a_correct_memory_storage_passes_every_storage_check() -> None:
    outcome = await contract_for(MemoryStorage).verify()
    assert outcome["test_concurrent_writers_from_one_version_exactly_one_wins"] == "passed"
    assert all(v == "passed" or v.startswith("skipped") for v in outcome.values())
    # No txn_with_leader_lock here: the fencing checks skip rather than pass.
    assert outcome["test_leader_txn_refuses_a_deposed_leader"].startswith("skipped")


@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (NoCasStorage, "test_update_at_a_stale_version_raises_conflict_and_keeps_the_record"),
        (MutatingStorage, "test_update_does_not_modify_the_callers_record"),
        (RoundingStorage, "test_record_reads_back_exactly_as_written"),
    ],
)
async def test_the_contract_catches_a_broken_storage(
    broken: type[MemoryStorage], caught_by: str
) -> None:
    contract = contract_for(broken)
    with pytest.raises(AssertionError):
        await getattr(contract, caught_by)()
    with pytest.raises(AssertionError, match="storage contract check"):
        await contract.verify()


def test_members_are_shared_not_copied_by_the_memory_fake() -> None:
    # Guard for the fake itself: clone() copies the list, not the (immutable) members.
    member = Member("a", lease_duration=1.0)
    record = Record("a", [member], 3)
    assert record.clone().members[0] is member
