"""What the sync coordinator and its sink did with a command's events: one record per recipient
in device-sync-events, stored for their devices."""
from apps.sync.models import SyncRecord
from polystack.ops.trace import Step, TracedEvent, tracer
from polystack.streaming.topics import DEVICE_SYNC_EVENTS, resolve


@tracer("sync")
def records(events: list[TracedEvent]) -> list[Step]:
    # No index on event_id (the sink's writes would pay for it): a scan of the records still
    # held (SYNC_RETENTION_DAYS), for a trace asked for by hand.
    rows = SyncRecord.objects.filter(event_id__in=[e.event_id for e in events]).order_by("partition", "offset")
    topic = resolve(DEVICE_SYNC_EVENTS)
    return [Step(event_id=str(r.event_id), at=r.created_at,
                 what=f"record for user {r.user_id} at {topic}[{r.partition}]@{r.offset}, stored for their devices")
            for r in rows]
