"""The leadersim error tree.

Every error leadersim raises on purpose derives from :class:`LeadersimError`; storage
back-ends translate driver exceptions into these at their boundary, so the elector only
ever catches leadersim errors::

    LeadersimError
    ├── ConfigError            (also a ValueError)  invalid config, bad table name, bad scenario
    ├── StorageError                                 the storage could not do what was asked
    │   ├── CorruptRecordError                       the stored record cannot be decoded
    │   ├── StorageUnavailableError                  unreachable database, locked SQLite file
    │   └── StorageContentionError                   lock wait timeout, deadlock, serialization
    ├── RecordConflictError                          compare-and-swap lost: version moved on
    ├── NotLeaderError                               a leader-guarded transaction was refused
    ├── RenewFailedError                             renewals failed for a whole deadline
    ├── ResignTimeoutError     (also a TimeoutError) the elector did not take a resign request
    ├── SimulationDeadlock     (also a RuntimeError) nothing can happen again in a simulation
    │                                                (defined in leadersim.sim.loop)
    └── LabError               (also a RuntimeError) what a lab waited for did not happen
                                                     (defined in leadersim.lab)

:class:`SafetyWarning` (a ``UserWarning``) is emitted, not raised, for configs that are
valid but leave no safety slack.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptRecordError",
    "LeadersimError",
    "NotLeaderError",
    "RecordConflictError",
    "RenewFailedError",
    "ResignTimeoutError",
    "SafetyWarning",
    "StorageContentionError",
    "StorageError",
    "StorageUnavailableError",
]


class LeadersimError(Exception):
    """Base class of every error leadersim raises."""


class ConfigError(LeadersimError, ValueError):
    """A configuration value is invalid; the message names it and what is allowed."""


class StorageError(LeadersimError):
    """A storage operation failed (the driver's exception is chained as ``__cause__``)."""


class CorruptRecordError(StorageError):
    """The stored election record cannot be decoded; nothing was written."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached or stayed locked longer than the busy timeout."""


class StorageContentionError(StorageError):
    """A server gave up on a write: lock wait timeout, deadlock or serialization failure.

    The statement was rolled back; retrying later may succeed (the elector does).
    """


class RecordConflictError(LeadersimError):
    """A compare-and-swap update lost: the stored version is not the one read.

    Reference: ``ErrRecordConflict``.
    """


class NotLeaderError(LeadersimError):
    """A leader-guarded transaction was refused because the caller is not the leader.

    Reference: ``ErrElectorNotLeader`` (message ``"<id> is not leader"``).
    """

    def __init__(self, leader_id: str) -> None:
        super().__init__(f"{leader_id} is not leader")
        self.leader_id = leader_id


class RenewFailedError(LeadersimError):
    """Renewing failed for a whole renew deadline and ``exit_on_renew_fail`` is set.

    The last storage error, if any, is chained as ``__cause__``.
    """


class ResignTimeoutError(LeadersimError, TimeoutError):
    """A resign request was not handled by the elector's main loop in time."""


class SafetyWarning(UserWarning):
    """A valid config that leaves no safety slack (lease - interval - deadline <= 0)."""
