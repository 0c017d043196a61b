"""Config.adjust_and_validate: defaults, the reference's rules and messages, and beyond."""

from __future__ import annotations

import asyncio
import math
import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from leadersim import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RENEW_INTERVAL,
    Config,
    ConfigError,
    Elector,
    SafetyWarning,
    SQLStorage,
)

# adjust_and_validate only checks that a storage is given; it never touches it.
STORAGE: Any = object()

ID_MESSAGE = "id must not be empty"
STORAGE_MESSAGE = "storage must not be nil"
CALLBACK_MESSAGE = "LeaderCallback must not be nil"
INTERVAL_MESSAGE = "RenewInterval must not be greater than LeaseDuration"
DEADLINE_MESSAGE = "RenewDeadline must not be greater than LeaseDuration - RenewInterval"


async def lead() -> None:
    await asyncio.Event().wait()


def make_config(**overrides: Any) -> Config:
    fields: dict[str, Any] = {"id": "m1", "storage": STORAGE, "leader_callback": lead}
    fields.update(overrides)
    return Config(**fields)


def durations(config: Config) -> tuple[float, float, float]:
    return (config.lease_duration, config.renew_interval, config.renew_deadline)


@pytest.fixture
def no_safety_warning() -> Iterator[None]:
    """Turn a SafetyWarning into an error (it is ignored globally in pyproject)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SafetyWarning)
        yield


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# ---------------------------------------------------------------- reference rules, in order


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"id": ""}, ID_MESSAGE, id="1-empty-id"),
        pytest.param({"storage": None}, STORAGE_MESSAGE, id="2-no-storage"),
        pytest.param({"leader_callback": None}, CALLBACK_MESSAGE, id="3-no-callback"),
        pytest.param(
            {"lease_duration": 5, "renew_interval": 6, "renew_deadline": 1},
            INTERVAL_MESSAGE,
            id="4-interval-over-lease",
        ),
        pytest.param(
            {"lease_duration": 10, "renew_interval": 2, "renew_deadline": 9},
            DEADLINE_MESSAGE,
            id="5-deadline-over-lease-minus-interval",
        ),
    ],
)
def test_each_rule_raises_the_reference_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=exact(message)):
        make_config(**overrides).adjust_and_validate()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"id": "", "storage": None, "leader_callback": None, "renew_interval": 20},
            ID_MESSAGE,
            id="id-before-everything",
        ),
        pytest.param(
            {"storage": None, "leader_callback": None, "renew_interval": 20},
            STORAGE_MESSAGE,
            id="storage-before-callback",
        ),
        pytest.param(
            {"leader_callback": None, "renew_interval": 20},
            CALLBACK_MESSAGE,
            id="callback-before-durations",
        ),
        pytest.param(
            # interval 12 > lease 10, and deadline 8 > 10 - 12 as well
            {"renew_interval": 12},
            INTERVAL_MESSAGE,
            id="interval-before-deadline",
        ),
    ],
)
def test_the_first_failing_rule_in_reference_order_wins(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=exact(message)):
        make_config(**overrides).adjust_and_validate()


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=exact(ID_MESSAGE)):
        make_config(id="").adjust_and_validate()


# ---------------------------------------------------------------- defaults


def test_all_zero_durations_get_the_reference_defaults() -> None:
    config = make_config()
    config.adjust_and_validate()
    assert durations(config) == (10.0, 2.0, 8.0)
    assert durations(config) == (
        DEFAULT_LEASE_DURATION,
        DEFAULT_RENEW_INTERVAL,
        DEFAULT_RENEW_DEADLINE,
    )


def test_a_custom_lease_alone_keeps_the_constant_default_deadline() -> None:
    config = make_config(lease_duration=15)
    config.adjust_and_validate()
    assert durations(config) == (15.0, 2.0, 8.0)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"renew_interval": 1}, (10.0, 1.0, 8.0)),
        ({"renew_deadline": 5}, (10.0, 2.0, 5.0)),
        ({"lease_duration": 20, "renew_deadline": 3}, (20.0, 2.0, 3.0)),
        ({"lease_duration": 4, "renew_interval": 1, "renew_deadline": 2}, (4.0, 1.0, 2.0)),
    ],
)
def test_defaults_fill_only_the_fields_left_at_zero(
    overrides: dict[str, Any], expected: tuple[float, float, float]
) -> None:
    config = make_config(**overrides)
    config.adjust_and_validate()
    assert durations(config) == expected


def test_a_tiny_nonzero_duration_is_kept_not_replaced_by_a_default() -> None:
    config = make_config(lease_duration=10, renew_interval=1e-3, renew_deadline=1e-3)
    config.adjust_and_validate()
    assert durations(config) == (10.0, 1e-3, 1e-3)


def test_a_short_custom_lease_does_not_pull_the_defaults_down() -> None:
    # The deadline default is the constant 8 s, so a 5 s lease alone is invalid.
    with pytest.raises(ConfigError, match=exact(DEADLINE_MESSAGE)):
        make_config(lease_duration=5).adjust_and_validate()


# ---------------------------------------------------------------- rule 5 boundary


@pytest.mark.parametrize(
    ("lease", "interval", "deadline"),
    [
        (10, 2, 8),
        (15, 5, 10),
        # decimal fractions whose float difference is not exact (0.3 - 0.1 < 0.2 in floats)
        (0.3, 0.1, 0.2),
        (0.7, 0.1, 0.6),
        (timedelta(milliseconds=300), timedelta(milliseconds=100), timedelta(milliseconds=200)),
    ],
)
def test_deadline_equal_to_lease_minus_interval_passes(
    lease: float, interval: float, deadline: float
) -> None:
    config = make_config(lease_duration=lease, renew_interval=interval, renew_deadline=deadline)
    with pytest.warns(SafetyWarning):
        config.adjust_and_validate()


def test_interval_equal_to_lease_passes_rule_4_and_is_stopped_by_rule_5() -> None:
    # interval == lease is allowed by rule 4; the deadline then has no room left.
    with pytest.raises(ConfigError, match=exact(DEADLINE_MESSAGE)):
        make_config(lease_duration=3, renew_interval=3, renew_deadline=1).adjust_and_validate()


def test_a_nanosecond_over_the_boundary_is_rejected() -> None:
    config = make_config(lease_duration=10, renew_interval=2, renew_deadline=8.000000001)
    with pytest.raises(ConfigError, match=exact(DEADLINE_MESSAGE)):
        config.adjust_and_validate()


# ---------------------------------------------------------------- negative, non-numeric


@pytest.mark.parametrize(
    ("field", "go_name"),
    [
        ("lease_duration", "LeaseDuration"),
        ("renew_interval", "RenewInterval"),
        ("renew_deadline", "RenewDeadline"),
    ],
)
def test_a_negative_duration_is_rejected_naming_the_field(field: str, go_name: str) -> None:
    config = make_config(**{field: -1})
    with pytest.raises(ConfigError, match="negative") as caught:
        config.adjust_and_validate()
    message = str(caught.value)
    assert field in message
    assert go_name in message
    # a negative value is not mistaken for "unset" and replaced by the default
    assert getattr(config, field) == -1.0


def test_a_negative_timedelta_is_rejected_too() -> None:
    config = make_config(renew_deadline=timedelta(seconds=-3))
    with pytest.raises(ConfigError, match="renew_deadline"):
        config.adjust_and_validate()


@pytest.mark.parametrize("field", ["lease_duration", "renew_interval", "renew_deadline"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("10", id="str"),
        pytest.param(None, id="None"),
        pytest.param(True, id="bool"),
        pytest.param([10], id="list"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="-inf"),
    ],
)
def test_a_non_numeric_or_non_finite_duration_is_rejected_at_construction(
    field: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=field):
        make_config(**{field: value})


@pytest.mark.parametrize("value", ["10", math.nan, None])
def test_a_bad_duration_assigned_after_construction_is_rejected_by_validation(
    value: Any,
) -> None:
    config = make_config()
    config.lease_duration = value
    with pytest.raises(ConfigError, match="lease_duration"):
        config.adjust_and_validate()


# ---------------------------------------------------------------- timedelta


def test_timedelta_durations_are_normalised_to_float_seconds() -> None:
    config = make_config(
        lease_duration=timedelta(seconds=12),
        renew_interval=timedelta(milliseconds=1500),
        renew_deadline=timedelta(seconds=9),
    )
    assert durations(config) == (12.0, 1.5, 9.0)
    assert all(type(value) is float for value in durations(config))
    config.adjust_and_validate()
    assert durations(config) == (12.0, 1.5, 9.0)


def test_a_zero_timedelta_selects_the_default() -> None:
    config = make_config(lease_duration=timedelta(0), renew_deadline=timedelta(seconds=0))
    config.adjust_and_validate()
    assert durations(config) == (10.0, 2.0, 8.0)


def test_a_timedelta_assigned_after_construction_is_normalised_by_validation() -> None:
    config = make_config(lease_duration=13, renew_deadline=8)
    config.renew_interval = timedelta(milliseconds=2500)  # type: ignore[assignment]
    config.adjust_and_validate()
    assert config.renew_interval == 2.5
    assert type(config.renew_interval) is float


def test_integer_seconds_become_floats() -> None:
    config = make_config(lease_duration=13, renew_interval=2, renew_deadline=8)
    assert all(type(value) is float for value in durations(config))


# ---------------------------------------------------------------- SafetyWarning


def test_the_reference_defaults_warn_that_they_leave_no_slack() -> None:
    config = make_config()
    with pytest.warns(SafetyWarning) as record:
        config.adjust_and_validate()
    assert len(record) == 1
    message = str(record[0].message)
    assert "slack" in message
    assert "10 - 2 - 8 = 0 s" in message
    assert "'m1'" in message


def test_an_explicit_zero_slack_config_warns_with_its_own_numbers() -> None:
    config = make_config(lease_duration=6, renew_interval=1, renew_deadline=5)
    with pytest.warns(SafetyWarning, match=re.escape("6 - 1 - 5 = 0 s")):
        config.adjust_and_validate()


def test_the_warning_points_at_the_callers_line() -> None:
    config = make_config()
    with pytest.warns(SafetyWarning) as record:
        config.adjust_and_validate()
    assert record[0].filename == __file__


@pytest.mark.usefixtures("no_safety_warning")
@pytest.mark.parametrize(
    ("lease", "interval", "deadline"), [(13, 2, 8), (15, 0, 0), (1, 0.25, 0.5)]
)
def test_a_config_with_slack_does_not_warn(lease: float, interval: float, deadline: float) -> None:
    config = make_config(lease_duration=lease, renew_interval=interval, renew_deadline=deadline)
    config.adjust_and_validate()
    assert config.slack > 0


@pytest.mark.usefixtures("no_safety_warning")
def test_an_invalid_config_raises_without_warning() -> None:
    with pytest.raises(ConfigError, match=exact(STORAGE_MESSAGE)):
        make_config(storage=None).adjust_and_validate()


# ---------------------------------------------------------------- Elector(config)


@pytest.fixture
async def storage(tmp_path: Any) -> Any:
    async with await SQLStorage.open(tmp_path / "election.db") as opened:
        yield opened


async def test_elector_validates_a_copy_and_leaves_the_callers_config_unchanged(
    storage: SQLStorage,
) -> None:
    config = Config(id="m1", storage=storage, leader_callback=lead, lease_duration=15)
    elector = Elector(config)
    assert durations(config) == (15.0, 0.0, 0.0)
    assert durations(elector.config) == (15.0, 2.0, 8.0)
    assert elector.config is not config
    # later changes to the caller's config have no effect on the elector
    config.lease_duration = 99
    assert elector.config.lease_duration == 15.0


async def test_elector_with_reference_defaults_warns_about_slack(storage: SQLStorage) -> None:
    with pytest.warns(SafetyWarning):
        Elector(Config(id="m1", storage=storage, leader_callback=lead))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": ""}, ID_MESSAGE),
        ({"leader_callback": None}, CALLBACK_MESSAGE),
        ({"renew_interval": 11}, INTERVAL_MESSAGE),
        ({"renew_deadline": 9}, DEADLINE_MESSAGE),
    ],
)
async def test_elector_raises_config_error_for_an_invalid_config(
    storage: SQLStorage, overrides: dict[str, Any], message: str
) -> None:
    config = make_config(storage=storage, **overrides)
    before = durations(config)
    with pytest.raises(ConfigError, match=exact(message)):
        Elector(config)
    assert durations(config) == before


async def test_elector_without_storage_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=exact(STORAGE_MESSAGE)):
        Elector(make_config(storage=None))


# ------------------------------------------------------- beyond the reference: types, range


@pytest.mark.parametrize("bad_id", [123, None, b"m1", ["m1"]])
def test_a_non_string_id_is_rejected_saying_a_non_empty_string_is_expected(bad_id: Any) -> None:
    with pytest.raises(ConfigError, match=r"^id must be a non-empty string, got ") as caught:
        make_config(id=bad_id).adjust_and_validate()
    assert type(bad_id).__name__ in str(caught.value)


@pytest.mark.parametrize("field", ["lease_duration", "renew_interval", "renew_deadline"])
@pytest.mark.parametrize("value", [1e-12, 4e-10, 0.000999])
def test_a_positive_duration_below_one_millisecond_is_rejected_naming_the_range(
    field: str, value: float
) -> None:
    # 1e-12 s would round to 0 ns: without this rule it passed and meant "no time at all".
    fields: dict[str, Any] = {"lease_duration": 20, "renew_interval": 2, "renew_deadline": 8}
    config = make_config(**{**fields, field: value})
    with pytest.raises(ConfigError) as caught:
        config.adjust_and_validate()
    message = str(caught.value)
    assert message.startswith(f"{field} must be 0 (the default) or from 0.001 s to ")
    assert f"got {value:g} s" in message


def test_a_lease_beyond_gos_longest_duration_is_rejected() -> None:
    config = make_config(lease_duration=1e12, renew_interval=1, renew_deadline=1)
    with pytest.raises(ConfigError, match=r"^lease_duration must be 0 \(the default\) or from"):
        config.adjust_and_validate()


@pytest.mark.usefixtures("no_safety_warning")
def test_the_longest_allowed_lease_round_trips_through_the_record() -> None:
    from leadersim.config import MAX_DURATION
    from leadersim.record import MAX_LEASE_NS, Member, Record, record_from_json, record_to_json

    config = make_config(lease_duration=MAX_DURATION, renew_interval=1, renew_deadline=1)
    config.adjust_and_validate()
    record = Record("m1", [Member("m1", lease_duration=config.lease_duration)], 1)
    decoded = record_from_json(record_to_json(record), 1)  # not refused as corrupt
    assert round(decoded.members[0].lease_duration * 1e9) <= MAX_LEASE_NS


@pytest.mark.parametrize(
    ("cap", "ok"), [(0, True), (10, True), (3600, True), (9.99, False), (-1, False)]
)
def test_max_member_lease_is_zero_or_at_least_the_own_lease(cap: float, ok: bool) -> None:
    config = make_config(
        lease_duration=10, renew_interval=1, renew_deadline=1, max_member_lease=cap
    )
    if ok:
        config.adjust_and_validate()
        assert config.max_member_lease == cap
    else:
        with pytest.raises(ConfigError, match=r"^max_member_lease must be 0 \(no cap\) or from"):
            config.adjust_and_validate()


def sync_callback() -> None:
    return None


async def callback_with_argument(x: int) -> None:
    return None


class AsyncCallable:
    async def __call__(self) -> None:
        await asyncio.Event().wait()


class SyncStorage:
    def get(self) -> None:
        return None

    def update(self, record: Any, is_leader_changed: bool) -> None:
        return None


class StorageWithWrongUpdate:
    async def get(self) -> None:
        return None

    async def update(self) -> None:
        return None


STORAGE_EXPECTED = (
    "storage must be a Storage (an object with async get() and async "
    "update(record, is_leader_changed) methods), got "
)
CALLBACK_EXPECTED = "LeaderCallback must be an async function (async def) taking no arguments, got "


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"storage": object()}, STORAGE_EXPECTED + "object ", id="object"),
        pytest.param({"storage": SyncStorage()}, STORAGE_EXPECTED + "SyncStorage", id="sync"),
        pytest.param(
            {"storage": StorageWithWrongUpdate()}, STORAGE_EXPECTED, id="update-without-args"
        ),
        pytest.param({"leader_callback": sync_callback}, CALLBACK_EXPECTED, id="sync-callback"),
        pytest.param({"leader_callback": print}, CALLBACK_EXPECTED, id="builtin"),
        pytest.param(
            {"leader_callback": callback_with_argument}, CALLBACK_EXPECTED, id="needs-an-argument"
        ),
        pytest.param({"leader_callback": "lead"}, "LeaderCallback must be an async", id="string"),
    ],
)
async def test_elector_rejects_what_it_cannot_run_when_it_is_built(
    storage: SQLStorage, overrides: dict[str, Any], message: str
) -> None:
    fields: dict[str, Any] = {"storage": storage, "lease_duration": 15}
    fields.update(overrides)
    config = make_config(**fields)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        Elector(config)


@pytest.mark.usefixtures("no_safety_warning")
async def test_elector_accepts_every_kind_of_async_callable(storage: SQLStorage) -> None:
    import functools

    async def lead_with(value: int) -> None:
        await asyncio.Event().wait()

    for callback in (lead, AsyncCallable(), functools.partial(lead_with, 1)):
        Elector(make_config(storage=storage, leader_callback=callback, lease_duration=15))


def test_adjust_and_validate_alone_still_accepts_placeholders() -> None:
    # Scenarios validate their durations with placeholder parts; only the Elector checks
    # the parts themselves (test above).
    with pytest.warns(SafetyWarning):
        Config("n1", storage=object(), leader_callback=print).adjust_and_validate()  # type: ignore[arg-type]
