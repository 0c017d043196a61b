"""Storage back-ends of the election record."""

from leadersim.storage.base import (
    TABLE_NAME_ELECTION,
    LeaderLockStorage,
    Storage,
    check_table_name,
)

__all__ = ["TABLE_NAME_ELECTION", "LeaderLockStorage", "Storage", "check_table_name"]
