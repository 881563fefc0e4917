"""Delivery of notifications, by the notification role itself: email over SMTP (Django's email
framework), in-app by a live push to the recipient's sockets (the row itself is the in-app feed).

Each row is claimed (pending -> sending, committed at once), sent with no transaction or lock
open (a slow SMTP server holds no row lock or connection), then marked sent. A failure is
recorded on the row (attempts, last_error), the row stays pending, and DeliveryFailedError
tells the runner: the event goes to its retry topic and is handled again later, which sends
what is still unsent (polystack.streaming.retry; after the last attempt, the DLQ, from which a
redrive sends it again). One retry mechanism for every delivery: Celery's per-task retries
were the other one, and had no DLQ to triage.

At least once: a role killed after the SMTP server accepted a message and before the row was
marked sent leaves it `sending`; the event is redelivered to the partition's next owner, which
sends it again. In-app pushes are idempotent.
"""
import json
import logging
from collections.abc import Callable, Iterable

from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.notifications.api.serializers import notification_json
from apps.notifications.models import EMAIL, Notification
from polystack import live, metrics, outages

logger = logging.getLogger("apps.notifications")

# Rows a delivery may (re)send: never tried, failed before, or left mid-send by a killed role.
UNSENT = (Notification.Status.PENDING, Notification.Status.SENDING, Notification.Status.FAILED)


class DeliveryFailedError(Exception):
    """Some notifications of an event could not be sent now (the SMTP server refused, or is down):
    the runner retries the event later from its retry topic."""


def _send(notification: Notification, mail: BaseEmailBackend | None) -> None:
    if notification.channel == EMAIL:
        address = notification.recipient.email
        if not address:
            raise ValueError("the recipient has no email address")
        if mail is not None:
            mail.open()  # once: a backend already open stays as it is, and its sends share the connection
        message = EmailMultiAlternatives(notification.subject, notification.body, to=[address], connection=mail,
                                         headers={"X-PolyStack-Event": str(notification.event_id)})
        if notification.body_html:
            message.attach_alternative(notification.body_html, "text/html")
        message.send()
    else:
        notification.status = Notification.Status.SENT  # as the socket will show it
        frame = json.dumps({"type": "notification", "notification": notification_json(notification)})
        live.publish([(notification.recipient_id, {"type": live.NOTIFICATION_NEW, "frame": frame})])


def _claim(notification_id: int) -> Notification | None:
    """Take the row for one attempt (committed at once); None when it was sent already."""
    now = timezone.now()
    if not Notification.objects.filter(id=notification_id, status__in=UNSENT).update(
            status=Notification.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1):
        return None
    return Notification.objects.select_related("recipient").get(id=notification_id)


def close_quietly(mail: BaseEmailBackend) -> None:
    """Close an email connection that may be broken already (then there is nothing to close)."""
    try:
        mail.close()
    except Exception as exc:  # noqa: BLE001 - a connection we are done with
        logger.info("closing the SMTP connection: %s: %s", type(exc).__name__, exc)


def deliver(notification_id: int, *, on_sent: Callable[[Notification], None] | None = None,
            mail: BaseEmailBackend | None = None) -> bool:
    """Send one notification unless it was sent already; True when this call sent it.
    `on_sent(notification)` runs in the transaction that marks it sent (e.g. to append an event
    to the outbox: then the row is sent and the event on its way, or neither). `mail`: an email
    backend to send through, kept open between sends (None: a connection per email). Raises
    what the send raised, after recording it on the row."""
    notification = _claim(notification_id)
    if notification is None:
        return False
    try:
        _send(notification, mail)
    except Exception as exc:
        metrics.NOTIFICATIONS.labels(notification.channel, "failed").inc()
        if mail is not None:
            close_quietly(mail)  # the next send starts on a fresh connection
        Notification.objects.filter(id=notification.id, status=Notification.Status.SENDING).update(
            status=Notification.Status.PENDING, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    with transaction.atomic():
        marked = Notification.objects.filter(id=notification.id, status=Notification.Status.SENDING).update(
            status=Notification.Status.SENT, sent_at=timezone.now(), last_error="")
        if marked and on_sent is not None:
            on_sent(notification)
    if marked:
        metrics.NOTIFICATIONS.labels(notification.channel, "sent").inc()
    return bool(marked)


def deliver_all(notification_ids: Iterable[int], *, on_sent: Callable[[Notification], None] | None = None,
                mail: BaseEmailBackend | None = None) -> int:
    """Try every one (one refused email does not keep the in-app one from going out); raise
    DeliveryFailedError when any failed. Returns how many were sent."""
    sent, failures = 0, []
    for notification_id in notification_ids:
        try:
            sent += deliver(notification_id, on_sent=on_sent, mail=mail)
        except Exception as exc:  # noqa: BLE001 - recorded on the row; the event is retried
            if outages.is_outage(exc):
                raise  # PostgreSQL or Redis down: the runner waits it out, the retries untouched
            failures.append(f"#{notification_id}: {type(exc).__name__}: {exc}")
    if failures:
        raise DeliveryFailedError(f"{len(failures)} notification(s) not sent: " + "; ".join(failures)[:1000])
    return sent
