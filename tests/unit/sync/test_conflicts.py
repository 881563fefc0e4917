"""The merge decision alone (apps.sync.conflicts.decide), field by field, and the clock's rules."""
import pytest

from apps.sync.conflicts import LWW, MANUAL, MERGE, ClockError, Hlc, check_skew, decide

A, B = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"
CURRENT = {"title": "kept", "description": "", "priority": "low", "completed": False, "assignedTo": None,
           "deleted": False}


def clock(version: int, hlc: str, device: str | None) -> dict:
    return {"version": version, "hlc": hlc, "device": device}


def outcome(changes, *, clocks, base=1, device=B, hlc="2000:0", policy=LWW):
    return decide(changes=changes, current=CURRENT, clocks=clocks, base_version=base, device_id=device,
                  hlc=Hlc.parse(hlc), policy=policy)


@pytest.mark.parametrize("policy", [LWW, MERGE, MANUAL])
def test_a_field_nobody_else_changed_since_the_base_applies(policy):
    assert outcome({"title": "new"}, clocks={"title": clock(1, "9999:0", A)}, policy=policy).apply == {"title": "new"}
    assert outcome({"title": "new"}, clocks={}, policy=policy).apply == {"title": "new"}
    assert outcome({"title": "new"}, clocks={"title": clock(5, "9999:0", B)}, policy=policy).apply == {"title": "new"}


@pytest.mark.parametrize("policy", [LWW, MERGE, MANUAL])
def test_setting_the_value_the_todo_has_is_no_change_and_no_conflict(policy):
    result = outcome({"title": "kept"}, clocks={"title": clock(3, "9999:0", A)}, policy=policy)
    assert (result.apply, result.lost, result.conflicts) == ({}, {}, {})


@pytest.mark.parametrize("mine, theirs, wins", [("2000:0", "1999:5", True), ("2000:0", "2000:1", False),
                                                ("2000:1", "2000:0", True), ("1:0", "2000:0", False)])
def test_last_write_wins_by_clock(mine, theirs, wins):
    result = outcome({"title": "mine"}, clocks={"title": clock(2, theirs, A)}, hlc=mine)
    assert (result.apply, result.lost) == (({"title": "mine"}, {}) if wins else ({}, {"title": "kept"}))


def test_equal_clocks_go_to_the_higher_device_id_and_the_api_has_the_lowest():
    assert outcome({"title": "b"}, clocks={"title": clock(2, "2000:0", A)}, device=B).apply == {"title": "b"}
    assert outcome({"title": "a"}, clocks={"title": clock(2, "2000:0", B)}, device=A).lost == {"title": "kept"}
    assert outcome({"title": "a"}, clocks={"title": clock(2, "2000:0", None)}, device=A).apply == {"title": "a"}


def test_merge_keeps_the_higher_priority_and_falls_back_to_the_clock_elsewhere():
    clocks = {"priority": clock(2, "9000:0", A), "title": clock(2, "9000:0", A)}
    result = outcome({"priority": "urgent", "title": "older"}, clocks=clocks, policy=MERGE)
    assert (result.apply, result.lost) == ({"priority": "urgent"}, {"title": "kept"})
    assert outcome({"priority": "low"}, clocks=clocks, policy=MERGE).apply == {}  # equal: nothing to do
    lower = decide(changes={"priority": "medium"}, current={**CURRENT, "priority": "high"}, clocks=clocks,
                   base_version=1, device_id=B, hlc=Hlc.parse("9999:0"), policy=MERGE)
    assert lower.lost == {"priority": "high"}, "a later clock does not lower the priority under merge"


def test_manual_keeps_the_value_and_names_the_field():
    result = outcome({"title": "mine", "description": "notes"}, clocks={"title": clock(2, "1:0", A)}, policy=MANUAL)
    assert (result.apply, result.lost, result.conflicts) == ({"description": "notes"}, {}, {"title": "kept"})


@pytest.mark.parametrize("text", ["", "12", "12:", ":1", "1:2:3", "a:1", "1:65536", "1234567890123456:0", None, 12,
                                  "1:0\n", "١:0"])
def test_a_clock_that_is_not_wall_ms_and_counter_is_refused(text):
    with pytest.raises(ClockError):
        Hlc.parse(text)


def test_a_clock_too_far_ahead_is_refused():
    check_skew(Hlc(1_000 + 60_000, 0), now_ms=1_000)
    with pytest.raises(ClockError, match="ahead"):
        check_skew(Hlc(1_000 + 60_001, 0), now_ms=1_000)
