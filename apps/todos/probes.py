"""The monitor's probe of the write side: the outbox the relay has still to publish."""
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from apps.todos.models import OutboxEvent
from polystack.ops.monitor import Context, probe


@probe("outbox")
def outbox(context: Context):
    """Rows the relay has not published (and deleted) yet, and how old the oldest is: a relay
    that is down, or a broker it cannot reach, shows as a backlog whose oldest row ages."""
    found = OutboxEvent.objects.aggregate(count=Count("id"), oldest=Min("created_at"))
    backlog = GaugeMetricFamily("polystack_outbox_backlog", "Outbox rows not yet published by the relay",
                                value=found["count"])
    age = GaugeMetricFamily("polystack_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row "
                            "(0 when none)",
                            value=(timezone.now() - found["oldest"]).total_seconds() if found["oldest"] else 0)
    return [backlog, age]
