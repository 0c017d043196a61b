"""The verdict a person reads: its levels, its terms, and real traces on the run's clock."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from leadersim.analysis.intervals import GLOSSARY, VerdictLevel, summarize
from leadersim.analysis.result import Result
from leadersim.trace import EventKind, TraceEvent, read_trace_dir

README = Path(__file__).resolve().parents[2] / "README.md"


def _overlap(build, *, until: float = 10.5) -> None:
    """n1 acts 0-``until``, n2 from 10: a split brain of ``until - 10`` s."""
    build.start(0.0, "n1")
    build.start(10.0, "n2")
    build.stop(until, "n1")


def _write(build, t: float, node: str, *, stale: bool, accepted: bool, fencing: bool) -> None:
    build.add(
        t,
        node,
        "guarded_write",
        seq=int(t * 10),
        accepted=accepted,
        stale=stale,
        fencing=fencing,
        leader_id="n2" if stale else node,
        sent_at=t - 0.01,
    )


def test_a_split_brain_whose_stale_writes_fencing_rejected_is_harmless(build) -> None:
    _overlap(build)
    _write(build, 5.0, "n1", stale=False, accepted=True, fencing=True)
    _write(build, 10.2, "n1", stale=True, accepted=False, fencing=True)
    verdict = Result(build.trace(), 20.0).verdict

    assert verdict.overlap_s == 0.5
    assert verdict.level is VerdictLevel.OVERLAP_FENCED
    assert verdict.safe is True
    assert verdict.fenced is True
    assert verdict.line().startswith("OVERLAP-FENCED: split brain 0.500s, belief overlap")


@pytest.mark.parametrize(
    ("writes", "why"),
    [
        ([], "no guarded write: nothing shows the overlap was fenced"),
        ([(10.2, False, True, False)], "unfenced writes, none stale yet: nothing stopped one"),
        (
            [(5.0, False, True, True), (10.2, True, False, True), (10.3, False, True, False)],
            "one write of the run bypassed fencing",
        ),
        ([(10.2, True, True, True)], "a stale write got through"),
    ],
)
def test_a_split_brain_is_unsafe_unless_fencing_covered_every_write(
    build, writes: list[tuple[float, bool, bool, bool]], why: str
) -> None:
    _overlap(build)
    for t, stale, accepted, fencing in writes:
        _write(build, t, "n1", stale=stale, accepted=accepted, fencing=fencing)
    verdict = Result(build.trace(), 20.0).verdict

    assert verdict.level is VerdictLevel.UNSAFE, why
    assert verdict.safe is False
    assert verdict.line().startswith("UNSAFE: split brain 0.500s")


def test_an_accepted_stale_write_is_unsafe_even_without_a_split_brain(build) -> None:
    build.start(0.0, "n1")
    build.stop(10.0, "n1")
    build.start(10.0, "n2")
    _write(build, 10.1, "n1", stale=True, accepted=True, fencing=False)
    verdict = summarize(build.trace(), 20.0)

    assert verdict.overlap_s == 0
    assert verdict.level is VerdictLevel.UNSAFE
    assert verdict.as_dict()["level"] == "UNSAFE"


def test_a_run_without_overlap_or_harm_is_safe_and_a_rejected_stale_write_is_no_harm(
    build,
) -> None:
    build.start(0.0, "n1")
    build.stop(10.0, "n1")
    build.start(10.0, "n2")
    _write(build, 10.1, "n1", stale=True, accepted=False, fencing=True)
    verdict = summarize(build.trace(), 20.0)

    assert (verdict.level, verdict.safe) == (VerdictLevel.SAFE, True)
    assert verdict.as_dict()["level"] == "SAFE"
    assert verdict.line().startswith("SAFE: split brain 0.000s")


def test_one_node_winning_back_its_own_leadership_is_a_re_election_not_a_failover(
    build,
) -> None:
    # the 1-node run that showed "failovers 0, flaps 1": its callback ended, it won again
    build.renew(0.0, "n1", "n1")
    build.start(0.0, "n1")
    build.stop(4.0, "n1", reason="raised")
    build.renew(6.0, "n1", "n1")
    build.start(6.0, "n1")
    verdict = Result(build.trace(), 10.0).verdict

    assert (verdict.failovers, verdict.leader_changes, verdict.reelections) == (0, 0, 1)
    assert verdict.flaps == verdict.leader_changes + verdict.reelections == 1
    line = verdict.line()
    assert "failovers 0 (median -), re-elections 1," in line
    assert "flap" not in line


def test_every_term_the_verdict_shows_is_defined_on_the_card_and_in_the_readme(
    build,
) -> None:
    _overlap(build)
    result = Result(build.trace(), 20.0)
    line, card = result.verdict.line(), result._repr_html_()
    readme = README.read_text(encoding="utf-8")
    # the line's terms, in the order shown: each a GLOSSARY entry
    shown = re.findall(r"(?:^|, )([a-z -]+?) \d", line.split(": ", 1)[1])
    assert shown == [
        "split brain",
        "belief overlap",
        "no leader",
        "failovers",
        "re-elections",
        "stale writes accepted",
    ]
    levels = {level.value for level in VerdictLevel}
    for term, definition in GLOSSARY.items():
        assert re.search(rf"\*\*{re.escape(term)}\*\*", readme), f"README does not define {term}"
        if term not in levels:  # every row of the card carries its definition
            assert f">{term}</td>" in card
            assert html.escape(definition) in card
    # the card states its own level's meaning, in the level's colour
    assert html.escape("UNSAFE: " + GLOSSARY["UNSAFE"]) in card
    assert "#cf222e" in card


def test_the_card_of_a_fenced_split_brain_is_not_red(build) -> None:
    _overlap(build)
    _write(build, 10.2, "n1", stale=True, accepted=False, fencing=True)
    card = Result(build.trace(), 20.0)._repr_html_()

    assert "OVERLAP-FENCED" in card
    assert html.escape(GLOSSARY["OVERLAP-FENCED"]) in card
    assert "#cf222e" not in card


def _real_trace(origin: float) -> list[TraceEvent]:
    """A hand-made real trace on host-monotonic seconds, starting ``origin`` s after boot."""

    def event(t: float, node: str, event_kind: str, **details: object) -> TraceEvent:
        return TraceEvent(origin + t, node, origin + t, EventKind(event_kind), details)  # type: ignore[arg-type]

    return [
        event(0.0, "", "run_started", source="lab"),
        event(0.2, "n1", "renew_ok", leader_id="n1", lease_until=origin + 3.2),
        event(0.2, "n1", "callback_started", incarnation=0),
        event(
            0.3,
            "n1",
            "storage_op",
            op="update",
            outcome="ok",
            seen="ok",
            sent_at=origin + 0.25,
            arrived_at=origin + 0.27,
            replied_at=origin + 0.29,
            leader_id="n1",
            version=1,
        ),
        event(1.0, "n1", "fault_start", fault=0, kind="crash", signal="SIGKILL"),
        event(1.0, "n1", "callback_stopped", reason="crashed", error=None),
        event(4.3, "n2", "renew_ok", leader_id="n2", lease_until=origin + 7.3),
        event(4.3, "n2", "callback_started", incarnation=0),
    ]


def test_a_real_trace_is_read_in_seconds_since_its_run_started() -> None:
    origin = 1065.25  # host uptime, as a lab's members stamp it
    raw = _real_trace(origin)
    result = Result(raw, origin + 5.0)

    assert result.start_time == origin
    assert result.end_time == pytest.approx(5.0)
    assert [round(e.true_time, 9) for e in result.events[:3]] == [0.0, 0.2, 0.2]
    # a node's own clock is its own: not moved
    assert [e.local_time for e in result.events] == [e.local_time for e in raw]
    ops = result.storage_ops()
    assert ops[["sent_at", "arrived_at", "replied_at"]].values.round(9).tolist() == [
        [0.25, 0.27, 0.29]
    ]
    assert result.acting()[0].start == pytest.approx(0.2)
    assert result.verdict.first_leader_at == pytest.approx(0.2)
    # every duration is what the raw trace gives
    unmoved = summarize(raw, origin + 5.0)
    assert result.verdict.failover_s == pytest.approx(unmoved.failover_s)
    assert result.verdict.no_leader_s == pytest.approx(unmoved.no_leader_s)
    assert result.verdict.level == unmoved.level == "SAFE"
    # an explicit start wins; a trace without run_started (a simulation) is not moved
    assert Result(raw, start_time=origin + 0.2).events[1].true_time == 0.0
    assert Result(raw[1:]).start_time == 0.0


def test_the_timeline_of_a_real_trace_starts_at_zero() -> None:
    ax = Result(_real_trace(1065.25), 1065.25 + 5.0).plot_timeline()
    x0, x1 = ax.get_xlim()
    assert (x0, x1) == pytest.approx((0.0, 5.0))
    assert ax.get_xlabel() == "time since the run's start (s)"


def test_reading_a_directory_that_holds_no_trace_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"does not exist or is not a directory$"):
        read_trace_dir(tmp_path / "missing")
    (tmp_path / "n1.log").write_text("not a trace\n")
    with pytest.raises(ValueError, match=r"holds no \*\.jsonl trace file$"):
        Result.from_trace_dir(tmp_path)
