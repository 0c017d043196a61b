"""The fast paths of the speed work give the answers of the slow paths they replace.

- :func:`leadersim.record.read_back` (what the simulated server hands its next reader
  instead of decoding the row it wrote) equals decoding the written JSON;
- the incremental :meth:`RenewTracker.observe` notes what a tracker doing the full pass at
  every read notes, and :meth:`RenewTracker.expiry_test` answers as ``is_expired``;
- the simulated server still reads the table: a row changed behind its back is decoded.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import simpy
from hypothesis import given
from hypothesis import strategies as st

from leadersim.record import (
    Member,
    Record,
    RenewTracker,
    plan_renewal,
    read_back,
    record_from_json,
    record_to_json,
)
from leadersim.sim.storage import StorageServer

BASE = datetime(2024, 5, 1, tzinfo=UTC)
leases = st.sampled_from([0.1, 1.0 / 3, 2.5e-10, 10.0, 12345.678901234])
offsets = st.sampled_from([0, 330, -480])


@st.composite
def records(draw: st.DrawFn) -> Record:
    count = draw(st.integers(min_value=0, max_value=6))
    members = []
    for i in range(count):
        zone = timezone(timedelta(minutes=draw(offsets)))
        moment = (BASE + timedelta(microseconds=draw(st.integers(0, 10**9)))).astimezone(zone)
        members.append(
            Member(f"m{i}", f"name{i}", f"m{i}:1", draw(leases), moment, draw(st.integers(0, 999)))
        )
    return Record(draw(st.sampled_from(["", "m0", "gone"])), members, 0)


@given(records(), st.integers(min_value=1, max_value=2**62))
def test_read_back_is_what_decoding_the_written_json_gives(record: Record, version: int) -> None:
    expected = record_from_json(record_to_json(record), version)
    got = read_back(record, version)
    assert got == expected
    for ours, theirs in zip(got.members, expected.members, strict=True):
        # Fields equality does not see: the exact lease float, the offset, the nanos.
        assert ours.lease_duration.hex() == theirs.lease_duration.hex()
        assert ours.renew_time.utcoffset() == theirs.renew_time.utcoffset()
        assert ours.renew_time_ns == theirs.renew_time_ns
    assert record_to_json(got) == record_to_json(expected)


def _full_pass(tracker: RenewTracker) -> None:
    tracker._present = None  # forces the full pass at the next observe


def test_incremental_observe_notes_what_the_full_pass_notes() -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(8)]
    pool = {i: Member(i, i, i, rng.choice([3.0, 10.0]), BASE) for i in ids}
    members = [pool[i] for i in ids[:5]]
    fast, slow = RenewTracker(), RenewTracker(max_lease=math.inf)
    now = 0.0
    for step in range(400):
        now += rng.uniform(0.0, 1.5)
        choice = rng.random()
        members = list(members)
        if choice < 0.6 and members:  # one member renews (a new object)
            k = rng.randrange(len(members))
            members[k] = members[k].renewed(BASE + timedelta(seconds=now))
        elif choice < 0.7 and members:  # one leaves
            members.pop(rng.randrange(len(members)))
        elif choice < 0.8:  # one joins (or a duplicate id appears)
            members.append(pool[rng.choice(ids)])
        elif choice < 0.85:  # reordered
            rng.shuffle(members)
        elif choice < 0.9 and members:  # an equal but distinct object
            k = rng.randrange(len(members))
            m = members[k]
            members[k] = Member(m.id, m.name, m.address, m.lease_duration, m.renew_time)
        record = Record(rng.choice(["", "n0", "zz"]), members, step)
        fast.observe(record, now)
        _full_pass(slow)
        slow.observe(record, now)
        replay = f"replay: seed={seed} step={step}"
        assert fast._notes() == slow._notes(), replay
        assert fast._orphan == slow._orphan, replay
        probe = now + rng.uniform(0, 12)
        test = fast.expiry_test(probe)
        for m in [*members, *pool.values()]:
            assert test(m) == slow.is_expired(m, probe), replay
            assert fast.expires_at(m) == slow.expires_at(m), replay
        everyone = [*members, *pool.values()]
        assert test.flags(everyone) == [slow.is_expired(m, probe) for m in everyone], replay
        # The renewal planned with the tracker's test is the one planned member by member.
        me = pool[rng.choice(ids)]
        wall = BASE + timedelta(seconds=now)
        fast_plan = plan_renewal(record, me, wall, test, may_campaign=True)
        slow_plan = plan_renewal(
            record, me, wall, lambda m, p=probe: slow.is_expired(m, p), may_campaign=True
        )
        assert fast_plan == slow_plan, replay


def test_expiry_test_applies_the_lease_cap() -> None:
    tracker = RenewTracker(max_lease=5.0)
    m = Member("a", lease_duration=60.0, renew_time=BASE)
    tracker.observe(Record("a", [m], 1), 100.0)
    assert not tracker.expiry_test(105.0)(m)
    assert tracker.expiry_test(105.1)(m) == tracker.is_expired(m, 105.1) is True
    assert tracker.expiry_test(0.0)(Member("unseen")) is True
    assert tracker.expiry_test(105.1).flags([m, Member("unseen"), m]) == [True, True, True]
    assert tracker.expiry_test(105.0).flags([m, Member("unseen")]) == [False, True]


def test_read_back_shares_only_the_members_that_decode_to_themselves() -> None:
    exact = Member("a", "a", "a:1", 10.0, BASE + timedelta(microseconds=5))
    int_lease = Member("b", "b", "b:1", 10, BASE)  # type: ignore[arg-type]
    zoned = Member("c", "c", "c:1", 2.5e-10, BASE.astimezone(timezone(timedelta(hours=8))))
    got = read_back(Record("a", [exact, int_lease, zoned], 0), 3)
    assert got.members[0] is exact
    assert got.members[1] is not int_lease
    assert type(got.members[1].lease_duration) is float
    assert got.members[2] is not zoned
    assert got.members[2].lease_duration != zoned.lease_duration
    assert got == record_from_json(record_to_json(Record("a", [exact, int_lease, zoned])), 3)


def test_the_server_decodes_a_row_changed_behind_its_back() -> None:
    server = StorageServer(simpy.Environment())
    try:
        written = Record("a", [Member("a", "a", "a:1", 10.0, BASE)], 0)
        server.execute_update(written)
        assert server.execute_get() == Record("a", written.members, 1)
        # Another writer on the same table: the next read shows its row, not the cache.
        other = Record("b", [Member("b", "b", "b:1", 3.0, BASE)], 0)
        server.db.execute(
            "UPDATE election SET version = 7, record = ? WHERE id = 1", (record_to_json(other),)
        )
        assert server.execute_get() == Record("b", other.members, 7)
        # And the reader's copy is its own: changing it leaves the server's truth alone.
        read = server.execute_get()
        read.members.clear()
        assert server.execute_get().members == other.members
    finally:
        server.db.close()
