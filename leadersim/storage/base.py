"""The storage protocol: where the shared election record lives.

A storage is to the elector what a transport is to an HTTP client: two operations with a
precise contract, so that SQLite, a server database or a simulated, fault-injecting store
are interchangeable. :mod:`leadersim.testing` checks the contract for any back-end.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from leadersim.errors import ConfigError
from leadersim.record import Record

__all__ = ["TABLE_NAME_ELECTION", "LeaderLockStorage", "Storage", "check_table_name"]

T = TypeVar("T")


@runtime_checkable
class Storage(Protocol):
    """Compare-and-swap storage of one election :class:`~leadersim.Record`."""

    async def get(self) -> Record:
        """Read the record.

        Returns:
            The stored record with its version; an empty record with version 0 when none
            has been stored yet.

        Raises:
            StorageError: the read failed (``CorruptRecordError`` if it cannot be decoded).
        """
        ...

    async def update(self, record: Record, is_leader_changed: bool) -> None:
        """Write ``record`` if, and only if, the stored version is still ``record.version``.

        Version 0 means "create": it succeeds only if no record exists yet. On success the
        stored version moves on (the caller's object is not modified).

        Args:
            record: The record to store; its ``version`` is the one it was read at.
            is_leader_changed: Whether ``leader_id`` differs from the one read (back-ends
                that keep a separate leader row update it only then).

        Raises:
            RecordConflictError: the stored version differs (someone else wrote first).
            StorageError: the write failed for another reason; it may or may not have
                been applied.
        """
        ...


@runtime_checkable
class LeaderLockStorage(Storage, Protocol):
    """A storage that can run a transaction fenced by the stored leader."""

    async def txn_with_leader_lock(self, leader_id: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(connection)`` in one transaction, only while ``leader_id`` leads.

        The stored leader is checked (and locked against a leader change) inside the
        transaction; ``fn``'s writes commit only if it returns.

        Raises:
            NotLeaderError: the stored leader is not ``leader_id``.
            Exception: whatever ``fn`` raised, unchanged, after rolling back.
        """
        ...


#: Default table name of the election record (reference ``TableNameElection``).
TABLE_NAME_ELECTION: Final = "election"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_table_name(table_name: object) -> str:
    """Return ``table_name`` if it is a plain SQL identifier, else raise ``ConfigError``.

    The reference pastes the table name into SQL unescaped; leadersim allows only
    ``[A-Za-z_][A-Za-z0-9_]*`` (at most 64 characters, MySQL's limit).
    """
    if (
        not isinstance(table_name, str)
        or len(table_name) > 64
        or _IDENTIFIER.fullmatch(table_name) is None
    ):
        raise ConfigError(
            f"invalid table name {table_name!r}: a table name must match "
            "[A-Za-z_][A-Za-z0-9_]* and be at most 64 characters"
        )
    return table_name
