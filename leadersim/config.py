"""Elector configuration: :class:`Config` and its validation rules.

A port of the reference ``Config`` and ``AdjustAndValidate``. Durations are float seconds;
a :class:`datetime.timedelta` is accepted anywhere a duration is and normalised to seconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from leadersim.errors import ConfigError, SafetyWarning

if TYPE_CHECKING:
    from leadersim.storage.base import Storage

__all__ = [
    "DEFAULT_LEASE_DURATION",
    "DEFAULT_RENEW_DEADLINE",
    "DEFAULT_RENEW_INTERVAL",
    "MAX_DURATION",
    "MIN_DURATION",
    "Config",
    "LeaderCallback",
]

#: Default lease duration in seconds (reference ``defaultLeaseDuration``).
DEFAULT_LEASE_DURATION = 10.0
#: Default renew interval in seconds (reference ``defaultRenewInterval``).
DEFAULT_RENEW_INTERVAL = 2.0
#: Default renew deadline in seconds. A constant: it does not follow a custom lease.
DEFAULT_RENEW_DEADLINE = 8.0

#: The leader callback: an async callable with no arguments, cancelled on leadership loss.
LeaderCallback = Callable[[], Awaitable[None]]

#: The shortest non-zero lease, renew interval or deadline, in seconds (1 ms): below it
#: a renew round cannot even reach the storage, and 1e-12 s would round to 0 ns.
MIN_DURATION = 0.001
#: The longest lease, renew interval or deadline, in seconds (about 292 years): Go's
#: longest ``time.Duration`` (2**63 - 1 ns) in whole seconds; a reference member cannot
#: decode a longer lease in the record.
MAX_DURATION = 9_223_372_036.0

_DURATION_FIELDS = ("lease_duration", "renew_interval", "renew_deadline")
_GO_NAMES = {
    "lease_duration": "LeaseDuration",
    "renew_interval": "RenewInterval",
    "renew_deadline": "RenewDeadline",
}


def _as_seconds(name: str, value: Any) -> float:
    """Normalise a duration given as seconds or a timedelta; reject anything else."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{name} must be a number of seconds or a datetime.timedelta, "
            f"got {type(value).__name__} {value!r}"
        )
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


@dataclasses.dataclass(slots=True)
class Config:
    """Configuration of one :class:`~leadersim.Elector` member.

    Args:
        id: Unique member id; a non-empty string.
        name: Human-readable member name (informational).
        address: Member address advertised to others (informational).
        storage: Where the shared election record lives (see :class:`~leadersim.Storage`).
        leader_callback: ``async def lead() -> None``, run while this member leads and
            cancelled when leadership is lost.
        lease_duration: Seconds a member's lease lasts after its last observed renewal
            (default 10 s when zero). Each duration is 0 (the default) or from
            :data:`MIN_DURATION` (1 ms) to :data:`MAX_DURATION` (about 292 years).
        renew_interval: Seconds between the end of one renew round and the next
            (default 2 s when zero).
        renew_deadline: Seconds one renew round may retry before it fails and the callback
            is cancelled (default 8 s when zero; does not follow a custom lease).
        exit_on_renew_fail: Stop ``run_election`` with :class:`~leadersim.RenewFailedError`
            when a renew round fails for its whole deadline.
        stop_before_release: Beyond the reference (fix for its weak point 3): on shutdown
            and resign, cancel and await the leader callback *before* clearing the leader
            slot, so two callbacks never overlap at a graceful hand-over. Off by default to
            keep the reference order. It also makes the member stop believing it leads
            (``is_leader()`` false, ``get_leader()`` not itself) from the moment a release
            starts, so a release whose reply is lost does not leave it claiming a slot
            another member already holds.
        callback_failure_backoff: Beyond the reference (fix for its weak point 5): seconds
            a member does not campaign after its leader callback ended by itself. 0 (the
            reference) lets it win the slot straight back, so a failing callback flaps.
        clear_orphan_leader: Beyond the reference: a ``leader_id`` that names no member
            of the record (a hand-edited or foreign record) is treated as an empty slot
            once this member has seen it, unchanged, for its own ``lease_duration``.
            Off by default: the reference never clears such a slot, so nobody campaigns
            (the elector logs a warning either way).
        max_member_lease: Beyond the reference: seconds after which this member
            expires any member, whatever longer lease that member advertises; 0 (the
            reference) honours every advertised lease. It must be at least
            ``lease_duration``; set it above every legitimate lease in the group, since a
            cap below a live member's lease lets two members lead at once.
    """

    id: str
    name: str = ""
    address: str = ""
    storage: Storage | None = None
    leader_callback: LeaderCallback | None = None
    lease_duration: float = 0.0
    renew_interval: float = 0.0
    renew_deadline: float = 0.0
    exit_on_renew_fail: bool = False
    stop_before_release: bool = False
    callback_failure_backoff: float = 0.0
    clear_orphan_leader: bool = False
    max_member_lease: float = 0.0

    def __post_init__(self) -> None:
        for field in _DURATION_FIELDS:
            setattr(self, field, _as_seconds(field, getattr(self, field)))

    @property
    def slack(self) -> float:
        """Safety slack ``lease_duration - renew_interval - renew_deadline`` in seconds."""
        return self.lease_duration - self.renew_interval - self.renew_deadline

    def copy(self) -> Config:
        """Return a shallow copy (storage and callback are shared, not copied)."""
        return dataclasses.replace(self)

    def adjust_and_validate(self) -> None:
        """Fill zero durations with defaults, then check the rules in reference order.

        Raises:
            ConfigError: the first failing rule, with the reference's exact message
                (``id must not be empty``, ``storage must not be nil``,
                ``LeaderCallback must not be nil``,
                ``RenewInterval must not be greater than LeaseDuration``,
                ``RenewDeadline must not be greater than LeaseDuration - RenewInterval``),
                or, beyond the reference: a non-string id, a negative, non-numeric or
                out-of-range duration (allowed: 0 or 1 ms to about 292 years), a bad
                ``max_member_lease`` or ``callback_failure_backoff``.

        Warns:
            SafetyWarning: the config is valid but its slack is zero or less.
        """
        for field in _DURATION_FIELDS:
            setattr(self, field, _as_seconds(field, getattr(self, field)))
        backoff = _as_seconds("callback_failure_backoff", self.callback_failure_backoff)
        if backoff < 0:
            raise ConfigError(f"callback_failure_backoff must not be negative, got {backoff:g} s")
        self.callback_failure_backoff = backoff
        if self.lease_duration == 0:
            self.lease_duration = DEFAULT_LEASE_DURATION
        if self.renew_interval == 0:
            self.renew_interval = DEFAULT_RENEW_INTERVAL
        if self.renew_deadline == 0:
            self.renew_deadline = DEFAULT_RENEW_DEADLINE

        if not isinstance(self.id, str):
            raise ConfigError(
                f"id must be a non-empty string, got {type(self.id).__name__} {self.id!r}"
            )
        if self.id == "":
            raise ConfigError("id must not be empty")
        if self.storage is None:
            raise ConfigError("storage must not be nil")
        if self.leader_callback is None:
            raise ConfigError("LeaderCallback must not be nil")
        if not callable(self.leader_callback):
            raise ConfigError(
                "LeaderCallback must be an async callable taking no arguments, "
                f"got {type(self.leader_callback).__name__}"
            )
        for field in _DURATION_FIELDS:
            value = getattr(self, field)
            if value < 0:
                raise ConfigError(
                    f"{_GO_NAMES[field]} must not be negative, got {value:g} s "
                    f"({field}; zero selects the default)"
                )
            if not MIN_DURATION <= value <= MAX_DURATION:
                raise ConfigError(
                    f"{field} must be 0 (the default) or from {MIN_DURATION:g} s to "
                    f"{MAX_DURATION:.0f} s, got {value:g} s"
                )
        cap = _as_seconds("max_member_lease", self.max_member_lease)
        if cap != 0 and not self.lease_duration <= cap <= MAX_DURATION:
            raise ConfigError(
                f"max_member_lease must be 0 (no cap) or from lease_duration "
                f"({self.lease_duration:g} s) to {MAX_DURATION:.0f} s, got {cap:g} s"
            )
        self.max_member_lease = cap
        # Compare in integer nanoseconds like the reference (Go durations): in floats,
        # 0.3 - 0.1 < 0.2, which would reject a config sitting exactly on rule 5.
        lease_ns, interval_ns, deadline_ns = (
            round(getattr(self, field) * 1e9) for field in _DURATION_FIELDS
        )
        if interval_ns > lease_ns:
            raise ConfigError("RenewInterval must not be greater than LeaseDuration")
        if deadline_ns > lease_ns - interval_ns:
            raise ConfigError(
                "RenewDeadline must not be greater than LeaseDuration - RenewInterval"
            )
        slack = (lease_ns - interval_ns - deadline_ns) / 1e9
        if slack <= 0:
            warnings.warn(
                f"config of member {self.id!r} leaves no safety slack: lease_duration - "
                f"renew_interval - renew_deadline = {self.lease_duration:g} - "
                f"{self.renew_interval:g} - {self.renew_deadline:g} = {slack:g} s; any "
                "reply delay or callback stop time can make two leaders act at once",
                SafetyWarning,
                stacklevel=2,
            )

    def check_components(self) -> None:
        """Check that ``storage`` and ``leader_callback`` are what an elector can run.

        :meth:`adjust_and_validate` checks values only (so a scenario can validate its
        durations with placeholders); the :class:`~leadersim.Elector` calls this too, so a
        wrong object is refused when the elector is built, not later inside its loop.

        Raises:
            ConfigError: ``storage`` lacks ``async get()`` / ``async update(record,
                is_leader_changed)``, or ``leader_callback`` is not an async callable that
                can be called with no arguments.
        """
        storage = self.storage
        if storage is not None and not (
            _is_async_callable(getattr(storage, "get", None), 0)
            and _is_async_callable(getattr(storage, "update", None), 2)
        ):
            raise ConfigError(
                "storage must be a Storage (an object with async get() and async "
                f"update(record, is_leader_changed) methods), got {_describe(storage)}"
            )
        callback = self.leader_callback
        if callback is not None and not _is_async_callable(callback, 0):
            raise ConfigError(
                "LeaderCallback must be an async function (async def) taking no arguments, "
                f"got {_describe(callback)}"
            )


def _is_async_callable(candidate: object, arguments: int) -> bool:
    """Whether ``candidate`` is an async callable that accepts ``arguments`` positionals."""
    if candidate is None or not callable(candidate):
        return False
    if not (
        inspect.iscoroutinefunction(candidate)
        # an instance of a class with ``async def __call__``
        or inspect.iscoroutinefunction(type(candidate).__call__)
    ):
        return False
    try:
        signature = inspect.signature(candidate)
    except (TypeError, ValueError):  # no introspectable signature: trust the marker
        return True
    try:
        signature.bind(*([None] * arguments))
    except TypeError:
        return False
    return True


def _describe(value: object) -> str:
    name = getattr(value, "__qualname__", None)
    kind = type(value).__name__
    return f"{kind} {name!r}" if isinstance(name, str) else f"{kind} {value!r}"
