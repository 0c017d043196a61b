"""The packed trace store: what a user reads back equals what was recorded."""

from __future__ import annotations

import gc
import json
import pickle
import tracemalloc
from pathlib import Path

import pytest

from leadersim import simulate
from leadersim.analysis.result import Result
from leadersim.trace import EventKind, Trace, TraceEvent, TraceRecorder, read_jsonl, run_start

#: Events with the details types a trace holds, and the ones a packed store must not
#: change: an int true time (SimPy's first instant), ints beyond 64 bits, -0.0, None,
#: a str subclass (the kind), a nested list (what a JSON file may hold).
EVENTS = [
    TraceEvent(0, "n1", 1000.0, EventKind.ELECTION_STARTED, {"incarnation": 1}),
    TraceEvent(0.5, "n1", 1000.5, EventKind.RENEW_STARTED, {}),
    TraceEvent(
        1.0,
        "",
        1.0,
        EventKind.STORAGE_OP,
        {"op": "get", "seen": "ok", "sent_at": 0, "replied_at": -0.0, "leader_id": None},
    ),
    TraceEvent(
        1.5,
        "",
        1.5,
        EventKind.STORAGE_OP,
        {"op": "get", "seen": "ok", "sent_at": 1.25, "replied_at": 1.5, "leader_id": "n1"},
    ),
    TraceEvent(2.0, "n2", 2002.0, EventKind.RENEW_OK, {"version": 2**70, "ok": True}),
    TraceEvent(2.5, "n2", 2002.5, EventKind.FAULT_START, {"kind": EventKind.RESIGN, "x": [1]}),
]


def test_a_packed_trace_reads_back_equal_events_with_plain_dict_details() -> None:
    trace = Trace.from_events(EVENTS)
    assert len(trace) == len(EVENTS)
    assert trace == EVENTS
    assert tuple(EVENTS) == trace
    assert list(trace) == EVENTS
    assert trace[-1] == EVENTS[-1]
    assert trace[1:3] == tuple(EVENTS[1:3])
    for read, written in zip(trace, EVENTS, strict=True):
        assert type(read.details) is dict
        assert read.details == written.details
        # the same types, so the same JSON
        assert [type(v) for v in read.details.values()] == [
            type(v) for v in written.details.values()
        ]
        assert type(read.true_time) is type(written.true_time)
        assert json.dumps(read.to_dict()) == json.dumps(written.to_dict())
    assert trace.of_kind(EventKind.STORAGE_OP) == EVENTS[2:4]
    assert trace.kinds()[:2] == [EventKind.ELECTION_STARTED, EventKind.RENEW_STARTED]
    with pytest.raises(IndexError):
        trace[len(EVENTS)]


def test_events_of_one_shape_share_one_key_tuple() -> None:
    recorder = TraceRecorder(true_clock=lambda: 1.0)
    for version in range(3):
        recorder("n1", 5.0, EventKind.RENEW_OK, {"leader_id": "n1", "version": version})
    recorder("n1", 5.0, EventKind.RENEW_OK, {"leader_id": None, "version": 3})
    store = recorder.events._store
    assert len({id(shape.keys) for shape in store.shapes}) == 1  # two shapes, one key tuple
    assert store.ids.strings == ["n1"]  # the node and the leader id, stored once


def test_the_recorder_keeps_what_it_was_given_even_if_the_caller_reuses_its_dict() -> None:
    recorder = TraceRecorder(true_clock=lambda: 3.0)
    details: dict[str, object] = {"op": "get"}
    recorder("n1", 1.0, EventKind.STORAGE_OP, details)  # type: ignore[arg-type]
    before = recorder.events
    details["op"] = "update"
    recorder("n1", 2.0, EventKind.STORAGE_OP, details)  # type: ignore[arg-type]
    assert [e.details["op"] for e in recorder.events] == ["get", "update"]
    assert len(before) == 1  # a view taken earlier does not grow


def test_a_result_pickles_to_an_equal_trace_and_identical_json_lines(tmp_path: Path) -> None:
    result = simulate("leader-crash", seed=3, duration=60)
    back = pickle.loads(pickle.dumps(result))
    assert back.events == result.events
    assert back.to_jsonl() == result.to_jsonl()
    assert back.summary() == result.summary()
    path = tmp_path / "trace.jsonl"
    path.write_text(result.to_jsonl(), encoding="utf-8")
    assert read_jsonl(path) == list(result.events)


def test_a_result_given_plain_events_holds_them_packed_and_equal() -> None:
    result = Result(EVENTS)
    assert isinstance(result.events, Trace)
    assert result.events == EVENTS
    assert result.to_jsonl() == "".join(
        json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in EVENTS
    )


# Its collections may finalize what earlier tests left behind (the looptime plugin's
# event loops): not this test's business.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_memory_per_event_of_a_simulated_result() -> None:
    """A benchmark print, not an assertion: what a Result holds per event."""
    simulate({"nodes": 5, "duration": 10.0}, seed=1)
    gc.collect()
    tracemalloc.start()
    try:
        result = simulate({"nodes": 5, "duration": 120.0}, seed=1)
        events = len(result.events)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        del result
        gc.collect()
        held -= tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    print(f"\n{held / events:.0f} B per event held by a Result ({events} events)")


def test_run_start_is_found_in_a_packed_trace_as_in_a_list_of_its_events() -> None:
    started = TraceEvent(3.0, "", 3.0, EventKind.RUN_STARTED, {"source": "lab"})
    for events in (EVENTS, [*EVENTS, started, started.shifted(-1.0)]):
        trace = Trace.from_events(events)
        assert run_start(trace) == run_start(list(events))
    assert run_start(Trace.from_events(EVENTS)) is None
    assert run_start(Trace.from_events([*EVENTS, started])) == 3.0


def test_a_recorder_packs_in_batches_and_its_views_see_every_event_recorded_before() -> None:
    recorder = TraceRecorder(true_clock=lambda: 1.0)
    for i in range(1000):  # several batches and a partial one
        recorder.record("n1", float(i), EventKind.RENEW_OK, {"version": i})
        if i == 600:
            early = recorder.events
    assert len(recorder) == 1000
    assert len(early) == 601
    assert [e.details["version"] for e in recorder.events] == list(range(1000))
    assert early[-1].details == {"version": 600}
    shared = {"version": 7}
    recorder(  # the observer call copies: the caller may change its mapping afterwards
        "n1", 0.0, EventKind.RENEW_OK, shared
    )
    shared["version"] = 8
    assert recorder.events[-1].details == {"version": 7}
