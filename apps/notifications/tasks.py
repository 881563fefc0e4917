"""Delivery of notifications, by Celery workers, with retries and exponential backoff.

A task is told a notification id; it locks the row, skips it unless still pending, and
sends it: email over SMTP (Django's email framework), in-app by a live push to the
recipient's sockets (the row itself is the in-app feed). Failures are recorded on the row
(attempts, last_error) and retried after 2, 4, 8 ... s, up to MAX_ATTEMPTS, then the row is
marked failed. `redeliver_stuck` (Celery beat, every minute) queues rows never tried, left
by a crash between the consumer's commit and its queueing.

Email delivery is at least once: a worker dying after the SMTP server accepted a message but
before the row was marked sent sends it again on retry. In-app pushes are idempotent.
"""
import json
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from apps.notifications.models import EMAIL, Notification
from apps.realtime.groups import user_group

logger = logging.getLogger("apps.notifications")

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 300
STUCK_AFTER = timedelta(minutes=2)


def as_json(notification: Notification) -> dict:
    """The shape of a notification in the API and in WebSocket frames."""
    return {
        "id": notification.id, "eventId": str(notification.event_id), "eventType": notification.event_type,
        "category": notification.category, "channel": notification.channel, "todoId": str(notification.todo_id),
        "subject": notification.subject, "body": notification.body, "status": notification.status,
        "attempts": notification.attempts, "lastError": notification.last_error,
        "createdAt": notification.created_at.isoformat().replace("+00:00", "Z"),
        "readAt": notification.read_at.isoformat().replace("+00:00", "Z") if notification.read_at else None,
    }


def _send(notification: Notification) -> None:
    if notification.channel == EMAIL:
        address = notification.recipient.email
        if not address:
            raise ValueError("the recipient has no email address")
        message = EmailMultiAlternatives(notification.subject, notification.body, to=[address],
                                         headers={"X-PolyStack-Event": str(notification.event_id)})
        if notification.body_html:
            message.attach_alternative(notification.body_html, "text/html")
        message.send()
    else:
        notification.status = Notification.Status.SENT  # as the socket will show it
        frame = json.dumps({"type": "notification", "notification": as_json(notification)})
        async_to_sync(get_channel_layer().group_send)(
            user_group(notification.recipient_id), {"type": "notification.new", "frame": frame})


@shared_task(bind=True, max_retries=None, acks_late=True)
def deliver(self, notification_id: int) -> str:
    with transaction.atomic():
        notification = (Notification.objects.select_for_update().select_related("recipient")
                        .filter(id=notification_id).first())
        if notification is None or notification.status != Notification.Status.PENDING:
            return "nothing to do"
        notification.attempts += 1
        try:
            _send(notification)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried or given up
            notification.status = Notification.Status.PENDING
            notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if notification.attempts >= MAX_ATTEMPTS:
                notification.status = Notification.Status.FAILED
            notification.save(update_fields=["status", "attempts", "last_error"])
            failed = notification.status == Notification.Status.FAILED
        else:
            notification.status = Notification.Status.SENT
            notification.sent_at = timezone.now()
            notification.save(update_fields=["status", "attempts", "last_error", "sent_at"])
            return "sent"
    if failed:
        logger.error("notification %s failed for good after %d attempts: %s", notification_id,
                     notification.attempts, notification.last_error)
        return "failed"
    delay = min(BACKOFF_BASE_S * 2 ** (notification.attempts - 1), BACKOFF_MAX_S)
    logger.warning("notification %s attempt %d failed (%s); retry in %d s", notification_id,
                   notification.attempts, notification.last_error, delay)
    raise self.retry(countdown=delay)


@shared_task
def redeliver_stuck() -> int:
    """Queue again what was never tried though it should have been long ago: a crash between
    the consumer's commit and its queueing. (A row that failed has its retry in the broker.)"""
    stuck = list(Notification.objects.filter(status=Notification.Status.PENDING, attempts=0,
                                             created_at__lt=timezone.now() - STUCK_AFTER).values_list("id", flat=True)[:1000])
    for notification_id in stuck:
        deliver.delay(notification_id)
    return len(stuck)
