"""Storage back-ends of the election record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from leadersim.storage.base import (
    TABLE_NAME_ELECTION,
    LeaderLockStorage,
    Storage,
    check_table_name,
)
from leadersim.storage.faulty import CUT_MODES, FaultyLeaderLockStorage, FaultyStorage

if TYPE_CHECKING:
    from leadersim.storage.orm import ORMStorage
    from leadersim.storage.sqlite import SQLStorage

__all__ = [
    "CUT_MODES",
    "TABLE_NAME_ELECTION",
    "FaultyLeaderLockStorage",
    "FaultyStorage",
    "LeaderLockStorage",
    "ORMStorage",
    "Storage",
    "check_table_name",
    "is_database_url",
    "open_storage",
]


def is_database_url(target: str | Path) -> bool:
    """Whether ``target`` is a database URL (``scheme://...``) rather than a file path."""
    return isinstance(target, str) and "://" in target


async def open_storage(
    target: str | Path, table_name: str = TABLE_NAME_ELECTION
) -> SQLStorage | ORMStorage:
    """Open the storage a member was pointed at: a SQLite file, or a database URL.

    Args:
        target: A SQLite file path (``SQLStorage.open``), or a URL such as
            ``postgresql+asyncpg://user@host:5432/db`` (``ORMStorage.from_url``; needs the
            ``[server]`` extra).
        table_name: The election table.

    Raises:
        ConfigError: bad table name or URL.
        StorageError: the database cannot be opened.
    """
    if is_database_url(target):
        from leadersim.storage.orm import ORMStorage

        return await ORMStorage.from_url(str(target), table_name)
    from leadersim.storage.sqlite import SQLStorage

    return await SQLStorage.open(target, table_name)


def __getattr__(name: str) -> object:
    # ORMStorage pulls in SQLAlchemy: load it only when asked for.
    if name == "ORMStorage":
        from leadersim.storage.orm import ORMStorage

        return ORMStorage
    raise AttributeError(f"module 'leadersim.storage' has no attribute {name!r}")
