"""From a todo event to notification rows: remember the todo's facts, apply the rules and the
recipients' preferences, render the templates. Delivery is the Celery tasks' job (tasks.py)."""
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.notifications import rules, selectors
from apps.notifications.models import EMAIL, Notification, NotificationPreference, TodoFacts
from apps.todos import audience, events


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


@transaction.atomic
def notify(envelope: dict) -> list[int]:
    """The notifications this event calls for, created once however often it is delivered.
    Returns the ids still to deliver (new ones, and pending ones of an earlier attempt)."""
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
        if recipient is None:
            continue
        context = {
            "recipient": recipient, "actor": actor, "title": facts.title, "event": envelope,
            "url": f"{settings.PUBLIC_BASE_URL}/todos/#todo-{envelope['aggregateId']}",
        }
        subject, body, body_html = _render(rules.TEMPLATES[rule.category], context)
        for channel in selectors.enabled_channels(user_id=recipient_id, category=rule.category):
            if channel == EMAIL and not recipient.email:
                continue  # nowhere to send it: no row that could only fail
            notification, _ = Notification.objects.get_or_create(
                event_id=uuid.UUID(envelope["eventId"]), recipient=recipient, channel=channel,
                defaults={"event_type": envelope["eventType"], "category": rule.category,
                          "todo_id": uuid.UUID(envelope["aggregateId"]), "subject": subject, "body": body,
                          "body_html": body_html},
            )
            if notification.status == Notification.Status.PENDING:
                to_deliver.append(notification.id)
    return to_deliver


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
