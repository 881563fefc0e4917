"""The projection's fold (apps.projections.services.apply_event): one event, one read row."""
import uuid
from datetime import UTC, datetime

import pytest

from apps.projections.services import apply_event
from apps.todos import events

TODO = str(uuid.uuid4())
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def event(event_type: str, version: int, **data) -> dict:
    return {"eventType": event_type, "aggregateId": TODO, "aggregateVersion": version, "data": data}


CREATED = event(events.TODO_CREATED, 1, userId="7", title="t", description="d", priority="high", dueDate=None,
                createdAt=T0, teamId=None)


def test_created_makes_the_row():
    row = apply_event(None, CREATED)
    assert row == {"id": TODO, "user_id": 7, "title": "t", "description": "d", "priority": "high",
                   "completed": False, "completed_at": None, "assigned_to": None, "due_date": None,
                   "created_at": T0, "updated_at": T0, "deleted_at": None, "version": 1, "team_id": None,
                   "reminder_times": []}


@pytest.mark.parametrize(("change", "expected"), [
    (event(events.TODO_UPDATED, 2, title="u", description="", updatedAt=T1), {"title": "u", "description": ""}),
    (event(events.TODO_COMPLETED, 2, completedAt=T1), {"completed": True, "completed_at": T1}),
    (event(events.TODO_DELETED, 2, deletedAt=T1), {"deleted_at": T1}),
    (event(events.TODO_ASSIGNED, 2, assignedTo="9", assignedAt=T1), {"assigned_to": 9}),
    (event(events.TODO_PRIORITIZED, 2, priority="urgent", prioritizedAt=T1), {"priority": "urgent"}),
    (event(events.TODO_SCHEDULED, 2, dueDate="2026-01-09T00:00:00Z", reminderTimes=["2026-01-08T00:00:00Z"],
           scheduledAt=T1),
     {"due_date": "2026-01-09T00:00:00Z", "reminder_times": [datetime(2026, 1, 8, tzinfo=UTC)]}),
])
def test_each_event_changes_its_fields_the_version_and_the_time(change, expected):
    before = apply_event(None, CREATED)
    after = apply_event(before, change)
    assert after == {**before, **expected, "version": 2, "updated_at": T1}
    assert before["version"] == 1, "the row given is not changed in place"


def test_an_unassignment_clears_the_assignee():
    assigned = apply_event(apply_event(None, CREATED), event(events.TODO_ASSIGNED, 2, assignedTo="9", assignedAt=T1))
    assert apply_event(assigned, event(events.TODO_ASSIGNED, 3, assignedTo=None, assignedAt=T1))["assigned_to"] is None


def test_a_type_without_a_rule_is_refused():
    with pytest.raises(events.InvalidEventError):
        apply_event(apply_event(None, CREATED), event("TodoExploded", 2))
