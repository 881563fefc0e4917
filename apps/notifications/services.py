"""From a todo event, or a reminder that came due, to notification rows: remember the todo's
facts, apply the rules and the recipients' preferences, render the templates. Sending them is
apps.notifications.delivery's job."""
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.notifications import rules, selectors
from apps.notifications.delivery import UNSENT
from apps.notifications.models import EMAIL, REMINDER, Notification, NotificationPreference, TodoFacts
from apps.todos import reminder_events
from apps.todos import audience, events
from apps.todos import services as todos
from apps.todos.models import TodoState
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
    channels = [channel for channel in selectors.enabled_channels(user_id=recipient.pk, category=category)
                if channel != EMAIL or recipient.email]  # no address: no row that could only fail
    if not channels:
        return []
    subject, body, body_html = _render(template, {"recipient": recipient, **context})
    event_id = uuid.UUID(envelope["eventId"])
    # One INSERT for every channel; a redelivered event's rows exist already and stay as they are.
    Notification.objects.bulk_create(
        [Notification(event_id=event_id, recipient=recipient, channel=channel, event_type=envelope["eventType"],
                      category=category, todo_id=uuid.UUID(envelope["aggregateId"]), subject=subject, body=body,
                      body_html=body_html) for channel in channels],
        ignore_conflicts=True)
    return list(Notification.objects.filter(event_id=event_id, recipient=recipient, channel__in=channels,
                                            status__in=UNSENT).order_by("id").values_list("id", flat=True))


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
    # The todo as this role knows it from todo-events, or else as the write side has it: the two
    # topics are fetched independently, and a ReminderDue due a second after its todo was made
    # can come before the todo's TodoCreated (it was dropped then, a CI run showed).
    facts = (TodoFacts.objects.filter(todo_id=data["todoId"]).values_list("owner_id", "title").first()
             or TodoState.objects.filter(id=data["todoId"]).values_list("owner_id", "title").first())
    owner_id = int(envelope["userId"])
    if facts is None or facts[0] != owner_id:
        return []
    recipient = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
    if recipient is None:
        return []
    return _create(envelope=envelope, recipient=recipient, category=REMINDER, template=rules.TEMPLATES[REMINDER],
                   context={"title": facts[1], "due_date": datetime.fromisoformat(data["dueDate"]),
                            "late": data["late"], "url": _todo_url(data["todoId"]),
                            "snooze_url": snooze_link(event_id=envelope["eventId"], recipient_id=owner_id)})


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


# The email's snooze action: a link that names the reminder and its recipient, signed with the
# site's SECRET_KEY (so nobody can make one), that expires, and that works once (the email's row
# records its use). Opening it shows a button; only the POST snoozes (mail scanners open links).
SNOOZE_LINK_SALT = "apps.notifications.snooze-link"
SNOOZE_LINK_MAX_AGE = timedelta(days=2)
SNOOZE_LINK_DELAY = timedelta(hours=1)


class SnoozeLinkError(Exception):
    """A snooze link that cannot snooze: `reason` says why, for the page that answers it."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # "invalid", "expired", "used", "refused"


def snooze_link(*, event_id: str, recipient_id: int) -> str:
    token = signing.dumps({"event": str(event_id), "user": recipient_id}, salt=SNOOZE_LINK_SALT)
    return f"{settings.PUBLIC_BASE_URL}/reminders/snooze/{token}/"


def snooze_link_read(*, token: str) -> Notification:
    """The reminder email a link belongs to, or SnoozeLinkError."""
    try:
        data = signing.loads(token, salt=SNOOZE_LINK_SALT, max_age=SNOOZE_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise SnoozeLinkError("expired", "This link has expired: snooze from the todo's page instead.") from None
    except signing.BadSignature:
        raise SnoozeLinkError("invalid", "This is not a snooze link of ours.") from None
    email = Notification.objects.select_related("recipient").filter(
        event_id=data["event"], recipient_id=data["user"], channel=EMAIL, category=REMINDER).first()
    if email is None or not email.recipient.is_active:
        raise SnoozeLinkError("invalid", "This reminder no longer exists.")
    if email.snoozed_at is not None:
        raise SnoozeLinkError("used", "This link was used already: it snoozes once.")
    return email


def snooze_link_use(*, token: str, correlation_id: str) -> todos.SnoozeResult:
    """Snooze the reminder of a link's email by SNOOZE_LINK_DELAY, once: the use is recorded in
    the transaction that writes ReminderSnoozed, under the email row's lock."""
    with transaction.atomic():
        email = snooze_link_read(token=token)
        email = Notification.objects.select_for_update().select_related("recipient").get(pk=email.pk)
        if email.snoozed_at is not None:  # a second press that waited for our lock
            raise SnoozeLinkError("used", "This link was used already: it snoozes once.")
        try:
            result = todos.todo_snooze(actor=email.recipient, todo_id=email.todo_id,
                                       until=timezone.now() + SNOOZE_LINK_DELAY, correlation_id=correlation_id)
        except todos.TodoError as exc:
            raise SnoozeLinkError("refused", str(exc)) from None
        email.snoozed_at = timezone.now()
        email.save(update_fields=["snoozed_at"])
        return result


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
