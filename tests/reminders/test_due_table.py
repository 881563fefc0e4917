"""The due table (apps.reminders): armed, re-armed and cancelled by the todos' events, each
applied once. (`runconsumer reminders` keeping it from the real topics, cancellations by
completing and deleting included: tests/reminders/test_delivery.py.)"""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.reminders import services
from apps.reminders.models import Reminder, TodoSchedule
from apps.todos import events
from apps.todos.services import schedule_data

NOW = datetime.now(UTC).replace(microsecond=0)
DUE = NOW + timedelta(days=3)


class Todo:
    """The events of one todo, as the write side would make them."""

    def __init__(self, owner: int = 7):
        self.id, self.owner, self.version = uuid.uuid4(), owner, 0

    def event(self, event_type: str, data: dict) -> dict:
        self.version += 1
        return events.new_envelope(
            event_type=event_type, aggregate_id=self.id, aggregate_version=self.version, user_id=str(self.owner),
            data={"todoId": str(self.id), **data}, correlation_id="c-1", occurred_at=NOW,
            metadata={"notificationRequired": False, "affectedUsers": [str(self.owner)],
                      "category": events.CATEGORIES[event_type], "actorId": str(self.owner)})

    def scheduled(self, due, times=None) -> dict:
        return self.event(events.TODO_SCHEDULED, schedule_data(due, times, NOW))


def armed(todo: Todo) -> dict[str, tuple[datetime, str]]:
    return {r.reminder_type: (r.remind_at, r.state) for r in Reminder.objects.filter(todo_id=todo.id)}


@pytest.mark.django_db
def test_a_schedule_arms_its_reminders_and_a_new_one_replaces_them():
    todo = Todo()
    assert services.todo_event_apply(envelope=todo.scheduled(DUE))
    assert armed(todo) == {"P1D": (DUE - timedelta(days=1), "pending"), "PT1H": (DUE - timedelta(hours=1), "pending")}

    later = DUE + timedelta(days=1)
    services.todo_event_apply(envelope=todo.scheduled(later, [later - timedelta(hours=1)]))
    rows = {(r.reminder_type, r.due_date): r.state for r in Reminder.objects.filter(todo_id=todo.id)}
    assert rows == {("P1D", DUE): "cancelled", ("PT1H", DUE): "cancelled", ("PT1H", later): "pending"}

    services.todo_event_apply(envelope=todo.scheduled(DUE))  # back to the first: armed again, not duplicated
    rows = {(r.reminder_type, r.due_date): r.state for r in Reminder.objects.filter(todo_id=todo.id)}
    assert rows == {("P1D", DUE): "pending", ("PT1H", DUE): "pending", ("PT1H", later): "cancelled"}
    assert TodoSchedule.objects.get(todo_id=todo.id).scheduled_version == 3


@pytest.mark.django_db
def test_each_event_applies_once_and_an_older_one_changes_nothing():
    todo = Todo()
    first, second = todo.scheduled(DUE), todo.scheduled(None)
    assert services.todo_event_apply(envelope=first)
    assert services.todo_event_apply(envelope=second)
    assert not services.todo_event_apply(envelope=first), "older than what was applied"
    assert not services.todo_event_apply(envelope=second), "a redelivery"
    assert {state for _, state in armed(todo).values()} == {"cancelled"}
    assert TodoSchedule.objects.get(todo_id=todo.id).due_date is None


@pytest.mark.django_db
@pytest.mark.parametrize("closing", [events.TODO_COMPLETED, events.TODO_DELETED])
def test_completing_or_deleting_cancels_what_is_pending_and_a_fired_reminder_stays_fired(closing):
    todo = Todo()
    services.todo_event_apply(envelope=todo.scheduled(DUE))
    Reminder.objects.filter(todo_id=todo.id, reminder_type="P1D").update(state=Reminder.FIRED)
    stamp = {events.TODO_COMPLETED: "completedAt", events.TODO_DELETED: "deletedAt"}[closing]
    services.todo_event_apply(envelope=todo.event(closing, {stamp: events.iso(NOW)}))
    assert {kind: state for kind, (_, state) in armed(todo).items()} == {"P1D": "fired", "PT1H": "cancelled"}
    services.todo_event_apply(envelope=todo.scheduled(DUE))  # no command makes it; a hostile event might
    assert {kind: state for kind, (_, state) in armed(todo).items()} == {"P1D": "fired", "PT1H": "cancelled"}


@pytest.mark.django_db
def test_a_schedule_no_command_can_make_is_refused_for_the_dlq():
    todo = Todo()
    impossible = todo.event(events.TODO_SCHEDULED, {"dueDate": events.iso(DUE),
                                                    "reminderTimes": [events.iso(DUE + timedelta(hours=1))],
                                                    "scheduledAt": events.iso(NOW)})
    with pytest.raises(services.ImpossibleScheduleError):
        services.todo_event_apply(envelope=impossible)
    assert not Reminder.objects.filter(todo_id=todo.id).exists()


@pytest.mark.django_db
def test_the_admin_shows_the_due_table_and_lets_nobody_edit_it(admin_client):
    todo = Todo()
    services.todo_event_apply(envelope=todo.scheduled(DUE))
    for path in ("/admin/reminders/reminder/", "/admin/reminders/todoschedule/"):
        for query in ("", f"?q={todo.id}", "?q=not-a-uuid"):
            page = admin_client.get(path + query)
            assert page.status_code == 200, (path, query)
        assert admin_client.get(path + "add/").status_code == 403
    assert str(todo.id) in admin_client.get("/admin/reminders/reminder/").content.decode()
