"""The shared record: Go-compatible JSON and the pure election rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadersim import CorruptRecordError, Member, Record, record_from_json, record_to_json
from leadersim.record import (
    MAX_LEASE_NS,
    MAX_VERSION,
    SUSPICIOUS_LEASE,
    RenewTracker,
    decode_stored_record,
    format_go_time,
    parse_go_time,
    plan_release,
    plan_renewal,
    record_warnings,
)

REFERENCE_JSON = (
    '{"leader_id":"m1","members":[{"id":"m1","name":"m1","address":"10.0.0.1:10240",'
    '"lease_duration":10000000000,"renew_time":"2024-05-01T12:00:03.123456789+08:00"}]}'
)
PLUS_8 = timezone(timedelta(hours=8))
T0 = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC)


def member(member_id: str, second: int = 0, lease: float = 10.0, **fields: Any) -> Member:
    """A member whose renew_time is T0 + ``second`` seconds."""
    return Member(
        member_id,
        fields.pop("name", member_id),
        fields.pop("address", f"{member_id}:10240"),
        lease,
        T0 + timedelta(seconds=second),
        **fields,
    )


def snapshot(record: Record) -> tuple[str, list[Member], int]:
    return (record.leader_id, list(record.members), record.version)


# ================================================================ JSON


def test_the_reference_record_decodes_with_lease_offset_and_nanoseconds() -> None:
    record = record_from_json(REFERENCE_JSON)
    assert record.leader_id == "m1"
    assert len(record.members) == 1
    m1 = record.members[0]
    assert (m1.id, m1.name, m1.address) == ("m1", "m1", "10.0.0.1:10240")
    assert m1.lease_duration == 10.0
    assert m1.renew_time == datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=PLUS_8)
    assert m1.renew_time.utcoffset() == timedelta(hours=8)
    assert m1.renew_time_ns == 789
    assert record.find_member("m1") is m1


def test_our_record_encodes_with_the_reference_keys_order_and_units() -> None:
    record = Record(
        "m1",
        [
            Member(
                "m1",
                "m1",
                "10.0.0.1:10240",
                10.0,
                datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=PLUS_8),
                789,
            )
        ],
    )
    text = record_to_json(record)
    assert text == REFERENCE_JSON
    data = json.loads(text)
    assert list(data) == ["leader_id", "members"]
    assert list(data["members"][0]) == ["id", "name", "address", "lease_duration", "renew_time"]
    assert data["members"][0]["lease_duration"] == 10_000_000_000
    assert type(data["members"][0]["lease_duration"]) is int


def test_a_round_trip_reproduces_the_exact_text() -> None:
    assert record_to_json(record_from_json(REFERENCE_JSON)) == REFERENCE_JSON
    assert record_to_json(record_from_json(REFERENCE_JSON.encode())) == REFERENCE_JSON


def test_a_sub_second_lease_is_encoded_as_integer_nanoseconds() -> None:
    record = Record("", [member("m1", lease=1.5), member("m2", lease=0.000000001)])
    leases = [m["lease_duration"] for m in json.loads(record_to_json(record))["members"]]
    assert leases == [1_500_000_000, 1]


def test_renewing_a_member_keeps_every_other_members_renew_time_text() -> None:
    go_member = (
        '{"id":"go","name":"go","address":"10.0.0.2:1","lease_duration":10000000000,'
        '"renew_time":"2024-05-01T07:30:00.000000001-04:30"}'
    )
    text = '{"leader_id":"go","members":[' + go_member + "]}"
    read = record_from_json(text, version=4)
    plan = plan_renewal(read, member("py"), T0, is_expired=lambda m: False, may_campaign=True)
    written = record_to_json(plan.record)
    assert written.startswith('{"leader_id":"go","members":[' + go_member + ",")


@pytest.mark.parametrize(
    ("moment", "extra_nanos", "text"),
    [
        (datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=UTC), 700, "2024-05-01T12:00:03.1234567Z"),
        (datetime(2024, 5, 1, 12, 0, 3, 100000, tzinfo=UTC), 0, "2024-05-01T12:00:03.1Z"),
        (datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC), 0, "2024-05-01T12:00:03Z"),
        (datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC), 1, "2024-05-01T12:00:03.000000001Z"),
        (datetime(2024, 5, 1, 12, 0, 3, 10, tzinfo=UTC), 0, "2024-05-01T12:00:03.00001Z"),
        (
            datetime(2024, 5, 1, 12, 0, 3, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
            0,
            "2024-05-01T12:00:03-05:30",
        ),
        (
            datetime(2024, 5, 1, 12, 0, 3, 500000, tzinfo=timezone(timedelta(0))),
            0,
            "2024-05-01T12:00:03.5Z",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), 0, "0001-01-01T00:00:00Z"),
    ],
)
def test_times_are_formatted_like_go_rfc3339nano(
    moment: datetime, extra_nanos: int, text: str
) -> None:
    assert format_go_time(moment, extra_nanos) == text
    parsed, nanos = parse_go_time(text)
    assert parsed == moment
    assert parsed.utcoffset() == moment.utcoffset()
    assert nanos == extra_nanos


def test_a_naive_renew_time_is_taken_as_utc() -> None:
    m = Member("m1", renew_time=datetime(2024, 5, 1, 12, 0, 3))
    assert m.renew_time.utcoffset() == timedelta(0)
    assert json.loads(record_to_json(Record("", [m])))["members"][0]["renew_time"] == (
        "2024-05-01T12:00:03Z"
    )


def test_an_empty_record_encodes_members_as_null() -> None:
    assert record_to_json(Record()) == '{"leader_id":"","members":null}'
    assert record_to_json(Record("m1", [], version=3)) == '{"leader_id":"m1","members":null}'


@pytest.mark.parametrize(
    "text", ['{"leader_id":"","members":null}', '{"leader_id":"","members":[]}', "{}"]
)
def test_decoding_accepts_null_or_empty_members(text: str) -> None:
    record = record_from_json(text)
    assert record.leader_id == ""
    assert record.members == []


def test_the_version_is_never_in_the_json() -> None:
    record = Record("m1", [member("m1")], version=42)
    data = json.loads(record_to_json(record))
    assert "version" not in data
    assert "42" not in record_to_json(record)


def test_the_version_comes_from_the_caller_not_from_the_json() -> None:
    text = '{"leader_id":"m1","members":null,"version":99}'
    assert record_from_json(text, version=7).version == 7
    assert record_from_json(text).version == 0


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("{", id="truncated"),
        pytest.param("not json", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param("[]", id="array"),
        pytest.param('"record"', id="string"),
        pytest.param('{"leader_id":1,"members":null}', id="leader-id-int"),
        pytest.param('{"leader_id":"","members":{}}', id="members-object"),
        pytest.param('{"leader_id":"","members":"m1"}', id="members-string"),
        pytest.param('{"leader_id":"","members":[1]}', id="member-int"),
        pytest.param('{"leader_id":"","members":[{"name":"m1"}]}', id="member-without-id"),
        pytest.param('{"members":[{"id":7}]}', id="member-id-int"),
        pytest.param('{"members":[{"id":"m1","name":3}]}', id="name-int"),
        pytest.param('{"members":[{"id":"m1","lease_duration":"10s"}]}', id="lease-string"),
        pytest.param('{"members":[{"id":"m1","lease_duration":1.5}]}', id="lease-float"),
        pytest.param('{"members":[{"id":"m1","lease_duration":true}]}', id="lease-bool"),
        pytest.param('{"members":[{"id":"m1","renew_time":0}]}', id="renew-time-int"),
        pytest.param('{"members":[{"id":"m1","renew_time":"yesterday"}]}', id="renew-time-word"),
        pytest.param(
            '{"members":[{"id":"m1","renew_time":"2024-05-01 12:00:03Z"}]}', id="space-not-T"
        ),
        pytest.param(
            '{"members":[{"id":"m1","renew_time":"2024-05-01T12:00:03"}]}', id="no-offset"
        ),
        pytest.param(
            '{"members":[{"id":"m1","renew_time":"2024-13-01T12:00:03Z"}]}', id="month-13"
        ),
        pytest.param(
            '{"members":[{"id":"m1","renew_time":"2024-05-01T12:00:03.1234567890Z"}]}',
            id="ten-fraction-digits",
        ),
        pytest.param(
            '{"members":[{"id":"m1","renew_time":"2024-05-01T12:00:03+24:00"}]}',
            id="offset-24h",
        ),
    ],
)
def test_a_corrupt_record_raises_corrupt_record_error(text: str | bytes) -> None:
    with pytest.raises(CorruptRecordError, match="invalid election record"):
        record_from_json(text)


# ---------------------------------------------------------------- property: round trip

ids = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
renew_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)
# Up to ~11.5 days of lease in nanoseconds: exactly representable through float seconds.
lease_nanos = st.integers(min_value=0, max_value=10**15)


@st.composite
def members(draw: st.DrawFn) -> Member:
    return Member(
        draw(ids),
        draw(ids),
        draw(ids),
        draw(lease_nanos) / 1e9,
        draw(renew_times),
        draw(st.integers(min_value=0, max_value=999)),
    )


records = st.builds(
    Record,
    leader_id=ids,
    members=st.lists(members(), max_size=5),
    version=st.integers(min_value=0, max_value=2**62),
)


@given(records)
def test_encode_then_decode_round_trips_any_record(record: Record) -> None:
    text = record_to_json(record)
    decoded = record_from_json(text, version=record.version)
    assert decoded == record
    for ours, theirs in zip(record.members, decoded.members, strict=True):
        assert theirs.renew_time.utcoffset() == ours.renew_time.utcoffset()
        assert theirs.renew_time_ns == ours.renew_time_ns
    assert record_to_json(decoded) == text


@st.composite
def go_renew_times(draw: st.DrawFn) -> str:
    """A renew_time as Go's RFC3339Nano writes it, built digit by digit."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    nanos = draw(st.integers(min_value=0, max_value=999_999_999))
    offset = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    fraction = f"{nanos:09d}".rstrip("0")
    sign = "-" if offset < 0 else "+"
    zone = "Z" if offset == 0 else f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        + (f".{fraction}" if fraction else "")
        + zone
    )


@given(st.lists(st.tuples(ids, go_renew_times(), lease_nanos), max_size=4), ids)
def test_a_go_written_record_is_re_encoded_byte_for_byte(
    go_members: list[tuple[str, str, int]], leader_id: str
) -> None:
    data = {
        "leader_id": leader_id,
        "members": [
            {"id": i, "name": i, "address": i, "lease_duration": lease, "renew_time": renew}
            for i, renew, lease in go_members
        ]
        or None,
    }
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert record_to_json(record_from_json(text)) == text


# ================================================================ RenewTracker


def test_a_newcomer_is_noted_as_freshly_renewed_however_old_its_renew_time() -> None:
    tracker = RenewTracker()
    ancient = Member("m1", lease_duration=10.0, renew_time=datetime(1, 1, 1, tzinfo=UTC))
    tracker.observe(Record("m1", [ancient]), now=500.0)
    assert tracker.observed_at("m1") == 500.0
    assert not tracker.is_expired(ancient, 500.0)
    assert tracker.expires_at(ancient) == 510.0


def test_a_member_expires_only_after_its_own_lease_on_the_observers_clock() -> None:
    tracker = RenewTracker()
    short, long = member("short", lease=3.0), member("long", lease=10.0)
    tracker.observe(Record("", [short, long]), now=100.0)
    assert not tracker.is_expired(short, 103.0)
    assert tracker.is_expired(short, 103.001)
    assert not tracker.is_expired(long, 103.001)
    assert not tracker.is_expired(long, 110.0)
    assert tracker.is_expired(long, 110.001)


def test_expiry_ignores_how_far_the_renew_time_is_from_the_observers_clock() -> None:
    # renew_time values from a machine whose clock is years ahead or behind
    ahead = Member("ahead", lease_duration=5.0, renew_time=datetime(2090, 1, 1, tzinfo=UTC))
    behind = Member("behind", lease_duration=5.0, renew_time=datetime(1990, 1, 1, tzinfo=UTC))
    tracker = RenewTracker()
    tracker.observe(Record("", [ahead, behind]), now=0.0)
    for m in (ahead, behind):
        assert not tracker.is_expired(m, 5.0)
        assert tracker.is_expired(m, 5.5)


def test_a_changed_renew_time_refreshes_the_member() -> None:
    tracker = RenewTracker()
    tracker.observe(Record("", [member("m1", second=0)]), now=100.0)
    renewed = member("m1", second=2)
    tracker.observe(Record("", [renewed]), now=105.0)
    assert tracker.observed_at("m1") == 105.0
    assert not tracker.is_expired(renewed, 114.9)
    assert tracker.is_expired(renewed, 115.1)


def test_a_renew_time_moving_backwards_is_still_a_renewal() -> None:
    tracker = RenewTracker()
    tracker.observe(Record("", [member("m1", second=60)]), now=100.0)
    stepped_back = member("m1", second=-3600)
    tracker.observe(Record("", [stepped_back]), now=108.0)
    assert not tracker.is_expired(stepped_back, 115.0)


def test_a_nanosecond_change_in_renew_time_is_a_renewal() -> None:
    tracker = RenewTracker()
    tracker.observe(Record("", [member("m1", renew_time_ns=1)]), now=100.0)
    tracker.observe(Record("", [member("m1", renew_time_ns=2)]), now=109.0)
    assert tracker.observed_at("m1") == 109.0


def test_an_unchanged_renew_time_does_not_refresh_the_member() -> None:
    tracker = RenewTracker()
    stale = member("m1", second=0)
    tracker.observe(Record("", [stale]), now=100.0)
    for now in (103.0, 106.0, 109.0):
        tracker.observe(Record("", [stale]), now=now)
    assert tracker.observed_at("m1") == 100.0
    assert tracker.is_expired(stale, 110.5)


def test_a_removed_member_is_forgotten_and_noted_fresh_when_it_returns() -> None:
    tracker = RenewTracker()
    m1, m2 = member("m1"), member("m2")
    tracker.observe(Record("", [m1, m2]), now=100.0)
    tracker.observe(Record("", [m2]), now=101.0)
    assert tracker.observed_at("m1") is None
    assert tracker.expires_at(m1) is None
    assert tracker.observed_at("m2") == 100.0
    # back with the very same renew_time: a newcomer again, not an old stale entry
    tracker.observe(Record("", [m1, m2]), now=150.0)
    assert tracker.observed_at("m1") == 150.0
    assert not tracker.is_expired(m1, 155.0)


# ================================================================ plan_renewal

NOW_WALL = datetime(2024, 5, 1, 4, 1, 0, tzinfo=UTC)


def expired_ids(*member_ids: str) -> Any:
    return lambda m: m.id in member_ids


def test_renewal_prunes_expired_members_and_keeps_the_leader() -> None:
    read = Record("m1", [member("m1"), member("m2"), member("me"), member("m3")], version=5)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids("m2", "m3"), True)
    assert [m.id for m in plan.record.members] == ["m1", "me"]
    assert [m.id for m in plan.expired] == ["m2", "m3"]
    assert plan.record.leader_id == "m1"
    assert not plan.leader_changed
    assert not plan.campaigned
    assert plan.record.version == 5


def test_renewal_clears_the_slot_when_the_leader_expired() -> None:
    read = Record("m1", [member("m1"), member("me")], version=2)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids("m1"), may_campaign=False)
    assert plan.record.leader_id == ""
    assert plan.leader_changed
    assert not plan.campaigned
    assert [m.id for m in plan.record.members] == ["me"]


def test_renewal_takes_the_slot_of_an_expired_leader_when_allowed() -> None:
    read = Record("m1", [member("m1"), member("me")], version=2)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids("m1"), may_campaign=True)
    assert plan.record.leader_id == "me"
    assert plan.leader_changed
    assert plan.campaigned


def test_renewal_refreshes_only_the_renew_time_of_an_existing_self() -> None:
    old_self = Member("me", "old-name", "old:1", 10.0, T0, renew_time_ns=123)
    read = Record("m1", [member("m0"), old_self, member("m1")], version=9)
    me_now = Member("me", "new-name", "new:2", 20.0)
    plan = plan_renewal(read, me_now, NOW_WALL, expired_ids(), may_campaign=True)
    assert [m.id for m in plan.record.members] == ["m0", "me", "m1"]
    assert plan.record.members[1] == Member("me", "old-name", "old:1", 10.0, NOW_WALL, 0)
    assert plan.record.members[0] == read.members[0]
    assert plan.record.members[2] == read.members[2]


def test_renewal_appends_a_missing_self_at_the_end() -> None:
    read = Record("m1", [member("m1"), member("m2")], version=3)
    me = Member("me", "me", "me:1", 7.5)
    plan = plan_renewal(read, me, NOW_WALL, expired_ids(), may_campaign=True)
    assert [m.id for m in plan.record.members] == ["m1", "m2", "me"]
    assert plan.record.members[-1] == Member("me", "me", "me:1", 7.5, NOW_WALL)
    assert plan.record.leader_id == "m1"
    assert not plan.leader_changed


def test_renewal_drops_and_re_adds_an_expired_self() -> None:
    read = Record("me", [member("me", name="stale"), member("m2")], version=3)
    plan = plan_renewal(read, member("me", name="fresh"), NOW_WALL, expired_ids("me"), False)
    assert [m.id for m in plan.expired] == ["me"]
    assert [m.id for m in plan.record.members] == ["m2", "me"]
    assert plan.record.members[-1].name == "fresh"
    assert plan.record.members[-1].renew_time == NOW_WALL
    assert plan.record.leader_id == ""
    assert plan.leader_changed


def test_renewal_on_an_empty_record_creates_self_as_leader() -> None:
    plan = plan_renewal(Record(), member("me"), NOW_WALL, expired_ids(), may_campaign=True)
    assert plan.record.leader_id == "me"
    assert [m.id for m in plan.record.members] == ["me"]
    assert plan.campaigned
    assert plan.leader_changed
    assert plan.record.version == 0


def test_renewal_does_not_campaign_when_not_allowed() -> None:
    read = Record("", [member("m1")], version=1)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids(), may_campaign=False)
    assert plan.record.leader_id == ""
    assert not plan.campaigned
    assert not plan.leader_changed


def test_renewal_does_not_campaign_when_the_slot_is_held() -> None:
    read = Record("m1", [member("m1")], version=1)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids(), may_campaign=True)
    assert plan.record.leader_id == "m1"
    assert not plan.campaigned
    assert not plan.leader_changed


def test_a_leader_renewing_itself_keeps_the_slot_without_a_change() -> None:
    read = Record("me", [member("me")], version=6)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids(), may_campaign=True)
    assert plan.record.leader_id == "me"
    assert not plan.leader_changed
    assert not plan.campaigned


def test_a_leader_inside_its_resign_window_gives_the_slot_up() -> None:
    # The reference: while resignUntil is in the future, a renewal that finds its own id
    # in the slot clears it (a resign whose release did not stick is finished here).
    read = Record("me", [member("me"), member("m2")], version=6)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids(), may_campaign=False)
    assert plan.record.leader_id == ""
    assert plan.leader_changed
    assert not plan.campaigned
    assert [m.id for m in plan.record.members] == ["me", "m2"]


def test_a_follower_inside_its_resign_window_leaves_another_leader_alone() -> None:
    read = Record("m2", [member("me"), member("m2")], version=6)
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids(), may_campaign=False)
    assert plan.record.leader_id == "m2"
    assert not plan.leader_changed


def test_renewal_does_not_mutate_the_record_it_read() -> None:
    read = Record("m1", [member("m1"), member("me"), member("m2")], version=4)
    before = snapshot(read)
    members_list = read.members
    plan = plan_renewal(read, member("me"), NOW_WALL, expired_ids("m1"), may_campaign=True)
    assert snapshot(read) == before
    assert read.members is members_list
    assert plan.record is not read
    assert plan.record.members is not read.members


# ================================================================ plan_release


def test_a_leader_releasing_on_shutdown_clears_the_slot_and_leaves() -> None:
    read = Record("me", [member("m1"), member("me"), member("m2")], version=8)
    plan = plan_release(read, "me", remove_self=True)
    assert plan.record.leader_id == ""
    assert plan.leader_changed
    assert [m.id for m in plan.record.members] == ["m1", "m2"]
    assert plan.record.version == 8


def test_a_follower_releasing_on_shutdown_leaves_the_leader_alone() -> None:
    read = Record("m1", [member("m1"), member("me")], version=8)
    plan = plan_release(read, "me", remove_self=True)
    assert plan.record.leader_id == "m1"
    assert not plan.leader_changed
    assert [m.id for m in plan.record.members] == ["m1"]


def test_a_resigning_leader_clears_the_slot_but_stays_a_member() -> None:
    read = Record("me", [member("me"), member("m1")], version=8)
    plan = plan_release(read, "me", remove_self=False)
    assert plan.record.leader_id == ""
    assert plan.leader_changed
    assert plan.record.members == read.members


def test_release_does_not_mutate_the_record_it_read() -> None:
    read = Record("me", [member("me"), member("m1")], version=8)
    before = snapshot(read)
    plan = plan_release(read, "me", remove_self=True)
    assert snapshot(read) == before
    assert plan.record is not read


def test_equal_instants_in_two_offsets_keep_their_own_encodings() -> None:
    # Found by Hypothesis: members compare equal for one instant in two offsets, so a
    # memo keyed by the member alone gave the second one the first one's offset.
    instant = datetime(1997, 6, 30, 22, 59, 59, 999999, tzinfo=UTC)
    shifted = instant.astimezone(timezone(timedelta(hours=-5, minutes=-26)))
    west = Member("a", lease_duration=1.0, renew_time=shifted)
    utc = Member("a", lease_duration=1.0, renew_time=instant)
    assert west == utc
    assert '"renew_time":"1997-06-30T17:33:59.999999-05:26"' in west.to_json()
    assert '"renew_time":"1997-06-30T22:59:59.999999Z"' in utc.to_json()


# ================================================================ stored rows (every back-end)

EMPTY_JSON = '{"leader_id":"","members":null}'


@pytest.mark.parametrize(
    "version", ["abc", b"\x01\x02", b"7", 2.5, -2, 0, True, None, MAX_VERSION + 1, "7"]
)
def test_a_stored_version_that_is_not_an_integer_from_one_is_corrupt(version: object) -> None:
    # -2 and 2.5 used to pass (int(2.5) == 2): every CAS then conflicted for ever.
    with pytest.raises(CorruptRecordError) as caught:
        decode_stored_record(version, EMPTY_JSON, table="jobs_election", row="id = 1")
    message = str(caught.value)
    assert message.startswith("table 'jobs_election': the election record (id = 1) is corrupt")
    assert "left as it is" in message
    assert f"invalid version {version!r}" in message


@pytest.mark.parametrize("version", [1, 7, MAX_VERSION])
def test_a_stored_version_from_one_to_the_bigint_limit_decodes(version: int) -> None:
    record = decode_stored_record(version, EMPTY_JSON, table="t", row="id = 1")
    assert record == Record(version=version)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_record_json_is_corrupt_not_a_recursion_error(depth: int) -> None:
    text = "[" * depth + "]" * depth
    with pytest.raises(CorruptRecordError, match="nested too deeply"):
        record_from_json(text)
    with pytest.raises(CorruptRecordError, match=r"^table 't': "):
        decode_stored_record(3, '{"leader_id":' + text + "}", table="t", row="id = 1")


@pytest.mark.parametrize("text", [5, 2.5, None])
def test_a_record_column_that_is_not_text_is_corrupt(text: object) -> None:
    with pytest.raises(CorruptRecordError, match="must be JSON text"):
        decode_stored_record(3, text, table="t", row="id = 1")


@pytest.mark.parametrize("lease_ns", [MAX_LEASE_NS + 1, 10**30, -(10**30)])
def test_a_lease_the_reference_cannot_decode_is_corrupt(lease_ns: int) -> None:
    # Go's int64 Duration: json.Unmarshal in a reference member refuses it too.
    text = json.dumps({"leader_id": "a", "members": [{"id": "a", "lease_duration": lease_ns}]})
    with pytest.raises(CorruptRecordError, match="beyond the longest lease"):
        record_from_json(text)


def test_the_longest_int64_lease_still_decodes() -> None:
    text = json.dumps({"leader_id": "", "members": [{"id": "a", "lease_duration": MAX_LEASE_NS}]})
    assert record_from_json(text).members[0].lease_duration == MAX_LEASE_NS / 1e9


# ================================================================ suspicious records


def test_a_consistent_record_has_no_warnings() -> None:
    assert record_warnings(Record("a", [member("a"), member("b")])) == []
    assert record_warnings(Record()) == []


def test_a_leader_id_naming_no_member_is_reported() -> None:
    (problem,) = record_warnings(Record("ghost", [member("a")]))
    assert "leader_id 'ghost' names no member" in problem


def test_a_lease_over_a_day_is_reported_and_one_day_is_not() -> None:
    record = Record("", [member("a", lease=SUSPICIOUS_LEASE), member("b", lease=1e20)])
    (problem,) = record_warnings(record)
    assert problem.startswith("member 'b' advertises a lease of 1e+20 s")


def test_the_tracker_caps_an_advertised_lease_only_when_asked() -> None:
    huge = member("a", lease=1e20)
    reference, capped = RenewTracker(), RenewTracker(max_lease=30.0)
    for tracker in (reference, capped):
        tracker.observe(Record("a", [huge]), 100.0)
    assert not reference.is_expired(huge, 100.0 + 1e6)
    assert reference.expires_at(huge) == 100.0 + 1e20
    assert not capped.is_expired(huge, 130.0)
    assert capped.is_expired(huge, 130.001)
    assert capped.expires_at(huge) == 130.0
    short = member("b", lease=5.0)  # a lease under the cap is the member's own
    capped.observe(Record("a", [huge, short]), 200.0)
    assert capped.expires_at(short) == 205.0


def test_an_orphan_leader_expires_one_own_lease_after_it_was_first_seen() -> None:
    tracker = RenewTracker()
    orphaned = Record("ghost", [member("a")])
    tracker.observe(orphaned, 10.0)
    tracker.observe(Record("ghost", [member("a", second=2)]), 14.0)  # still the same orphan
    assert not tracker.orphan_expired(orphaned, 20.0, lease=10.0)
    assert tracker.orphan_expired(orphaned, 20.001, lease=10.0)
    # a different orphan starts its own count; a real leader is never an orphan
    tracker.observe(Record("phantom", [member("a")]), 20.0)
    assert not tracker.orphan_expired(Record("phantom", [member("a")]), 25.0, lease=10.0)
    assert not tracker.orphan_expired(Record("a", [member("a")]), 99.0, lease=10.0)
    tracker.observe(Record("a", [member("a")]), 30.0)
    tracker.observe(Record("phantom", [member("a")]), 31.0)
    assert not tracker.orphan_expired(Record("phantom", [member("a")]), 40.0, lease=10.0)


def test_renewal_keeps_an_orphan_slot_unless_told_to_clear_it() -> None:
    read = Record("ghost", [member("a")], version=3)
    me = member("b")
    kept = plan_renewal(read, me, T0, lambda m: False, may_campaign=True)
    assert kept.record.leader_id == "ghost"  # the reference: no leader, for ever
    assert not kept.campaigned
    assert not kept.leader_changed
    cleared = plan_renewal(read, me, T0, lambda m: False, may_campaign=True, clear_orphan=True)
    assert cleared.record.leader_id == "b"
    assert cleared.campaigned
    assert cleared.leader_changed
    held = Record("a", [member("a")], version=3)  # a slot held by a member is not an orphan
    plan = plan_renewal(held, me, T0, lambda m: False, True, clear_orphan=True)
    assert plan.record.leader_id == "a"
