"""A ReminderDue may come before its todo's TodoCreated: the notification role reads the two
topics independently. It is delivered from the write side's state then, not dropped."""
import pytest
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Notification
from apps.todos import events, reminder_events
from apps.todos import services as todos


@pytest.mark.django_db
def test_a_reminder_due_before_the_role_saw_its_todo_still_notifies_the_owner(user_factory):
    alice, mallory = user_factory(email="alice@example.test"), user_factory()
    due = timezone.now() + timezone.timedelta(hours=1)
    todo = todos.todo_create(actor=alice, title="Pay the rent", due_date=due, correlation_id="c").todo_id

    def reminder(owner) -> dict:
        return reminder_events.new_envelope(
            event_type=reminder_events.REMINDER_DUE, todo_id=todo, user_id=owner.pk,
            data={"reminderType": "PT1H", "dueDate": events.iso(due), "remindAt": events.iso(timezone.now()),
                  "late": False}, correlation_id="c", occurred_at=timezone.now())

    assert services.remind(reminder(mallory)) == [], "a forged one naming someone else's todo tells nobody"
    assert services.remind(reminder(alice)) != []
    assert {n.recipient_id for n in Notification.objects.all()} == {alice.pk}
    assert "Pay the rent" in Notification.objects.filter(channel="in_app").get().body
