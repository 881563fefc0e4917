"""The analytics windows' boundaries and values, and the facts they fold (pure logic)."""
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from apps.analytics import facts
from apps.analytics.processor import UnwindowableEventError, decode
from apps.analytics.windows import BY_NAME, DAY_MS, HOUR_MS, MINUTE_MS
from apps.todos import events
from polystack.streaming.registry import NonRetriableError
from tests.analytics.synthetic import Timeline

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a whole hour
T0_MS = facts.epoch_ms(events.iso(T0))


def timeline(users=(7, 8)) -> Timeline:
    return Timeline(users=list(users), rng=random.Random(3))


def test_epoch_ms_is_exact_for_microseconds_and_offsets():
    assert facts.epoch_ms("1970-01-01T00:00:00.001999Z") == 1
    assert facts.epoch_ms("2026-03-02T11:00:00+01:00") == T0_MS


def test_an_event_on_a_boundary_opens_the_next_tumbling_window():
    hourly, daily = BY_NAME["hourly"], BY_NAME["daily"]
    assert hourly.ranges(T0_MS) == [(T0_MS, T0_MS + HOUR_MS)]
    assert hourly.ranges(T0_MS - 1) == [(T0_MS - HOUR_MS, T0_MS)]
    midnight = T0_MS - 10 * HOUR_MS
    assert daily.ranges(T0_MS) == [(midnight, midnight + DAY_MS)]


def test_hopping_windows_last_a_day_advance_six_hours_and_overlap_four_times():
    ranges = BY_NAME["rolling"].ranges(T0_MS + 5 * MINUTE_MS)  # 10:05
    assert ranges == [(T0_MS - (22 - n * 6) * HOUR_MS, T0_MS - (22 - n * 6) * HOUR_MS + DAY_MS) for n in range(4)]
    assert ranges[0][0] == T0_MS - 22 * HOUR_MS  # yesterday 12:00: the first that still holds 10:05
    assert ranges[-1][0] == T0_MS - 4 * HOUR_MS  # today 06:00


def test_a_sliding_window_is_the_hour_ending_with_the_event():
    assert BY_NAME["sliding"].ranges(T0_MS) == [(T0_MS - HOUR_MS, T0_MS)]
    assert BY_NAME["sliding"].ranges(5) == [(0, 5)]


def test_a_fact_carries_team_priority_actor_and_completion_time():
    line = timeline()
    created = events.read(line.create(7, T0, priority="high", team="0b5e7c1e-0000-4000-8000-000000000001"))
    fact, todo = facts.fact_of(created, None)
    assert fact == {"k": "created", "t": "0b5e7c1e-0000-4000-8000-000000000001", "p": "high", "u": "7"}
    todo_obj = line.open[7][0]
    todo_obj.version += 1
    done = events.read(line.event(7, events.TODO_COMPLETED, todo_obj, T0 + timedelta(minutes=90),
                                  {"completedAt": ""}, actor=8))
    fact, todo = facts.fact_of(done, todo)
    assert fact == {"k": "completed", "t": "0b5e7c1e-0000-4000-8000-000000000001", "p": "high", "u": "8",
                    "d": 90 * MINUTE_MS}
    todo_obj.version += 1
    deleted = events.read(line.event(7, events.TODO_DELETED, todo_obj, T0 + timedelta(hours=2), {"deletedAt": ""}))
    assert facts.fact_of(deleted, todo)[1] is None


def test_reprioritising_changes_the_priority_later_facts_carry():
    line = timeline()
    fact, todo = facts.fact_of(events.read(line.create(7, T0, priority="low")), None)
    todo_obj = line.open[7][0]
    todo_obj.version += 1
    _, todo = facts.fact_of(events.read(line.event(7, events.TODO_PRIORITIZED, todo_obj, T0,
                                                   {"priority": "urgent", "prioritizedAt": ""})), todo)
    todo_obj.version += 1
    fact, _ = facts.fact_of(events.read(line.event(7, events.TODO_COMPLETED, todo_obj, T0, {"completedAt": ""})), todo)
    assert fact["p"] == "urgent"


def test_a_completion_without_its_creation_is_counted_with_an_unknown_priority_and_no_time():
    line = timeline()
    line.create(7, T0)
    todo_obj = line.open[7][0]
    todo_obj.version += 1
    fact, _ = facts.fact_of(events.read(line.event(7, events.TODO_COMPLETED, todo_obj, T0, {"completedAt": ""})), None)
    assert fact == {"k": "completed", "t": "", "p": "unknown", "u": "7"}


def test_an_activity_value_becomes_rows_per_team_priority_actor_and_assignment():
    value = facts.new_activity()
    for fact in ({"k": "created", "t": "", "p": "high", "u": "7"},
                 {"k": "completed", "t": "", "p": "high", "u": "7", "d": 1000},
                 {"k": "completed", "t": "", "p": "high", "u": "8", "d": 3000},
                 {"k": "other", "t": "", "p": "low", "u": "7", "to": "9"}):
        value = facts.add_activity(value, fact)
    value = json.loads(json.dumps(value))  # as the state store and the topic carry it
    assert sorted(facts.rows_of("activity", value)) == sorted([
        ("", "created", "high", 1), ("", "completed", "high", 2), ("", "completion_ms", "high", 4000),
        ("", "completion_n", "high", 2), ("", "active", "7", 3), ("", "active", "8", 1),
        ("", "assigned", "7>9", 1)])


@pytest.mark.parametrize("shape,value", [
    ("activity", {"c": {}, "a": {}}),
    ("activity", {"c": {"|high": [1, 2, 3]}, "a": {}, "s": {}}),
    ("activity", {"c": {"|high": [1, 2, 3, -4]}, "a": {}, "s": {}}),
    ("activity", {"c": {"|high": [1, 2, 3, 2**70]}, "a": {}, "s": {}}),
    ("activity", {"c": {"|HIGH": [1, 2, 3, 4]}, "a": {}, "s": {}}),
    ("activity", {"c": {}, "a": {"x|7": 1}, "s": {}}),
    ("activity", {"c": {}, "a": {"|07": 1}, "s": {}}),
    ("activity", {"c": {}, "a": {"|7": True}, "s": {}}),
    ("activity", {"c": {}, "a": {}, "s": {"|7|x": 1}}),
    ("rate", {"|low": [1]}),
    ("rate", [1]),
    ("events", {"not-a-team": 1}),
    ("events", {"": 1.5}),
    ("nope", {}),
])
def test_a_window_value_that_is_not_ours_is_refused(shape, value):
    with pytest.raises(ValueError):
        facts.rows_of(shape, value)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=40), inner, max_size=4),
                    max_leaves=20)


@hypothesis_settings(max_examples=300, deadline=None)
@given(shape=st.sampled_from(["activity", "rate", "events"]), value=JSON)
def test_any_json_is_either_rows_or_a_value_error(shape, value):
    try:
        facts.rows_of(shape, value)
    except ValueError:
        pass


def _message(envelope: dict, key: str | None = None) -> tuple:
    return json.dumps(envelope).encode(), (key or envelope["userId"]).encode()


def test_decode_refuses_what_the_windows_cannot_place():
    envelope = timeline().create(7, T0)
    value, key = _message(envelope)
    decoded, at = decode(value, key, T0_MS)
    assert (decoded["aggregateId"], at) == (envelope["aggregateId"], T0_MS)
    with pytest.raises(UnwindowableEventError, match="key"):
        decode(value, b"8", T0_MS)
    with pytest.raises(UnwindowableEventError, match="key"):
        decode(value, None, T0_MS)
    with pytest.raises(UnwindowableEventError, match="broker"):
        decode(value, key, T0_MS - 3600_000)
    old = {**envelope, "occurredAt": "1969-12-31T23:59:59Z"}
    with pytest.raises(UnwindowableEventError, match="1970"):
        decode(*_message(old), T0_MS)
    for garbage in (b"{", b"\xff", b"[]", b'{"eventType": "TodoCreated"}', None):
        with pytest.raises(NonRetriableError):
            decode(garbage, key, T0_MS)


def test_random_timelines_fold_without_errors():
    line = Timeline(users=[1, 2, 3], rng=random.Random(5), teams={str(uuid.UUID(int=1, version=4)): [1, 2]})
    todos: dict = {}
    value = facts.new_activity()
    for n in range(2000):
        envelope = events.read(line.act(line.rng.choice([1, 2, 3]), T0 + timedelta(seconds=n)))
        fact, todo = facts.fact_of(envelope, todos.get(envelope["aggregateId"]))
        todos[envelope["aggregateId"]] = todo
        value = facts.add_activity(value, fact)
    rows = facts.rows_of("activity", json.loads(json.dumps(value)))
    assert sum(v for _, metric, _, v in rows if metric == "active") == 2000
