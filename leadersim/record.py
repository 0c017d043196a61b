"""The shared election record and the pure rules that act on it.

:class:`Member` and :class:`Record` mirror the reference types; their JSON form is
wire-compatible with the reference (a Python member and a Go member can share one table).
The rules of the election — when a member is expired, what the next record is, who may
campaign, what a release writes — are small pure functions here, tested without I/O;
the elector calls them and never re-derives them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import compress, repeat
from operator import is_, is_not, not_
from typing import Any, Final

from leadersim.errors import CorruptRecordError

__all__ = [
    "MAX_LEASE_NS",
    "MAX_VERSION",
    "SUSPICIOUS_LEASE",
    "Member",
    "Record",
    "ReleasePlan",
    "RenewPlan",
    "RenewTracker",
    "ExpiryTest",
    "decode_stored_record",
    "format_go_time",
    "parse_go_time",
    "plan_release",
    "plan_renewal",
    "read_back",
    "record_from_json",
    "record_to_json",
    "record_warnings",
]

_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_NANOS_PER_SECOND = 1_000_000_000

#: The longest lease a record can carry, in integer nanoseconds: Go's ``time.Duration`` is
#: an int64, so a reference member cannot decode a longer one (about 292 years).
MAX_LEASE_NS: Final = 2**63 - 1
#: The highest stored version a member accepts: ``version`` is a ``bigint`` and each
#: write stores ``version + 1``, which must fit too.
MAX_VERSION: Final = 2**63 - 2
#: A member advertising a lease longer than this (seconds; one day) is reported as
#: suspicious by :func:`record_warnings`: it would hold the slot a day after it died.
SUSPICIOUS_LEASE: Final = 86_400.0

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_OFFSETS: dict[int, timezone] = {0: UTC}


def _offset_zone(minutes: int) -> timezone:
    zone = _OFFSETS.get(minutes)
    if zone is None:
        zone = _OFFSETS[minutes] = timezone(timedelta(minutes=minutes))
    return zone


def parse_go_time(text: str) -> tuple[datetime, int]:
    """Parse an RFC 3339 timestamp as Go writes it, keeping nanoseconds and the offset.

    Args:
        text: e.g. ``"2024-05-01T12:00:03.123456789+08:00"``.

    Returns:
        The aware datetime (microsecond precision, the text's own UTC offset) and the
        nanoseconds beyond its microseconds (0-999).

    Raises:
        ValueError: ``text`` is not an RFC 3339 timestamp.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    nanos = int(frac.ljust(9, "0")) if frac else 0
    minutes = 0 if zulu else (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second),
        nanos // 1000, tzinfo=_offset_zone(minutes),
    )  # fmt: skip
    return moment, nanos % 1000


def format_go_time(moment: datetime, extra_nanos: int = 0) -> str:
    """Format like Go's ``time.RFC3339Nano``: trailing zeros trimmed, ``Z`` for UTC.

    Args:
        moment: An aware datetime (a naive one is taken as UTC).
        extra_nanos: Nanoseconds beyond ``moment``'s microseconds (0-999).
    """
    if moment.tzinfo is UTC:
        minutes = 0
    else:
        offset = moment.utcoffset()
        minutes = 0 if offset is None else int(offset.total_seconds()) // 60
    # isoformat() starts with "YYYY-MM-DDTHH:MM:SS" (the year zero-padded), whatever follows.
    text = moment.isoformat()[:19]
    nanos = moment.microsecond * 1000 + extra_nanos
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if minutes == 0:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


_MEMO_SIZE = 4096
#: A member identity (id, name, address, lease) to its JSON text up to the renew time, and
#: whether decoding that part gives the identity back exactly (see :meth:`Member.to_json`).
_HEADS: dict[tuple[str, str, str, float], tuple[str, bool]] = {}
_DECODED: dict[tuple[Any, ...], Member] = {}
#: A leader id to its JSON string.
_LEADERS: dict[str, str] = {}
#: A member's JSON text to the member decoding it gives (see :func:`read_back`).
_READ_BACK: dict[str, Member] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One member's entry in the record.

    Args:
        id: Member id.
        name: Member name (informational).
        address: Member address (informational).
        lease_duration: The lease this member advertises, in seconds; observers expire it
            this long after they last saw its ``renew_time`` change.
        renew_time: Wall time of its last renewal (compared only for change, never with a
            clock). Naive datetimes are taken as UTC.
        renew_time_ns: Nanoseconds beyond ``renew_time``'s microseconds (0-999), kept so a
            Go member's timestamp is re-encoded exactly as it was read.
    """

    id: str
    name: str = ""
    address: str = ""
    lease_duration: float = 0.0
    renew_time: datetime = _GO_ZERO_TIME
    renew_time_ns: int = 0
    # This member's JSON text, encoded on first use (members are immutable). Kept on the
    # instance: a memo keyed by the member would hash all its fields at every lookup.
    _json: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    # The text before the renew time and whether it decodes to this identity exactly,
    # shared by the renewed copies (the identity does not change when a member renews).
    _head: tuple[str, bool] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )
    # Set with _json: whether decoding this member's JSON gives this very member back
    # (every field, to the float bit and the time zone object), so a reader can share it.
    _exact: bool | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.renew_time.tzinfo is None:
            object.__setattr__(self, "renew_time", self.renew_time.replace(tzinfo=UTC))
        if not 0 <= self.renew_time_ns < 1000:
            raise ValueError(f"renew_time_ns must be in 0..999, got {self.renew_time_ns}")

    @property
    def renew_stamp(self) -> tuple[datetime, int]:
        """What identifies one renewal: the renew time to the nanosecond."""
        return (self.renew_time, self.renew_time_ns)

    def renewed(self, now_wall: datetime) -> Member:
        """Return a copy with ``renew_time`` set to ``now_wall`` (nanoseconds cleared)."""
        member = Member(self.id, self.name, self.address, self.lease_duration, now_wall, 0)
        if self._head is not None:
            object.__setattr__(member, "_head", self._head)
        return member

    def to_json_dict(self) -> dict[str, Any]:
        """The reference's JSON object for this member (``lease_duration`` in ns)."""
        return {
            "id": self.id,
            "name": self.name,
            "address": self.address,
            "lease_duration": round(self.lease_duration * _NANOS_PER_SECOND),
            "renew_time": format_go_time(self.renew_time, self.renew_time_ns),
        }

    def to_json(self) -> str:
        """This member's JSON object as compact text (memoised: members are immutable)."""
        text = self._json
        if text is None:
            # Everything but the renew time rarely changes: encode it once per identity.
            # (An RFC 3339 timestamp needs no JSON escaping.)
            head = self._head
            if head is None:
                identity = (self.id, self.name, self.address, self.lease_duration)
                head = _HEADS.get(identity)
                if head is None:
                    if len(_HEADS) >= _MEMO_SIZE:
                        _HEADS.clear()
                    head = _HEADS[identity] = self._encode_head()
                object.__setattr__(self, "_head", head)
            moment = self.renew_time
            text = f'{head[0]}{format_go_time(moment, self.renew_time_ns)}"}}'
            object.__setattr__(self, "_json", text)
            # Decoding gives back the UTC zone object itself (and fold 0) only for UTC.
            object.__setattr__(self, "_exact", head[1] and moment.tzinfo is UTC and not moment.fold)
        return text

    def _encode_head(self) -> tuple[str, bool]:
        """The JSON text up to the renew time, and whether it decodes to this identity."""
        fields = self.to_json_dict()
        del fields["renew_time"]
        body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        lease = self.lease_duration
        nanos = fields["lease_duration"]
        exact = (
            type(self.id) is str
            and type(self.name) is str
            and type(self.address) is str
            and type(lease) is float
            and abs(nanos) <= MAX_LEASE_NS
            and (nanos / _NANOS_PER_SECOND).hex() == lease.hex()
        )
        return body[:-1] + ',"renew_time":"', exact

    @classmethod
    def from_json_dict(cls, data: Any) -> Member:
        """Build a member from the reference's JSON object.

        Raises:
            ValueError: a key is missing or has the wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a member must be a JSON object, got {type(data).__name__}")
        # Most members of a record read are the ones of the previous read: decode each
        # distinct JSON object once (members are immutable, so sharing them is safe).
        try:
            key = (type(data.get("lease_duration")), *data.items())
            cached = _DECODED.get(key)
        except TypeError:  # an unhashable value: decode (and reject) it below
            key, cached = None, None
        if cached is not None:
            return cached
        member = cls._decode(data)
        if key is not None:
            if len(_DECODED) >= _MEMO_SIZE:
                _DECODED.clear()
            _DECODED[key] = member
        return member

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> Member:
        member_id = data.get("id")
        if not isinstance(member_id, str):
            raise ValueError(f"member id must be a string, got {member_id!r}")
        name = data.get("name", "")
        address = data.get("address", "")
        lease = data.get("lease_duration", 0)
        renew = data.get("renew_time", "0001-01-01T00:00:00Z")
        if not isinstance(name, str) or not isinstance(address, str):
            raise ValueError(f"member {member_id!r}: name and address must be strings")
        if isinstance(lease, bool) or not isinstance(lease, int):
            raise ValueError(
                f"member {member_id!r}: lease_duration must be integer nanoseconds, got {lease!r}"
            )
        if abs(lease) > MAX_LEASE_NS:
            # Go's json.Unmarshal refuses it too: the reference cannot read this record.
            raise ValueError(
                f"member {member_id!r}: lease_duration {lease} ns is beyond the longest "
                f"lease a record can carry ({MAX_LEASE_NS} ns, Go's int64 duration)"
            )
        if not isinstance(renew, str):
            raise ValueError(f"member {member_id!r}: renew_time must be a string, got {renew!r}")
        moment, nanos = parse_go_time(renew)
        return cls(member_id, name, address, lease / _NANOS_PER_SECOND, moment, nanos)


@dataclasses.dataclass(slots=True)
class Record:
    """The shared election record: the leader's id and the members, plus a CAS version.

    Args:
        leader_id: Id of the leader, ``""`` when the slot is empty.
        members: Members in record order.
        version: Opaque compare-and-swap version (0: no record stored yet); never in JSON.
    """

    leader_id: str = ""
    members: list[Member] = dataclasses.field(default_factory=list)
    version: int = 0

    def find_member(self, member_id: str) -> Member | None:
        """Return the (first) member with id ``member_id``, or ``None``."""
        for member in self.members:
            if member.id == member_id:
                return member
        return None

    def clone(self) -> Record:
        """Return a copy whose member list can be changed without touching this one."""
        return Record(self.leader_id, list(self.members), self.version)


def _missing(values: list[Any]) -> Iterator[int]:
    """The indices of ``values`` holding ``None`` (an identity test per item, at C speed)."""
    return compress(range(len(values)), map(is_, values, repeat(None)))


def _member_texts(members: list[Member]) -> list[str]:
    """The JSON text of each member: the memoised ones gathered at C speed, the rest encoded."""
    texts: list[str | None] = [m._json for m in members]
    if not all(texts):  # a memoised text is never empty
        for index in _missing(texts):
            texts[index] = members[index].to_json()
    return texts  # type: ignore[return-value]


def record_to_json(record: Record) -> str:
    """Encode like the reference: keys ``leader_id`` and ``members`` (``null`` if empty)."""
    # Assembled from memoised member texts: the same bytes json.dumps would produce.
    leader_id = record.leader_id
    leader = _LEADERS.get(leader_id) if type(leader_id) is str else None
    if leader is None:
        leader = json.dumps(leader_id, ensure_ascii=False)
        if type(leader_id) is str:
            if len(_LEADERS) >= _MEMO_SIZE:
                _LEADERS.clear()
            _LEADERS[leader_id] = leader
    if not record.members:
        return f'{{"leader_id":{leader},"members":null}}'
    members = ",".join(_member_texts(record.members))
    return f'{{"leader_id":{leader},"members":[{members}]}}'


def read_back(record: Record, version: int) -> Record:
    """The record that decoding ``record_to_json(record)`` at ``version`` gives.

    The same members :func:`record_from_json` would build, without parsing the whole
    record: a member whose JSON decodes to itself exactly is shared, any other is decoded
    from its own JSON text (once per distinct text). What a storage that keeps the decoded
    copy of what it wrote hands its next reader.

    Raises:
        CorruptRecordError: a member's JSON is not one :func:`record_from_json` accepts.
    """
    members = record.members
    if all([m._exact for m in members]):  # each flag is set with the member's memoised text
        return Record(record.leader_id, list(members), version)
    texts = _member_texts(members)
    exact = [m._exact for m in members]
    decoded_members = list(members)
    for index in compress(range(len(exact)), map(not_, exact)):
        text = texts[index]
        decoded = _READ_BACK.get(text)
        if decoded is None:
            try:
                decoded = Member.from_json_dict(json.loads(text))
            except ValueError as exc:
                raise CorruptRecordError(f"invalid election record: {exc}") from exc
            if len(_READ_BACK) >= _MEMO_SIZE:
                _READ_BACK.clear()
            _READ_BACK[text] = decoded
        decoded_members[index] = decoded
    return Record(record.leader_id, decoded_members, version)


def record_from_json(text: str | bytes, version: int = 0) -> Record:
    """Decode the reference's JSON (``members`` may be ``null`` or a list).

    Raises:
        CorruptRecordError: the text is not valid JSON (or nested too deeply to decode),
            or not a record.
    """
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"the record must be a JSON object, got {type(data).__name__}")
        leader_id = data.get("leader_id", "")
        if leader_id is None:
            leader_id = ""
        if not isinstance(leader_id, str):
            raise ValueError(f"leader_id must be a string, got {leader_id!r}")
        raw_members = data.get("members")
        if raw_members is None:
            raw_members = []
        if not isinstance(raw_members, list):
            raise ValueError(f"members must be a list or null, got {type(raw_members).__name__}")
        members = [Member.from_json_dict(item) for item in raw_members]
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise CorruptRecordError(f"invalid election record: {exc}") from exc
    except RecursionError as exc:  # deeply nested JSON exhausts the decoder's stack
        raise CorruptRecordError(
            "invalid election record: JSON nested too deeply to decode"
        ) from exc
    return Record(leader_id, members, version)


def decode_stored_record(version: object, text: object, *, table: str, row: str) -> Record:
    """Decode one stored row (its ``version`` column and its record JSON), or refuse it.

    The one home of "what a stored record may look like", shared by every back-end (the
    SQLite layout, the simulator's server, the ORM layout). A stored version must be an
    integer from 1 to :data:`MAX_VERSION`: the reference creates the row at version 1 and
    each write moves it on by one, and a version that is not such an integer (``'abc'``,
    a blob, ``2.5``, ``-2``, ``0``) would make every compare-and-swap conflict for ever.

    Args:
        version: The raw ``version`` column as the driver returned it.
        text: The raw record column (``str`` or ``bytes``).
        table: The table's name, for the error message.
        row: Which row, for the error message (e.g. ``"id = 1"``).

    Returns:
        The record, with ``version``.

    Raises:
        CorruptRecordError: the row cannot be decoded; the message names the table and
            the row, and says the row was left as it is (callers never write it).
    """
    try:
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 1 <= version <= MAX_VERSION
        ):
            raise CorruptRecordError(
                f"invalid version {version!r} ({type(version).__name__}): a stored version "
                f"must be an integer from 1 to {MAX_VERSION}"
            )
        if not isinstance(text, str | bytes):
            raise CorruptRecordError(
                f"invalid election record: must be JSON text, got {type(text).__name__}"
            )
        return record_from_json(text, version)
    except CorruptRecordError as exc:
        raise CorruptRecordError(
            f"table {table!r}: the election record ({row}) is corrupt and was left as it is: {exc}"
        ) from (exc.__cause__ or exc)


def record_warnings(record: Record) -> list[str]:
    """What is suspicious in a decodable record (each a sentence), or an empty list.

    Two states the reference never repairs by itself are reported: a ``leader_id`` that
    names no member (nobody expires it, so nobody ever campaigns), and a member whose
    advertised lease is longer than :data:`SUSPICIOUS_LEASE` (it would keep its entry,
    and the slot if it leads, that long after it died).
    """
    problems: list[str] = []
    if record.leader_id and record.find_member(record.leader_id) is None:
        problems.append(
            f"leader_id {record.leader_id!r} names no member: the reference never clears "
            "such a slot, so no member will campaign"
        )
    members = record.members
    if not any([m.lease_duration > SUSPICIOUS_LEASE for m in members]):
        return problems  # the common case, in one C-speed pass
    for member in members:
        if member.lease_duration > SUSPICIOUS_LEASE:
            problems.append(
                f"member {member.id!r} advertises a lease of {member.lease_duration:.6g} s "
                f"(over {SUSPICIOUS_LEASE:g} s): it would not expire for that long"
            )
    return problems


def _note_moved(
    noted: dict[str, Member],
    times: dict[str, float],
    ids: list[str],
    members: list[Member],
    before: list[Member],
    now: float,
) -> None:
    """Note ``members`` (of distinct ``ids``), each not the noted object ``before`` of its id.

    A member whose renew stamp differs from its noted one is noted as renewed at ``now``.
    C-speed passes, whatever the number of members.
    """
    renewed = [m.renew_time != b.renew_time for m, b in zip(members, before, strict=True)]
    if not all(renewed):
        for index in compress(range(len(renewed)), map(not_, renewed)):
            # The same instant: the nanoseconds beyond it decide.
            renewed[index] = members[index].renew_time_ns != before[index].renew_time_ns
    noted.update(zip(ids, members, strict=True))
    if any(renewed):
        times.update(zip(compress(ids, renewed), repeat(now)))  # repeat(): no strict


def _forget(noted: dict[str, Member], times: dict[str, float], present: set[str]) -> None:
    """Drop the notes of the ids not in ``present``."""
    for member_id in noted.keys() - present:
        del noted[member_id]
        del times[member_id]


class RenewTracker:
    """When this observer last saw each member's ``renew_time`` change (its own clock).

    Expiry never compares ``renew_time`` with a clock: an observer notes its own monotonic
    time when it first sees a member's renew time *change*, and the member is expired once
    that noted time plus the member's advertised lease is in the past. A member seen for
    the first time is noted as freshly renewed at that read.

    Args:
        max_lease: Beyond the reference (off by default): seconds after which this
            observer expires a member whatever longer lease it advertises. ``inf`` (the
            reference) honours every advertised lease.
    """

    __slots__ = ("_last", "_max_lease", "_noted", "_orphan", "_present", "_times")

    def __init__(self, max_lease: float = math.inf) -> None:
        # For each member id: the member whose renew stamp is noted, and when (own clock)
        # this observer first saw that stamp.
        self._noted: dict[str, Member] = {}
        self._times: dict[str, float] = {}
        self._max_lease = max_lease
        self._orphan: tuple[str, float] | None = None
        # The members last observed, and their ids (the ids were distinct) or None.
        self._last: tuple[Member, ...] = ()
        self._present: set[str] | None = None

    def observe(self, record: Record, now: float) -> None:
        """Note the members of ``record`` as read at monotonic time ``now`` (seconds)."""
        members = record.members
        last = self._last
        present = self._present
        if present is not None and len(members) == len(last):
            # Incremental: the members that are the very objects observed last time are
            # noted already (members are immutable); only the others need a look. While
            # no id moves, the present ids stay those of the last full pass. (Each step
            # is a C-speed pass: a read after a round of N renewals shows N new objects.)
            moved = list(map(is_not, members, last))
            if all(moved):  # a read after a round of renewals: every member is new
                changed, before = members, list(last)
            else:
                changed = list(compress(members, moved))
                before = list(compress(last, moved))  # the noted members at those places
            if changed:
                ids = [m.id for m in changed]
                if ids != [m.id for m in before]:
                    present = None  # ids moved: the full pass below re-notes everything
                else:
                    _note_moved(self._noted, self._times, ids, changed, before, now)
        else:
            present = None
        if present is None:
            ids = [m.id for m in members]
            present = set(ids)
            noted, times = self._noted, self._times
            if len(present) == len(ids):
                olds: list[Member | None] = list(map(noted.get, ids))
                newcomers = 0 if all(olds) else sum(map(is_, olds, repeat(None)))
                if len(noted) > len(ids) - newcomers:  # some noted ids are gone
                    _forget(noted, times, present)
                if newcomers:  # noted as freshly renewed
                    for index in _missing(olds):
                        times[ids[index]] = now
                        noted[ids[index]] = olds[index] = members[index]
                moved = list(map(is_not, members, olds))
                if all(moved):
                    _note_moved(noted, times, ids, members, olds, now)  # type: ignore[arg-type]
                elif any(moved):
                    _note_moved(
                        noted,
                        times,
                        list(compress(ids, moved)),
                        list(compress(members, moved)),
                        list(compress(olds, moved)),  # type: ignore[arg-type]
                        now,
                    )
            else:
                _forget(noted, times, present)
                for member in members:
                    old = noted.get(member.id)
                    if old is None or old.renew_stamp != member.renew_stamp:
                        times[member.id] = now
                    noted[member.id] = member
            # The incremental pass assumes one entry per id (a duplicated id is re-noted
            # at every read, as the reference's loop does).
            self._present = present if len(present) == len(members) else None
        self._last = tuple(members)
        # A leader id naming no member is noted like a newcomer: from its first sighting.
        leader = record.leader_id
        if not leader or leader in present:
            self._orphan = None
        elif self._orphan is None or self._orphan[0] != leader:
            self._orphan = (leader, now)

    def _notes(self) -> dict[str, tuple[tuple[datetime, int], float]]:
        """Each noted id's renew stamp and the time it was first seen (for tests)."""
        return {i: (m.renew_stamp, self._times[i]) for i, m in self._noted.items()}

    def observed_at(self, member_id: str) -> float | None:
        """Monotonic time when ``member_id``'s current renewal was first seen, or None."""
        return self._times.get(member_id)

    def lease_of(self, member: Member) -> float:
        """The lease, in seconds, this observer grants ``member`` (its own, or the cap)."""
        return min(member.lease_duration, self._max_lease)

    def is_expired(self, member: Member, now: float) -> bool:
        """Whether ``member``'s lease has run out at monotonic time ``now``."""
        seen = self._times.get(member.id)
        if seen is None:
            return True
        return now - seen > self.lease_of(member)

    def expiry_test(self, now: float) -> ExpiryTest:
        """:meth:`is_expired` at ``now`` as a one-argument test (for :func:`plan_renewal`).

        The same answers, at one call per member instead of three; and
        :meth:`ExpiryTest.flags` answers for a whole member list at once.
        """
        return ExpiryTest(self._times, now, self._max_lease)

    def expires_at(self, member: Member) -> float | None:
        """Monotonic time at which ``member`` expires for this observer, or None if unseen."""
        seen = self._times.get(member.id)
        return None if seen is None else seen + self.lease_of(member)

    def orphan_expired(self, record: Record, now: float, lease: float) -> bool:
        """Whether ``record``'s leader id names no member and has for over ``lease`` s.

        ``lease`` is the observer's own lease (an orphan advertises none), counted from
        the first read that showed this orphan, as for a newcomer.
        """
        orphan = self._orphan
        return (
            orphan is not None
            and orphan[0] == record.leader_id
            and record.find_member(record.leader_id) is None
            and now - orphan[1] > lease
        )


class ExpiryTest:
    """:meth:`RenewTracker.is_expired` at one instant, as a test of one member or many.

    Made by :meth:`RenewTracker.expiry_test`; it reads the tracker's notes as they are
    when it is called.
    """

    __slots__ = ("_cap", "_now", "_times")

    def __init__(self, times: dict[str, float], now: float, cap: float) -> None:
        self._times = times
        self._now = now
        self._cap = cap

    def __call__(self, member: Member) -> bool:
        """Whether ``member``'s lease has run out (unseen members have)."""
        seen = self._times.get(member.id)
        return seen is None or self._now - seen > min(member.lease_duration, self._cap)

    def flags(self, members: list[Member], ids: list[str] | None = None) -> list[bool]:
        """``[self(m) for m in members]``, in one pass over ``members``.

        Args:
            members: The members to test.
            ids: Their ids, if the caller has them already.
        """
        times, now, cap = self._times, self._now, self._cap
        try:
            if cap != math.inf:
                return [now - times[m.id] > min(m.lease_duration, cap) for m in members]
            # min(lease, inf) is the lease itself
            if ids is None:
                return [now - times[m.id] > m.lease_duration for m in members]
            return [now - times[i] > m.lease_duration for i, m in zip(ids, members, strict=True)]
        except KeyError:  # an unseen member: it is expired; answer one by one
            return [self(m) for m in members]


@dataclasses.dataclass(frozen=True, slots=True)
class RenewPlan:
    """The outcome of :func:`plan_renewal`.

    Attributes:
        record: The record to write back (same version as read).
        leader_changed: Whether ``leader_id`` differs from the one read.
        expired: Members pruned as expired, in record order.
        campaigned: Whether this member put itself in an empty leader slot.
    """

    record: Record
    leader_changed: bool
    expired: tuple[Member, ...]
    campaigned: bool


def plan_renewal(
    read: Record,
    me: Member,
    now_wall: datetime,
    is_expired: Callable[[Member], bool],
    may_campaign: bool,
    clear_orphan: bool = False,
) -> RenewPlan:
    """The reference's read-modify-write of one renewal, as a pure function.

    Prune expired members (clearing the slot if the leader is among them, this member
    included), upsert ``me`` (append it if missing, else refresh only its renew time to
    ``now_wall``), then: outside a resign window (``may_campaign``) take the slot if it
    is empty; inside one, give the slot up if ``me`` holds it.

    ``clear_orphan`` (beyond the reference, which never does): first clear a leader slot
    whose id names no member of ``read``, so the slot is free to campaign for.
    """
    record = read.clone()
    leader_changed = False
    if clear_orphan and record.leader_id and record.find_member(record.leader_id) is None:
        record.leader_id = ""
        leader_changed = True
    members = record.members
    ids = [m.id for m in members]
    if isinstance(is_expired, ExpiryTest):
        flags = is_expired.flags(members, ids)
    else:
        flags = list(map(is_expired, members))
    expired: list[Member] = []
    active = members
    if any(flags):
        expired = list(compress(members, flags))
        active = list(compress(members, map(not_, flags)))
        ids = list(compress(ids, map(not_, flags)))
        for member in expired:
            if member.id == record.leader_id:
                record.leader_id = ""
                leader_changed = True
    try:
        index = ids.index(me.id)
    except ValueError:
        active.append(me.renewed(now_wall))
    else:
        active[index] = active[index].renewed(now_wall)
    record.members = active
    campaigned = False
    if not may_campaign:
        if record.leader_id == me.id:  # resigned: keep the slot free while the window lasts
            record.leader_id = ""
            leader_changed = True
    elif record.leader_id == "":
        record.leader_id = me.id
        leader_changed = True
        campaigned = True
    return RenewPlan(record, leader_changed, tuple(expired), campaigned)


@dataclasses.dataclass(frozen=True, slots=True)
class ReleasePlan:
    """The outcome of :func:`plan_release`: the record to write and whether the slot moved."""

    record: Record
    leader_changed: bool


def plan_release(read: Record, my_id: str, remove_self: bool) -> ReleasePlan:
    """Clear the leader slot if it is ``my_id``'s and, if asked, remove ``my_id``."""
    record = read.clone()
    leader_changed = record.leader_id == my_id
    if leader_changed:
        record.leader_id = ""
    if remove_self:
        record.members = [m for m in record.members if m.id != my_id]
    return ReleasePlan(record, leader_changed)


def member_ids(members: Iterable[Member]) -> list[str]:
    """The ids of ``members``, in order (a convenience for logs and traces)."""
    return [m.id for m in members]
