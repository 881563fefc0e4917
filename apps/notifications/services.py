"""From a todo event to notification rows: remember the todo's facts, apply the rules and the
recipients' preferences, render the templates. Delivery is the Celery tasks' job (tasks.py)."""
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.loader import render_to_string

from apps.notifications import rules
from apps.notifications.models import CHANNELS, EMAIL, Notification, NotificationPreference, TodoFacts
from apps.todos import events


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


def _recipient(rule: rules.Rule, envelope: dict, facts: TodoFacts) -> int | None:
    if rule.who == rules.OWNER:
        return int(envelope["userId"])
    assignee = envelope["data"].get("assignedTo")  # the event's own word first, then the facts
    return int(assignee) if assignee else facts.assignee_id


def switched_off(user_id: int, category: str | None = None) -> set[tuple[str, str]]:
    """The (category, channel) pairs the user turned off (everything else is on)."""
    choices = NotificationPreference.objects.filter(user_id=user_id, enabled=False)
    if category is not None:
        choices = choices.filter(category=category)
    return set(choices.values_list("category", "channel"))


def enabled_channels(user_id: int, category: str) -> list[str]:
    off = switched_off(user_id, category)
    return [channel for channel, _ in CHANNELS if (category, channel) not in off]


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
    for rule in rules.matching(envelope):
        recipient_id = _recipient(rule, envelope, facts)
        recipient = users.filter(pk=recipient_id, is_active=True).first() if recipient_id else None
        if recipient is None or recipient_id == actor_id:
            continue
        context = {
            "recipient": recipient, "actor": actor, "title": facts.title, "event": envelope,
            "url": f"{settings.PUBLIC_BASE_URL}/todos/#todo-{envelope['aggregateId']}",
        }
        subject, body, body_html = _render(rule.template, context)
        for channel in enabled_channels(recipient_id, metadata["category"]):
            if channel == EMAIL and not recipient.email:
                continue  # nowhere to send it: no row that could only fail
            notification, _ = Notification.objects.get_or_create(
                event_id=uuid.UUID(envelope["eventId"]), recipient=recipient, channel=channel,
                defaults={"event_type": envelope["eventType"], "category": metadata["category"],
                          "todo_id": uuid.UUID(envelope["aggregateId"]), "subject": subject, "body": body,
                          "body_html": body_html},
            )
            if notification.status == Notification.Status.PENDING:
                to_deliver.append(notification.id)
    return to_deliver
