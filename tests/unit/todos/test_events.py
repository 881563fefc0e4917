"""Event schemas and upcasting (pure logic)."""
import uuid
from datetime import UTC, datetime

import pytest

from apps.todos import events


def envelope(**overrides) -> dict:
    base = {
        "eventId": str(uuid.uuid4()), "eventType": "TodoCreated", "schemaVersion": 1,
        "occurredAt": "2026-01-01T00:00:00Z", "aggregateId": str(uuid.uuid4()), "aggregateVersion": 1,
        "userId": "7", "correlationId": "c-1", "causationId": None,
        "data": {"todoId": "", "title": "t", "description": "", "userId": "7", "createdAt": "2026-01-01T00:00:00Z"},
    }
    base["data"]["todoId"] = base["aggregateId"]
    base.update(overrides)
    return base


METADATA = {"notificationRequired": False, "affectedUsers": ["7"], "category": "created", "actorId": "7"}


def test_a_v1_todo_created_is_upcast_to_the_current_version_with_defaults():
    current = events.read(envelope())
    assert current["schemaVersion"] == 3
    assert current["data"]["priority"] == "medium"
    assert current["data"]["dueDate"] is None
    assert current["data"]["teamId"] is None


def test_a_v2_todo_created_gets_no_team():
    v2 = envelope(schemaVersion=2, metadata=METADATA)
    v2["data"].update(priority="urgent", dueDate=None)
    current = events.read(v2)
    assert current["schemaVersion"] == 3
    assert current["data"] == {**v2["data"], "teamId": None}


def test_events_without_metadata_get_the_owner_as_affected_and_notify_nobody():
    assigned = envelope(eventType="TodoAssigned", aggregateVersion=2, data={
        "todoId": str(uuid.uuid4()), "assignedTo": "9", "assignedAt": "2026-01-01T00:00:00Z"})
    assert events.read(assigned)["metadata"] == {
        "notificationRequired": False, "affectedUsers": ["7", "9"], "category": "assignment", "actorId": None}


def test_a_current_event_is_returned_as_it_is():
    v3 = envelope(schemaVersion=3, metadata=METADATA)
    v3["data"].update(priority="urgent", dueDate=None, teamId=str(uuid.uuid4()))
    assert events.read(v3) is v3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eventType": "TodoExploded"}, "unknown eventType"),
        ({"schemaVersion": 9}, "newer than this code knows"),
        ({"aggregateVersion": 0}, "aggregateVersion"),
        ({"eventId": "not-a-uuid"}, "eventId"),
        ({"extra": 1}, "'extra' was unexpected"),
        ({"metadata": {**METADATA, "category": "gossip"}}, "category"),
    ],
)
def test_invalid_envelopes_are_rejected_as_non_retriable(change, message):
    with pytest.raises(events.InvalidEventError, match=message):
        events.read(envelope(**change))


def test_what_json_cannot_hold_is_invalid_and_a_refused_value_is_not_repeated():
    with pytest.raises(events.InvalidEventError, match="not valid JSON data"):
        events.read(envelope(correlationId="\ud800"))  # a lone surrogate: json.loads lets one through
    with pytest.raises(events.InvalidEventError, match="userId") as refused:
        events.read(envelope(userId="x" * 100_000))
    assert len(str(refused.value)) < 500


def test_data_is_checked_against_its_versions_schema():
    bad = envelope()
    bad["data"]["title"] = ""
    with pytest.raises(events.InvalidEventError, match="title"):
        events.read(bad)


def scheduled(**data) -> dict:
    todo = str(uuid.uuid4())
    return envelope(eventType="TodoScheduled", aggregateId=todo, aggregateVersion=2,
                    metadata={**METADATA, "category": "schedule"},
                    data={"todoId": todo, "dueDate": "2026-01-09T00:00:00Z", "reminderTimes": ["2026-01-08T00:00:00Z"],
                          "scheduledAt": "2026-01-01T00:00:00Z", **data})


def test_a_schedule_is_read_and_each_reminder_time_must_be_a_real_moment():
    assert events.read(scheduled())["data"]["reminderTimes"] == ["2026-01-08T00:00:00Z"]
    assert events.read(scheduled(dueDate=None, reminderTimes=[]))["data"]["dueDate"] is None
    with pytest.raises(events.InvalidEventError, match="reminderTimes"):
        events.read(scheduled(reminderTimes=["2026-02-30T00:00:00Z"]))
    with pytest.raises(events.InvalidEventError, match="reminderTimes"):
        events.read(scheduled(reminderTimes=["2026-01-08T00:00:00Z"] * 2))  # each once
    with pytest.raises(events.InvalidEventError, match="reminderTimes"):
        events.read(scheduled(reminderTimes=[f"2026-01-0{n}T00:00:00Z" for n in range(1, 10)] + [
            f"2026-01-1{n}T00:00:00Z" for n in range(2)]))  # eleven


def test_new_envelopes_are_validated_before_they_exist():
    with pytest.raises(events.InvalidEventError, match="priority"):
        events.new_envelope(
            event_type=events.TODO_PRIORITIZED, aggregate_id=uuid.uuid4(), aggregate_version=2, user_id="1",
            data={"todoId": str(uuid.uuid4()), "priority": "whenever", "prioritizedAt": "2026-01-01T00:00:00Z"},
            correlation_id="c", occurred_at=datetime.now(UTC), metadata=METADATA,
        )


@pytest.mark.parametrize("change", [
    pytest.param(lambda e: e["data"].update(title="nul \x00 inside"), id="NUL in a title"),
    pytest.param(lambda e: e["data"].update(description="\x00"), id="NUL in a description"),
    pytest.param(lambda e: e.update(occurredAt="9999-99-99T99:99:99Z"), id="a moment that does not exist"),
    pytest.param(lambda e: e["data"].update(createdAt="2026-02-30T00:00:00Z"), id="February 30th"),
    pytest.param(lambda e: e.update(occurredAt="9999-12-31T23:59:59-23:59"), id="year 10000 in UTC"),
    pytest.param(lambda e: e.update(occurredAt="0001-01-01T00:00:00+01:00"), id="year 0 in UTC"),
    pytest.param(lambda e: e.update(occurredAt="２０２６-01-01T00:00:00Z"), id="non-ASCII digits"),
    pytest.param(lambda e: e.update(userId="1" * 30), id="a user id beyond bigint"),
    pytest.param(lambda e: e["data"].update(userId="٣"), id="a non-ASCII digit as user id"),
    pytest.param(lambda e: e.update(aggregateVersion=2**31), id="a version beyond integer"),
    pytest.param(lambda e: e.update(correlationId="a\x00b"), id="NUL in a correlation id"),
    pytest.param(lambda e: e.update(metadata={**METADATA, "affectedUsers": ["9" * 20]}), id="affected user beyond bigint"),
])
def test_values_postgresql_cannot_store_are_invalid_events(change):
    """The schemas are as strict as the database: what passes them never fails a write."""
    forged = envelope()
    change(forged)
    with pytest.raises(events.InvalidEventError):
        events.read(forged)


def test_an_event_newer_than_the_code_is_an_unknown_version_not_garbage():
    with pytest.raises(events.UnknownVersionError, match="newer than this code knows"):
        events.read(envelope(schemaVersion=9))
