"""What the projection tells of a correlationId: the command's events (its history keeps each
with its position), each applied to the read tables."""
from django.db.models.fields.json import KT

from apps.projections.models import TodoEvent
from polystack.ops.trace import Step, TracedEvent, event_finder, tracer
from polystack.streaming.topics import TODO_EVENTS, resolve

MAX_EVENTS = 200  # a correlationId is one request: more is someone reusing one on purpose


@event_finder
def events_of(correlation_id: str) -> list[TracedEvent]:
    rows = (TodoEvent.objects.annotate(correlation=KT("envelope__correlationId")).filter(correlation=correlation_id)
            .order_by("occurred_at", "aggregate_version")[:MAX_EVENTS])
    return [TracedEvent(event_id=str(row.event_id), event_type=row.event_type, todo_id=str(row.todo_id),
                        version=row.aggregate_version, topic=resolve(TODO_EVENTS), partition=row.partition,
                        offset=row.offset, occurred_at=row.occurred_at) for row in rows]


@tracer("projections")
def projected(events: list[TracedEvent]) -> list[Step]:
    kept = set(TodoEvent.objects.filter(event_id__in=[e.event_id for e in events]).values_list("event_id", flat=True))
    return [Step(event_id=e.event_id, what=f"applied: the todo at version {e.version} in the read tables")
            for e in events if e.event_id in {str(k) for k in kept}]
