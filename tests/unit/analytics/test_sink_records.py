"""The sink's checks of what it reads from the analytics-* topics (anyone who can write to a
topic can write garbage there): a window result or late event of ours becomes rows; anything
else is a BadRecordError, which the runner dead-letters (pure logic)."""
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from apps.analytics.consumers import BadRecordError, late_event, window_rows
from apps.analytics.windows import BY_NAME, DAY_MS, HOUR_MS

HOURLY, SLIDING = BY_NAME["hourly"], BY_NAME["sliding"]
GOOD = {"userId": "7", "start": 10 * HOUR_MS, "end": 11 * HOUR_MS,
        "value": {"c": {"|high": [1, 0, 0, 0]}, "a": {"|7": 1}, "s": {}}}


def test_a_window_result_of_ours_becomes_its_rows():
    rows = window_rows(HOURLY, GOOD)
    assert {(r.metric, r.dim, r.value, r.owner_id, r.team_id) for r in rows} == {
        ("created", "high", 1, 7, None), ("completed", "high", 0, 7, None), ("active", "7", 1, 7, None)}


@pytest.mark.parametrize("payload", [
    None, [], "x", {**GOOD, "extra": 1}, {k: v for k, v in GOOD.items() if k != "value"},
    {**GOOD, "userId": 7}, {**GOOD, "userId": "07"}, {**GOOD, "userId": "1" * 19},
    {**GOOD, "start": -1}, {**GOOD, "start": 1.5}, {**GOOD, "end": GOOD["start"] - 1},
    {**GOOD, "end": GOOD["start"] + DAY_MS},  # not an hour
    {**GOOD, "start": GOOD["start"] + 1, "end": GOOD["end"] + 1},  # not on the hour
    {**GOOD, "start": 2**63, "end": 2**63 + HOUR_MS}, {**GOOD, "value": {"c": {}, "a": {}}},
    # A trailing newline is no id (a `$` pattern lets it through; no team id or user id has one).
    {**GOOD, "userId": "7\n"}, {**GOOD, "value": {"c": {"\n|high": [1, 0, 0, 0]}, "a": {}, "s": {}}},
    {**GOOD, "value": {"c": {}, "a": {"|7\n": 1}, "s": {}}},
])
def test_anything_else_is_refused(payload):
    with pytest.raises(BadRecordError):
        window_rows(HOURLY, payload)


def test_a_sliding_window_is_at_most_an_hour_long():
    assert window_rows(SLIDING, {"userId": "7", "start": 0, "end": 5, "value": {"": 1}})
    with pytest.raises(BadRecordError):
        window_rows(SLIDING, {"userId": "7", "start": 0, "end": HOUR_MS + 1, "value": {"": 1}})


LATE = {"window": "hourly", "topic": "todo-events", "partition": 0, "offset": 5, "userId": "7", "occurredMs": 1,
        "lateByMs": 2, "start": 0, "end": HOUR_MS}


def test_a_late_event_is_checked_field_by_field():
    assert late_event(LATE)["owner_id"] == 7
    for bad in ({**LATE, "window": "weekly"}, {**LATE, "topic": ""}, {**LATE, "offset": -1}, {**LATE, "userId": "x"},
                {**LATE, "lateByMs": "2"}, {k: v for k, v in LATE.items() if k != "end"}, []):
        with pytest.raises(BadRecordError):
            late_event(bad)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                    max_leaves=25)


@hypothesis_settings(max_examples=300, deadline=None)
@given(payload=JSON, window=st.sampled_from(sorted(BY_NAME)))
def test_no_payload_breaks_the_checks(payload, window):
    for check in (lambda: window_rows(BY_NAME[window], payload), lambda: late_event(payload)):
        try:
            check()
        except BadRecordError:
            pass
