"""Delivery of notifications, by Celery workers, with retries and exponential backoff.

A task is told a notification id; it claims the row (pending -> sending, committed at once),
sends it with no transaction or lock open, then records the outcome: email over SMTP (Django's
email framework), in-app by a live push to the recipient's sockets (the row itself is the
in-app feed). A slow SMTP server thus holds no database row lock or connection. A worker that
dies mid-send leaves the row `sending`; once its claim lease passed, beat queues it again.
Failures are recorded on the row
(attempts, last_error) and retried after 2, 4, 8 ... s, up to MAX_ATTEMPTS, then the row is
marked failed. `redeliver_stuck` (Celery beat, every minute) queues rows never tried, left
by a crash between the consumer's commit and its queueing.

Email delivery is at least once: a worker dying after the SMTP server accepted a message but
before the row was marked sent sends it again on retry. In-app pushes are idempotent.
"""
import json
import logging
from datetime import timedelta

from celery import shared_task
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.utils import timezone

from apps.notifications.api.serializers import notification_json
from apps.notifications.models import EMAIL, Notification
from polystack import live

logger = logging.getLogger("apps.notifications")

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 300
STUCK_AFTER = timedelta(minutes=2)
CLAIM_LEASE = timedelta(minutes=5)  # longer than any send (EMAIL_TIMEOUT is 10 s)


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
        frame = json.dumps({"type": "notification", "notification": notification_json(notification)})
        live.publish([(notification.recipient_id, {"type": "notification.new", "frame": frame})])


def _claim(notification_id: int) -> Notification | None:
    """Take the row for one attempt: pending, or sending by a worker whose lease ran out."""
    now = timezone.now()
    claimable = Q(status=Notification.Status.PENDING) | Q(status=Notification.Status.SENDING,
                                                           claimed_at__lt=now - CLAIM_LEASE)
    if not Notification.objects.filter(claimable, id=notification_id).update(
            status=Notification.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1):
        return None
    return Notification.objects.select_related("recipient").get(id=notification_id)


def _record(notification: Notification, **fields) -> None:
    """The attempt's outcome, unless another worker took the row over (our lease ran out)."""
    Notification.objects.filter(id=notification.id, status=Notification.Status.SENDING,
                                claimed_at=notification.claimed_at).update(**fields)


@shared_task(bind=True, max_retries=None, acks_late=True)
def deliver(self, notification_id: int) -> str:
    notification = _claim(notification_id)
    if notification is None:
        return "nothing to do"
    try:
        _send(notification)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried or given up
        error = f"{type(exc).__name__}: {exc}"[:2000]
        failed = notification.attempts >= MAX_ATTEMPTS
        _record(notification, last_error=error,
                status=Notification.Status.FAILED if failed else Notification.Status.PENDING)
    else:
        _record(notification, status=Notification.Status.SENT, sent_at=timezone.now())
        return "sent"
    if failed:
        logger.error("notification %s failed for good after %d attempts: %s", notification_id,
                     notification.attempts, error)
        return "failed"
    delay = min(BACKOFF_BASE_S * 2 ** (notification.attempts - 1), BACKOFF_MAX_S)
    logger.warning("notification %s attempt %d failed (%s); retry in %d s", notification_id,
                   notification.attempts, error, delay)
    raise self.retry(countdown=delay)


@shared_task
def redeliver_stuck() -> int:
    """Queue again what was never tried though it should have been long ago (a crash between
    the consumer's commit and its queueing), and what a worker claimed and never finished (it
    died mid-send). A row that failed has its retry in the broker."""
    now = timezone.now()
    never_tried = Q(status=Notification.Status.PENDING, attempts=0, created_at__lt=now - STUCK_AFTER)
    abandoned = Q(status=Notification.Status.SENDING, claimed_at__lt=now - CLAIM_LEASE)
    stuck = list(Notification.objects.filter(never_tried | abandoned).values_list("id", flat=True)[:1000])
    for notification_id in stuck:
        deliver.delay(notification_id)
    return len(stuck)
