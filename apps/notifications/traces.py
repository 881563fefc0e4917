"""What the notification role did with a command's events: each notification, its channel,
recipient and how delivery went."""
from apps.notifications.models import Notification
from polystack.ops.trace import Step, TracedEvent, tracer


@tracer("notifications")
def notified(events: list[TracedEvent]) -> list[Step]:
    rows = (Notification.objects.filter(event_id__in=[e.event_id for e in events]).select_related("recipient")
            .order_by("created_at"))
    return [Step(event_id=str(n.event_id), at=n.sent_at or n.created_at,
                 what=f"{n.channel} to {n.recipient.get_username()}: {n.status}"
                      + (f" after {n.attempts} attempts" if n.attempts > 1 else ""))
            for n in rows]
