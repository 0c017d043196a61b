"""Storage back-ends of the election record."""

from leadersim.storage.base import (
    TABLE_NAME_ELECTION,
    LeaderLockStorage,
    Storage,
    check_table_name,
)
from leadersim.storage.faulty import CUT_MODES, FaultyLeaderLockStorage, FaultyStorage

__all__ = [
    "CUT_MODES",
    "TABLE_NAME_ELECTION",
    "FaultyLeaderLockStorage",
    "FaultyStorage",
    "LeaderLockStorage",
    "Storage",
    "check_table_name",
]
