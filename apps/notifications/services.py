"""From a todo event, or a reminder that came due, to notification rows: remember the todo's
facts, apply the rules and the recipients' preferences, render the templates. Sending them is
apps.notifications.delivery's job."""
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.notifications import rules, selectors
from apps.notifications.delivery import UNSENT
from apps.notifications.models import EMAIL, REMINDER, Notification, NotificationPreference, TodoFacts
from apps.todos import reminder_events
from apps.todos import audience, events
from apps.todos.services import outbox_append
from polystack.streaming.topics import REMINDER_EVENTS


def _remember(envelope: dict) -> TodoFacts | None:
    """Keep this app's facts of the todo current; an older (redelivered) event changes nothing."""
    data, version = envelope["data"], envelope["aggregateVersion"]
    facts = TodoFacts.objects.select_for_update().filter(todo_id=envelope["aggregateId"]).first()
    if facts is None:
        if envelope["eventType"] != events.TODO_CREATED:
            return None  # consumed from a position after the todo's creation: nothing to tell
        return TodoFacts.objects.create(todo_id=envelope["aggregateId"], owner_id=int(envelope["userId"]),
                                        title=data["title"], version=version)
    if version > facts.version:
        facts.version = version
        facts.title = data.get("title", facts.title)
        if "assignedTo" in data:
            facts.assignee_id = int(data["assignedTo"]) if data["assignedTo"] else None
        facts.save()
    return facts


def _render(template: str, context: dict) -> tuple[str, str, str]:
    subject = render_to_string(f"notifications/{template}.subject.txt", context).strip()
    return (" ".join(subject.split())[:200], render_to_string(f"notifications/{template}.txt", context),
            render_to_string(f"notifications/{template}.html", context))


def _create(*, envelope: dict, recipient, category: str, template: str, context: dict) -> list[int]:
    """The rows of one recipient, one per channel they want, created once per event; the ids of
    those still to send (new, or unsent by an earlier attempt)."""
    context = {"recipient": recipient, **context}
    subject, body, body_html = _render(template, context)
    to_deliver = []
    for channel in selectors.enabled_channels(user_id=recipient.pk, category=category):
        if channel == EMAIL and not recipient.email:
            continue  # nowhere to send it: no row that could only fail
        notification, _ = Notification.objects.get_or_create(
            event_id=uuid.UUID(envelope["eventId"]), recipient=recipient, channel=channel,
            defaults={"event_type": envelope["eventType"], "category": category,
                      "todo_id": uuid.UUID(envelope["aggregateId"]), "subject": subject, "body": body,
                      "body_html": body_html},
        )
        if notification.status in UNSENT:
            to_deliver.append(notification.id)
    return to_deliver


def _todo_url(todo_id: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/todos/#todo-{todo_id}"


@transaction.atomic
def notify(envelope: dict) -> list[int]:
    """The notifications this todo event calls for, created once however often it is delivered.
    Returns the ids still to deliver (new ones, and unsent ones of an earlier attempt)."""
    facts = _remember(envelope)
    metadata = envelope["metadata"]
    if facts is None or not metadata["notificationRequired"]:
        return []
    users = get_user_model().objects
    actor_id = int(metadata["actorId"]) if metadata["actorId"] else None
    actor = users.filter(pk=actor_id).first()
    to_deliver = []
    for rule, recipient_id in audience.notified(envelope, actor_id=actor_id, assignee_id=facts.assignee_id):
        recipient = users.filter(pk=recipient_id, is_active=True).first()
        if recipient is not None:
            to_deliver += _create(envelope=envelope, recipient=recipient, category=rule.category,
                                  template=rules.TEMPLATES[rule.category],
                                  context={"actor": actor, "title": facts.title, "event": envelope,
                                           "url": _todo_url(envelope["aggregateId"])})
    return to_deliver


@transaction.atomic
def remind(envelope: dict) -> list[int]:
    """The notifications of a ReminderDue, for the todo's owner on the channels they want for
    reminders; the ids still to deliver. Nothing for a todo this app does not know as the
    owner's (a forged event naming someone else's todo learns nobody its title)."""
    data = envelope["data"]
    facts = TodoFacts.objects.filter(todo_id=data["todoId"]).first()
    owner_id = int(envelope["userId"])
    if facts is None or facts.owner_id != owner_id:
        return []
    recipient = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
    if recipient is None:
        return []
    return _create(envelope=envelope, recipient=recipient, category=REMINDER, template=rules.TEMPLATES[REMINDER],
                   context={"title": facts.title, "due_date": datetime.fromisoformat(data["dueDate"]),
                            "late": data["late"], "url": _todo_url(data["todoId"])})


def reminder_sent(envelope: dict, notification: Notification) -> None:
    """ReminderSent of one channel, into the outbox in the transaction that marks the row sent
    (delivery.deliver's on_sent): so once per channel."""
    data = envelope["data"]
    sent = reminder_events.new_envelope(
        event_type=reminder_events.REMINDER_SENT, todo_id=data["todoId"], user_id=envelope["userId"],
        data={"reminderType": data["reminderType"], "dueDate": data["dueDate"], "channel": notification.channel,
              "sentAt": events.iso(timezone.now())},
        correlation_id=envelope["correlationId"], causation_id=envelope["eventId"], occurred_at=timezone.now())
    with connection.cursor() as cursor:
        outbox_append(cursor, [sent], topic=REMINDER_EVENTS)


def notification_mark_read(*, user_id: int, notification_id: int) -> Notification | None:
    """Mark one of the user's notifications read (idempotent); None when it is not theirs."""
    notification = selectors.notification_get(user_id=user_id, notification_id=notification_id)
    if notification is not None and notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


@transaction.atomic
def preferences_set(*, user_id: int, choices: list[dict]) -> None:
    """Record the user's choices, each {category, channel, enabled}."""
    for choice in choices:
        NotificationPreference.objects.update_or_create(
            user_id=user_id, category=choice["category"], channel=choice["channel"],
            defaults={"enabled": choice["enabled"]})
